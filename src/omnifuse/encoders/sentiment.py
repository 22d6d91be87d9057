"""VADER sentiment as text features: one token per word, the sentence's scores as ``pooled``.

VADER (Hutto & Gilbert, 2014) is a rule-based sentiment model: a lexicon of about 7,500 words
and emoticons rated by people from −4 (most negative) to +4, and rules that change a word's
valence in context — a negation among the three words before it (× −0.74), a booster or
dampener before it ("very", "slightly"), ALL CAPS in a text that is not all caps, the
contrastive "but" (words before it count half, words after it one and a half times), and a few
idioms. The sentence scores are ``neg``/``neu``/``pos`` (shares of the word valences) and
``compound`` (their sum squashed into −1..1). The lexicon ships inside the ``vaderSentiment``
wheel and is read from there (nltk's copy, which downloads, is never used).

The per-word token features are read from VADER's own scoring pass (the same methods its
``polarity_scores`` calls, in the same order), so ``pooled``'s first four values equal
``polarity_scores``. This encoder has no weights: the trainable part of a text-sentiment model
is the fusion model's head (and fusion) trained on top of these features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.io import DecodeLimits, load_text
from omnifuse.types import Encoded, pad_tokens

WORD_FEATURES = (
    "lexicon valence / 4 (0 for a word outside the lexicon)",
    "valence after VADER's rules / 4 (what the word adds to the compound score)",
    "in the lexicon (1/0)",
    "negated: a negation among the three words before it, or 'no' among two (1/0)",
    "after a booster (+1) or a dampener (−1), VADER's list",
    "a rated word (lexicon, booster) in ALL CAPS in a text that is not all caps (1/0)",
    "after 'but' (+1), before it (−1), no 'but' (0)",
    "position in the text, 0 (first word) to 1 (last)",
)
SENTENCE_FEATURES = (
    "neg: share of negative valence",
    "neu: share of neutral words",
    "pos: share of positive valence",
    "compound: the normalised sum of valences, −1..1",
    "fraction of words with a positive valence after the rules",
    "fraction of words with a negative valence after the rules",
    "emphasis from '!' and '?' / 1.17 (VADER's amplifier, at most 1)",
    "log(1 + number of words) / 4",
)
LEXICON_SCALE = 4.0
MAX_PUNCTUATION_EMPHASIS = 4 * 0.292  # four exclamation marks, VADER's cap
LOOKBACK = 3


@dataclass(frozen=True)
class WordSentiment:
    """One word as VADER read it: its lexicon valence, its valence after the rules, and which
    rules applied."""

    word: str
    lexicon: float
    valence: float
    negated: bool
    booster: float
    caps: bool
    but: int


@dataclass(frozen=True)
class SentenceSentiment:
    """VADER's reading of one text: its words and the ``polarity_scores`` of the whole."""

    words: list[WordSentiment]
    scores: dict[str, float]
    punctuation_emphasis: float


@lru_cache(maxsize=1)
def analyzer() -> Any:
    """VADER's analyser, its lexicon read once from the installed wheel."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _emoji_as_words(text: str, emojis: dict[str, str]) -> str:
    """Emojis replaced by their lexicon descriptions, as ``polarity_scores`` does first."""
    out, prev_space = "", True
    for char in text:
        if char in emojis:
            out += ("" if prev_space else " ") + emojis[char]
            prev_space = False
        else:
            out += char
            prev_space = char == " "
    return out.strip()


def read_sentiment(text: str) -> SentenceSentiment:
    """VADER's scoring pass over ``text``, keeping what it found for every word."""
    from vaderSentiment import vaderSentiment as vader

    sia = analyzer()
    text = _emoji_as_words(text, sia.emojis)
    senti = vader.SentiText(text)
    words = senti.words_and_emoticons
    lower = [str(w).lower() for w in words]
    sentiments: list[float] = []
    for i, item in enumerate(words):
        if lower[i] in vader.BOOSTER_DICT or (
            lower[i] == "kind" and i + 1 < len(words) and lower[i + 1] == "of"
        ):
            sentiments.append(0.0)
            continue
        sentiments = sia.sentiment_valence(0, senti, item, i, sentiments)
    sentiments = sia._but_check(words, sentiments)
    scores = sia.score_valence(sentiments, text)
    but = lower.index("but") if "but" in lower else -1
    found = []
    for i, word in enumerate(words):
        before = lower[max(0, i - LOOKBACK) : i]
        booster = vader.BOOSTER_DICT.get(lower[i - 1], 0.0) if i > 0 else 0.0
        found.append(
            WordSentiment(
                word=word,
                lexicon=float(sia.lexicon.get(lower[i], 0.0)),
                valence=float(sentiments[i]),
                negated=bool(before) and (vader.negated(before) or "no" in before[-2:]),
                booster=float(math.copysign(1.0, booster)) if booster else 0.0,
                caps=word.isupper() and bool(senti.is_cap_diff) and _rated(lower[i], sia),
                but=0 if but < 0 or i == but else (1 if i > but else -1),
            )
        )
    emphasis = sia._punctuation_emphasis(text) if sentiments else 0.0
    return SentenceSentiment(found, {k: float(v) for k, v in scores.items()}, float(emphasis))


def _rated(word: str, sia: Any) -> bool:
    """Whether VADER's rules can weight ``word``: a lexicon word, a booster or a dampener."""
    from vaderSentiment.vaderSentiment import BOOSTER_DICT

    return word in sia.lexicon or word in BOOSTER_DICT


def word_features(reading: SentenceSentiment) -> torch.Tensor:
    """(words, 8) token features, in the order of :data:`WORD_FEATURES`."""
    last = max(1, len(reading.words) - 1)
    rows = [
        [
            w.lexicon / LEXICON_SCALE,
            w.valence / LEXICON_SCALE,
            float(w.word.lower() in analyzer().lexicon),
            float(w.negated),
            w.booster,
            float(w.caps),
            float(w.but),
            i / last,
        ]
        for i, w in enumerate(reading.words)
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(WORD_FEATURES))


def sentence_features(reading: SentenceSentiment) -> torch.Tensor:
    """(8,) sentence features, in the order of :data:`SENTENCE_FEATURES`."""
    n = len(reading.words)
    scores = reading.scores
    return torch.tensor(
        [
            scores["neg"],
            scores["neu"],
            scores["pos"],
            scores["compound"],
            sum(w.valence > 0 for w in reading.words) / max(n, 1),
            sum(w.valence < 0 for w in reading.words) / max(n, 1),
            min(reading.punctuation_emphasis / MAX_PUNCTUATION_EMPHASIS, 1.0),
            math.log1p(n) / 4.0,
        ],
        dtype=torch.float32,
    )


@encoders.register("vader")
class VaderEncoder(Encoder):
    """VADER sentiment features (8-d, no weights): one token per word, sentence scores pooled.

    Words are VADER's own (the text split on white space, punctuation stripped from word ends).
    Token features: :data:`WORD_FEATURES`; pooled: :data:`SENTENCE_FEATURES`, whose first four
    are VADER's ``neg``, ``neu``, ``pos`` and ``compound``. Texts longer than
    ``max_chars`` raise ``InputTooLargeError``. A fusion model's head on top is what trains.
    """

    modality = "text"
    trainable = False

    def __init__(
        self,
        *,
        max_chars: int = 100_000,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        self.limits = DecodeLimits(max_text_chars=max_chars)
        self.dim = len(WORD_FEATURES)
        analyzer()
        self.finish_setup()

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        """One text → its word features (T, 8) and sentence features (8,)."""
        reading = read_sentiment(load_text(raw, limits=self.limits))
        return {"words": word_features(reading), "sentence": sentence_features(reading)}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        tokens, mask = pad_tokens([item["words"] for item in items])
        return {
            "inputs": tokens,
            "mask": mask,
            "pooled": torch.stack([i["sentence"] for i in items]),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        return Encoded(batch["inputs"], batch["mask"], batch["pooled"])
