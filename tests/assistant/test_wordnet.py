"""ImageNet probabilities folded into WordNet categories, read from Debian's WordNet 3.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.assistant.wordnet import (
    TOO_GENERAL,
    WORDNET_DIR,
    WordNetNouns,
    fold_labels,
    imagenet_taxonomy,
    imagenet_wnids,
)
from omnifuse.encoders.imagenet import imagenet_class_names
from omnifuse.errors import ConfigError, InvalidValueError, MissingDependencyError

if not (WORDNET_DIR / "data.noun").is_file():
    pytest.skip("Debian's wordnet package is not installed", allow_module_level=True)

NAMES = imagenet_class_names()


def probs_of(**named: float) -> np.ndarray:
    """A probability vector holding ``named`` class probabilities and zero elsewhere."""
    vector = np.zeros(len(NAMES))
    for name, p in named.items():
        vector[NAMES.index(name.replace("_", " "))] = p
    return vector


@pytest.fixture(scope="module")
def nouns() -> WordNetNouns:
    return WordNetNouns()


def test_wnids_are_the_class_order(nouns: WordNetNouns) -> None:
    """Each packaged id's synset has the class name of the same index among its lemmas, so a
    shifted or reordered id file fails here."""
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids)) and list(wnids) == sorted(wnids)
    matches = sum(
        name.lower() in {lemma.lower() for lemma in nouns.synset(int(wnid[1:])).lemmas}
        for wnid, name in zip(wnids, NAMES, strict=True)
    )
    assert matches == 1000


def test_synsets_parse_with_lemmas_counts_and_hypernyms(nouns: WordNetNouns) -> None:
    cat = nouns.synset(2121620)
    assert cat.wnid == "n02121620" and cat.lemmas == ("cat", "true cat")
    assert cat.name == "cat" and cat.tag_count > 0
    house_cat = nouns.synset(int(imagenet_wnids()[NAMES.index("tabby")][1:])).hypernyms
    assert 2121808 in house_cat  # tabby → domestic cat
    assert {2121620, 1317541} <= set(nouns.synset(2121808).hypernyms)  # cat, domestic animal
    assert 1740 in nouns.ancestors(2121808)  # everything ends at entity
    with pytest.raises(InvalidValueError, match="offset"):
        nouns.synset(12)


def test_missing_wordnet_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="apt-get install wordnet"):
        WordNetNouns(tmp_path)


def test_cat_breeds_fold_into_cat() -> None:
    folded = fold_labels(probs_of(tiger_cat=0.38, Egyptian_cat=0.37, tabby=0.17, lynx=0.01))
    assert [name for name, _ in folded] == ["cat"]
    assert folded[0][1] == pytest.approx(0.93)


def test_a_confident_class_keeps_its_own_name() -> None:
    assert fold_labels(probs_of(tripod=0.94, harmonica=0.01)) == [("tripod", pytest.approx(0.94))]
    assert fold_labels(probs_of(bubble=0.56)) == [("bubble", pytest.approx(0.56))]


def test_two_kinds_are_named_apart() -> None:
    folded = fold_labels(probs_of(tabby=0.35, Persian_cat=0.3, beagle=0.15, basset=0.15))
    assert folded == [("cat", pytest.approx(0.65)), ("hound", pytest.approx(0.3))]
    # Split evenly, the two kinds are only told apart one level up.
    even = fold_labels(probs_of(tabby=0.3, Persian_cat=0.25, beagle=0.2, basset=0.2))
    assert even == [("domestic animal", pytest.approx(0.95))]


def test_a_leading_breed_is_absorbed_by_its_kind() -> None:
    """One breed holds the majority, yet the cats together hold nearly all: "cat", not
    "Egyptian cat" followed by "cat"."""
    probs = probs_of(Egyptian_cat=0.62, tiger_cat=0.2, tabby=0.1, goldfish=0.04, tripod=0.04)
    assert fold_labels(probs) == [("cat", pytest.approx(0.92))]


def test_a_split_belief_goes_up_to_the_category_that_holds_it() -> None:
    pets = fold_labels(probs_of(tabby=0.35, beagle=0.35, ice_bear=0.2))
    assert pets == [("domestic animal", pytest.approx(0.7)), ("ice bear", pytest.approx(0.2))]
    wild = fold_labels(probs_of(tabby=0.3, timber_wolf=0.3, ice_bear=0.3))
    assert wild == [("mammal", pytest.approx(0.9))]


def test_scattered_belief_names_nothing_general() -> None:
    scattered = probs_of(football_helmet=0.16, bobsled=0.11, barbell=0.05, **{"go-kart": 0.07})
    assert fold_labels(scattered) == []
    assert fold_labels(np.full(1000, 1e-3)) == []
    general = {c.wnid for c in imagenet_taxonomy().categories} & TOO_GENERAL
    assert general == set()


def test_min_share_and_max_objects() -> None:
    probs = probs_of(tabby=0.4, beagle=0.35, goldfish=0.2)
    assert [n for n, _ in fold_labels(probs)] == ["domestic animal", "goldfish"]
    names = ["tabby", "beagle", "goldfish"]
    assert [n for n, _ in fold_labels(probs, cover=0.3)] == names
    assert [n for n, _ in fold_labels(probs, cover=0.3, max_objects=2)] == names[:2]
    assert [n for n, _ in fold_labels(probs, cover=0.3, min_share=0.25)] == names[:2]


def test_bad_probabilities_raise_typed_errors() -> None:
    with pytest.raises(InvalidValueError, match="1000"):
        fold_labels(np.ones(10) / 10)
    with pytest.raises(InvalidValueError):
        fold_labels(np.full(1000, 0.01))
    with pytest.raises(InvalidValueError):
        fold_labels(np.full(1000, np.nan))
    with pytest.raises(ConfigError):
        fold_labels(probs_of(tabby=1.0), cover=0.0)


@pytest.fixture(scope="module")
def effnet() -> object:
    from omnifuse.encoders import create

    return create("effnet-lite0")


def photo_probs(effnet: object, name: str) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    image = Image.fromarray(getattr(skimage_data, name)())
    logits: torch.Tensor = effnet.logits([image])  # type: ignore[attr-defined]
    return logits.softmax(dim=-1)[0].numpy()


def test_real_photos(effnet: object) -> None:
    """scikit-image's photos through EfficientNet-Lite0: the cat is a cat, the coffee an
    espresso; the astronaut's labels (helmet, bobsled, go-kart) hold no category, so none is
    claimed, and the classifier holds no person there to find."""
    cat = fold_labels(photo_probs(effnet, "chelsea"))
    assert cat[0][0] == "cat" and cat[0][1] > 0.85
    coffee = fold_labels(photo_probs(effnet, "coffee"))
    assert coffee[0][0] in {"espresso", "coffee", "cup"} and coffee[0][1] > 0.8
    astronaut = photo_probs(effnet, "astronaut")
    assert fold_labels(astronaut) == []
    person = next(c for c in imagenet_taxonomy().categories if c.name == "person")
    assert astronaut[person.members].sum() < 0.05
