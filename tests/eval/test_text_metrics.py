"""Text metrics against their reference implementations on the same inputs (within 1e-6)."""

from __future__ import annotations

import random

import pytest

from omnifuse.errors import InputError
from omnifuse.eval.text_metrics import (
    bleu4,
    caption_report,
    caption_tokens,
    cider,
    cider_scores,
    exact_match,
    normalize_answer,
    normalize_transcript,
    number_to_words,
    rouge_l,
    tokenize_13a,
    wer,
)

HAND_HYPS = [
    "a red circle to the left of a blue square.",
    "Two green stars, and a big-yellow triangle!",
    "the cat sat on the mat",
    "",
    "square",
    "a purple star (small) at 3.5 o'clock; price: $10,000 - see e.g. x/y",
]
HAND_REFS = [
    ["a red circle left of a blue square", "a blue square to the right of a red circle"],
    ["two green stars and a large yellow triangle"],
    ["the cat is on the mat", "there is a cat on the mat", "a cat sits on a mat"],
    ["an empty scene"],
    ["a small square", "square"],
    ["a small purple star at 3.5 o'clock, price $10,000 - e.g. x/y", "purple star"],
]
VOCAB = [
    "a",
    "the",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "star",
    "triangle",
    "left",
    "right",
    "of",
    "above",
    "big",
    "small",
    "is",
]


def random_corpus(seed: int, n: int = 40) -> tuple[list[str], list[list[str]]]:
    """Captions drawn from a small vocabulary (many shared n-grams), 1-4 references each."""
    rng = random.Random(seed)

    def sentence() -> str:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        return " ".join(words) + rng.choice(["", ".", " .", "!", ","])

    hyps = [sentence() for _ in range(n)]
    refs = [[sentence() for _ in range(rng.randint(1, 4))] for _ in range(n)]
    return hyps, refs


CORPORA = [(HAND_HYPS, HAND_REFS), random_corpus(0), random_corpus(1), random_corpus(2, n=5)]


def sacrebleu_bleu(hyps: list[str], refs: list[list[str]]) -> float:
    sacrebleu = pytest.importorskip("sacrebleu")
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    return float(sacrebleu.corpus_bleu(hyps, streams).score) / 100.0


@pytest.mark.parametrize(("hyps", "refs"), CORPORA)
def test_bleu4_matches_sacrebleu(hyps: list[str], refs: list[list[str]]) -> None:
    assert bleu4(hyps, refs) == pytest.approx(sacrebleu_bleu(hyps, refs), abs=1e-6)


def test_bleu4_known_values() -> None:
    assert bleu4(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(1.0)
    assert bleu4(["dog"], [["the cat sat on the mat"]]) == 0.0
    assert bleu4(["The Cat"], [["the cat"]], lowercase=True) == pytest.approx(
        sacrebleu_bleu(["the cat"], [["the cat"]]), abs=1e-6
    )


def test_13a_tokenisation_matches_sacrebleu() -> None:
    tokenizers = pytest.importorskip("sacrebleu.tokenizers.tokenizer_13a")
    reference = tokenizers.Tokenizer13a()
    for line in HAND_HYPS + [r for refs in HAND_REFS for r in refs] + ["a &amp; b &quot;c&quot;"]:
        assert tokenize_13a(line) == reference(line.rstrip()).split()


@pytest.mark.parametrize(("hyps", "refs"), CORPORA)
def test_rouge_l_matches_rouge_score(hyps: list[str], refs: list[list[str]]) -> None:
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    best = [scorer.score_multi(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)]
    expected = sum(best) / len(best)
    assert rouge_l(hyps, refs) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("hyps", "refs"), CORPORA)
def test_cider_matches_pycocoevalcap(hyps: list[str], refs: list[list[str]]) -> None:
    cider_module = pytest.importorskip("pycocoevalcap.cider.cider")

    def tok(s: str) -> str:
        return " ".join(caption_tokens(s))

    gts = {i: [tok(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [tok(h)] for i, h in enumerate(hyps)}
    expected_mean, expected_each = cider_module.Cider().compute_score(gts, res)
    assert cider(hyps, refs) == pytest.approx(float(expected_mean), abs=1e-6)
    assert cider_scores(hyps, refs) == pytest.approx(list(expected_each), abs=1e-6)


def test_cider_rewards_the_matching_caption() -> None:
    refs = [["a red circle"], ["a blue square"], ["a green star"]]
    right = cider_scores(["a red circle", "a blue square", "a green star"], refs)
    wrong = cider_scores(["a green star", "a red circle", "a blue square"], refs)
    assert min(right) > 1.0
    assert max(wrong) < 0.5


@pytest.mark.parametrize(("hyps", "refs"), CORPORA)
def test_wer_matches_jiwer(hyps: list[str], refs: list[list[str]]) -> None:
    jiwer = pytest.importorskip("jiwer")
    first = [r[0] for r in refs if normalize_transcript(r[0])]
    kept = [h for h, r in zip(hyps, refs, strict=True) if normalize_transcript(r[0])]
    expected = jiwer.wer(
        [normalize_transcript(r) for r in first], [normalize_transcript(h) for h in kept]
    )
    assert wer(kept, first) == pytest.approx(expected, abs=1e-6)


def test_wer_known_values() -> None:
    assert wer(["Mr. Smith paid 10 dollars."], ["mister smith paid ten dollars"]) == 0.0
    assert wer(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx(3 / 6)
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(2 / 3)
    assert wer(["Hello"], ["hello"], normalize=False) == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4. Queen of Clubs", "four queen of clubs"),
        ("Cold-hearted and ill-disposed.", "cold hearted and ill disposed"),
        (
            "In 1905, 3.25% of the 21st",
            "in one thousand nine hundred five three point two five percent of the twenty first",
        ),
        ("Don't stop, Dr. Who", "dont stop doctor who"),
        ("10,000 & 2,000,000", "ten thousand and two million"),
    ],
)
def test_normalize_transcript(text: str, expected: str) -> None:
    assert normalize_transcript(text) == expected


def test_number_to_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(15) == "fifteen"
    assert number_to_words(40) == "forty"
    assert number_to_words(99) == "ninety nine"
    assert number_to_words(300) == "three hundred"
    assert number_to_words(1_000_001) == "one million one"
    assert number_to_words(2_500_000_000) == "two billion five hundred million"


def test_exact_match_normalises_answers() -> None:
    assert normalize_answer("Two.") == "2"
    assert normalize_answer("The RED one!") == "red 1"
    hyps = ["Red.", "2", "a circle", "yes", "blue"]
    refs: list[str | list[str]] = ["red", "two", "circle", ["no", "nope"], "green"]
    assert exact_match(hyps, refs) == pytest.approx(3 / 5)


def test_caption_report_holds_every_metric() -> None:
    hyps, refs = HAND_HYPS, HAND_REFS
    report = caption_report(hyps, refs)
    assert report == {
        "bleu4": bleu4(hyps, refs),
        "rouge_l": rouge_l(hyps, refs),
        "cider": cider(hyps, refs),
    }
    assert 0 < report["bleu4"] < 1 and 0 < report["rouge_l"] < 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: bleu4(["a"], [["a"], ["b"]]),
        lambda: rouge_l([], []),
        lambda: cider(["a"], [[]]),
        lambda: wer(["a"], [""]),
        lambda: exact_match("a", "a"),
        lambda: bleu4(["a"], [[""]]),
    ],
)
def test_bad_inputs_raise_input_error(call: object) -> None:
    with pytest.raises(InputError):
        call()  # type: ignore[operator]
