"""Text metrics for captions, answers and transcripts, in pure Python.

Each metric reproduces a reference implementation so scores compare with published ones:

- :func:`bleu4`: corpus BLEU-4 as ``sacrebleu.corpus_bleu`` (13a tokenisation, exponential
  smoothing), as a fraction in [0, 1] rather than sacrebleu's percentage;
- :func:`rouge_l`: ROUGE-L F-measure as ``rouge_score`` (its tokeniser, no stemming), the best
  reference per sample, averaged over samples;
- :func:`cider`: CIDEr-D as ``pycocoevalcap.cider.Cider`` (sigma 6, clipped tf-idf, n ≤ 4, ×10),
  on captions tokenised by :func:`caption_tokens`;
- :func:`exact_match`: answer accuracy after VQA-style answer normalisation;
- :func:`wer`: corpus word error rate as ``jiwer.wer`` after :func:`normalize_transcript`.

No dependency beyond the standard library, so evaluation runs without the optional extras.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from omnifuse.errors import InputError

NGRAM_ORDER = 4
CIDER_SIGMA = 6.0

References = Sequence[Sequence[str]]

# ---------------------------------------------------------------------------- shared checks


def _check_pairs(hyps: Sequence[str], refs: Sequence[object], what: str) -> None:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise InputError(f"{what} takes sequences of texts, not a single string", modality="text")
    if len(hyps) != len(refs):
        raise InputError(
            f"{what}: {len(hyps)} hypotheses but {len(refs)} reference entries", modality="text"
        )
    if not hyps:
        raise InputError(f"{what}: no hypotheses to score", modality="text")


def _reference_lists(refs_list: References, what: str) -> list[list[str]]:
    """Each sample's references as a list; a bare string counts as one reference."""
    out: list[list[str]] = []
    for i, refs in enumerate(refs_list):
        items = [refs] if isinstance(refs, str) else list(refs)
        if not items:
            raise InputError(f"{what}: sample {i} has no reference", modality="text")
        out.append(items)
    return out


def _ngrams(tokens: Sequence[str], max_n: int = NGRAM_ORDER) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)
    )


# ---------------------------------------------------------------------------- BLEU-4

_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_13A_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize_13a(line: str) -> list[str]:
    """The mteval-v13a tokenisation used by WMT and sacrebleu's default ``13a`` tokeniser."""
    line = line.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in _13A_ENTITIES:
        line = line.replace(entity, char)
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return line.split()


def _closest_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length nearest the hypothesis length; ties go to the shorter one."""
    return min(ref_lens, key=lambda n: (abs(hyp_len - n), n))


def _bleu_from_stats(correct: list[int], total: list[int], sys_len: int, ref_len: int) -> float:
    """BLEU with NIST exponential smoothing (sacrebleu's ``exp`` method)."""
    if not any(correct):
        return 0.0
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len else 0.0)
    precisions = [0.0] * NGRAM_ORDER
    smooth = 1.0
    for n in range(NGRAM_ORDER):
        if total[n] == 0:
            break
        if correct[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]
    return bp * math.exp(sum(logs) / NGRAM_ORDER) / 100.0


def bleu4(hyps: Sequence[str], refs_list: References, *, lowercase: bool = False) -> float:
    """Corpus BLEU-4 in [0, 1]; ``refs_list[i]`` holds the references of ``hyps[i]`` (any
    number each; empty strings are ignored, as sacrebleu ignores them)."""
    _check_pairs(hyps, refs_list, "bleu4")
    correct, total = [0] * NGRAM_ORDER, [0] * NGRAM_ORDER
    sys_len = ref_len = 0
    for i, (hyp, refs) in enumerate(zip(hyps, _reference_lists(refs_list, "bleu4"), strict=True)):
        refs = [r for r in refs if r]
        if not refs:
            raise InputError(f"bleu4: sample {i} has only empty references", modality="text")
        prep = (lambda s: s.lower()) if lowercase else (lambda s: s)
        ref_tokens = [tokenize_13a(prep(r)) for r in refs]
        ref_counts: Counter[tuple[str, ...]] = Counter()
        for tokens in ref_tokens:
            ref_counts |= _ngrams(tokens)
        hyp_tokens = tokenize_13a(prep(hyp))
        for ngram, count in _ngrams(hyp_tokens).items():
            correct[len(ngram) - 1] += min(count, ref_counts[ngram])
        for n in range(NGRAM_ORDER):
            total[n] += max(0, len(hyp_tokens) - n)
        sys_len += len(hyp_tokens)
        ref_len += _closest_length(len(hyp_tokens), [len(t) for t in ref_tokens])
    return _bleu_from_stats(correct, total, sys_len, ref_len)


# ---------------------------------------------------------------------------- ROUGE-L

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's default tokenisation: lower case, runs of non-[a-z0-9] split words."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_pair(hyp: str, ref: str) -> float:
    """ROUGE-L F-measure of one hypothesis against one reference."""
    hyp_tokens, ref_tokens = rouge_tokens(hyp), rouge_tokens(ref)
    if not hyp_tokens or not ref_tokens:
        return 0.0
    lcs = lcs_length(ref_tokens, hyp_tokens)
    precision, recall = lcs / len(hyp_tokens), lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_l(hyps: Sequence[str], refs_list: References) -> float:
    """Mean over samples of the best ROUGE-L F-measure among each sample's references."""
    _check_pairs(hyps, refs_list, "rouge_l")
    refs_all = _reference_lists(refs_list, "rouge_l")
    scores = [max(rouge_l_pair(h, r) for r in refs) for h, refs in zip(hyps, refs_all, strict=True)]
    return sum(scores) / len(scores)


# ---------------------------------------------------------------------------- CIDEr-D

_CAPTION_PUNCT = re.compile(r"[^\w\s]|_")


def caption_tokens(text: str) -> list[str]:
    """Caption tokenisation for CIDEr: lower case, punctuation removed, split on spaces (what
    the COCO PTB tokeniser yields on plain English captions, without needing Java)."""
    return _CAPTION_PUNCT.sub(" ", text.lower()).split()


def _tfidf(
    counts: Counter[tuple[str, ...]], doc_freq: Counter[tuple[str, ...]], log_docs: float
) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
    """Per-order tf-idf vectors, their norms, and the length CIDEr-D compares (bigram count)."""
    vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(NGRAM_ORDER)]
    norm = [0.0] * NGRAM_ORDER
    length = 0
    for ngram, tf in counts.items():
        n = len(ngram) - 1
        weight = float(tf) * (log_docs - math.log(max(1.0, float(doc_freq[ngram]))))
        vec[n][ngram] = weight
        norm[n] += weight**2
        if n == 1:
            length += tf
    return vec, [math.sqrt(x) for x in norm], length


def _cider_sim(
    hyp: tuple[list[dict[tuple[str, ...], float]], list[float], int],
    ref: tuple[list[dict[tuple[str, ...], float]], list[float], int],
) -> list[float]:
    """Clipped cosine similarity per n-gram order with the Gaussian length penalty."""
    (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
    penalty = math.e ** (-(float(len_h - len_r) ** 2) / (2 * CIDER_SIGMA**2))
    out = []
    for n in range(NGRAM_ORDER):
        val = sum(min(w, vec_r[n].get(g, 0.0)) * vec_r[n].get(g, 0.0) for g, w in vec_h[n].items())
        if norm_h[n] != 0 and norm_r[n] != 0:
            val /= norm_h[n] * norm_r[n]
        out.append(val * penalty)
    return out


def cider_scores(hyps: Sequence[str], refs_list: References) -> list[float]:
    """CIDEr-D of each sample; document frequencies come from all samples' references."""
    _check_pairs(hyps, refs_list, "cider")
    refs_all = [
        [_ngrams(caption_tokens(r)) for r in refs] for refs in _reference_lists(refs_list, "cider")
    ]
    doc_freq: Counter[tuple[str, ...]] = Counter()
    for refs in refs_all:
        doc_freq.update({g for counts in refs for g in counts})
    log_docs = math.log(float(len(refs_all)))
    scores = []
    for hyp, refs in zip(hyps, refs_all, strict=True):
        hyp_vec = _tfidf(_ngrams(caption_tokens(hyp)), doc_freq, log_docs)
        summed = [0.0] * NGRAM_ORDER
        for ref in refs:
            sims = _cider_sim(hyp_vec, _tfidf(ref, doc_freq, log_docs))
            summed = [a + b for a, b in zip(summed, sims, strict=True)]
        scores.append(sum(summed) / NGRAM_ORDER / len(refs) * 10.0)
    return scores


def cider(hyps: Sequence[str], refs_list: References) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_scores`. The idf comes from the corpus itself, so
    a one-sample corpus always scores 0, as in pycocoevalcap."""
    scores = cider_scores(hyps, refs_list)
    return sum(scores) / len(scores)


# ---------------------------------------------------------------------------- answers

_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
_ARTICLES = frozenset({"a", "an", "the"})
_ANSWER_PUNCT = re.compile(r"[^\w\s]|_")


def normalize_answer(text: str) -> str:
    """VQA-style answer form: lower case, punctuation and articles dropped, small number words
    as digits ("Two." → "2", "the red one" → "red 1")."""
    words = _ANSWER_PUNCT.sub(" ", text.lower()).split()
    digits = {w: str(i) for i, w in enumerate(_NUMBER_WORDS)}
    return " ".join(digits.get(w, w) for w in words if w not in _ARTICLES)


def exact_match(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """Fraction of answers equal to (any of) their reference(s) after :func:`normalize_answer`."""
    _check_pairs(hyps, refs, "exact_match")
    hits = 0
    for hyp, ref in zip(hyps, _reference_lists(refs, "exact_match"), strict=True):
        hits += normalize_answer(hyp) in {normalize_answer(r) for r in ref}
    return hits / len(hyps)


# ---------------------------------------------------------------------------- transcripts

_ONES = _NUMBER_WORDS[:20]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor"}
_ABBREVIATION = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\b\.?")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?")
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}
_TRANSCRIPT_PUNCT = re.compile(r"[^\w\s']|_")


def number_to_words(n: int) -> str:
    """English cardinal words of a non-negative integer (``1905`` → "one thousand nine hundred
    five", no "and"), the form the reference transcripts spell numbers in."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number_to_words(n % 100)
        return f"{_ONES[n // 100]} hundred{rest}"
    for scale, name in _SCALES:
        if n >= scale:
            rest = "" if n % scale == 0 else " " + number_to_words(n % scale)
            return f"{number_to_words(n // scale)} {name}{rest}"
    raise AssertionError("unreachable")  # pragma: no cover


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match[str]) -> str:
    token = match.group(0).replace(",", "")
    ordinal = token[-2:].isalpha()
    token = token[:-2] if ordinal else token
    whole, _, fraction = token.partition(".")
    words = number_to_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return f" {_ordinal(words) if ordinal else words} "


def normalize_transcript(text: str) -> str:
    """Transcript form for WER: lower case, numbers and common abbreviations spelt out ("Mr."
    → "mister", "10" → "ten", "4th" → "fourth"), punctuation and hyphens as spaces,
    apostrophes dropped, single spaces."""
    text = _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(1)], text.lower())
    text = _NUMBER.sub(_spell_number, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _TRANSCRIPT_PUNCT.sub(" ", text).replace("'", "")
    return " ".join(text.split())


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def wer(hyps: Sequence[str], refs: Sequence[str], *, normalize: bool = True) -> float:
    """Corpus word error rate: total edits over total reference words, after
    :func:`normalize_transcript` (pass ``normalize=False`` to compare the texts as given)."""
    _check_pairs(hyps, refs, "wer")
    prep = normalize_transcript if normalize else (lambda s: " ".join(s.split()))
    edits = words = 0
    for i, (hyp, ref) in enumerate(zip(hyps, refs, strict=True)):
        ref_words = prep(ref).split()
        if not ref_words:
            raise InputError(f"wer: reference {i} has no words", modality="text")
        edits += edit_distance(ref_words, prep(hyp).split())
        words += len(ref_words)
    return edits / words


def caption_report(hyps: Sequence[str], refs_list: References) -> dict[str, float]:
    """BLEU-4, ROUGE-L and CIDEr-D of a set of captions, as one dict."""
    return {
        "bleu4": bleu4(hyps, refs_list),
        "rouge_l": rouge_l(hyps, refs_list),
        "cider": cider(hyps, refs_list),
    }
