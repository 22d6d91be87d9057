"""ImageNet labels folded into WordNet categories: "cat 93 %" instead of three cat breeds.

An ImageNet classifier spreads its belief over near-synonyms (``tiger cat 38 %, Egyptian cat
37 %, tabby 17 %``), and a reader who sees the top label alone is misled ("a tiger"). The 1000
ImageNet classes are WordNet noun synsets, so the probability of every category is the sum of
the probabilities of the classes below it in WordNet's hypernym graph; the category worth
naming is the most specific *everyday* one that holds most of the mass.

"Everyday" is measured, not listed: a category qualifies when one of its words was tagged in
that sense in WordNet's sense-tagged corpus (``cntlist.rev``), so ``cat`` (18 tags) qualifies and
``domestic_cat``, ``feline`` in its noun sense or ``placental`` do not; the word shown is the
sense's most tagged lemma. A short list of uselessly general categories (entity, object,
artifact, organism, ...) is never reported.

The WordNet 3.0 database is read from Debian's ``wordnet`` package (``/usr/share/wordnet``), the
class ids from the package file ``encoders/imagenet_wnids.txt`` (the sorted ILSVRC-2012 synset
ids, in class-index order).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from omnifuse.errors import ConfigError, InvalidValueError, MissingDependencyError

WORDNET_DIR = Path("/usr/share/wordnet")
WNIDS_FILE = "imagenet_wnids.txt"
NUM_CLASSES = 1000

TOO_GENERAL = frozenset(
    {
        "n00001740",  # entity
        "n00001930",  # physical entity
        "n00002137",  # abstraction
        "n00002684",  # object, physical object
        "n00003553",  # whole, unit
        "n00004258",  # living thing, animate thing
        "n00004475",  # organism, being
        "n00021939",  # artifact, artefact
        "n03575240",  # instrumentality, instrumentation
        "n00020827",  # matter
        "n04424418",  # thing
        "n00007347",  # causal agent, cause
        "n00019128",  # natural object
        "n03183080",  # device
        "n04341686",  # structure, construction
        "n03122748",  # covering
        "n03094503",  # container
        "n03294048",  # equipment
        "n03563967",  # implement
        "n03699975",  # machine
        "n01471682",  # vertebrate, craniate
        "n01466257",  # chordate
        "n00027167",  # location
        "n09287968",  # geological formation
        "n03076708",  # commodity, trade good
        "n03100490",  # conveyance, transport
        "n03574816",  # instrument
        "n04014297",  # protective covering
        "n03892891",  # part, portion (of an artifact)
        "n13809207",  # part, component
        "n04377057",  # system
        "n00022903",  # article
        "n15046900",  # solid
        "n07570720",  # nutriment, sustenance
        "n03297735",  # establishment
        "n03430959",  # gear, paraphernalia
        "n03096960",  # control, controller
        "n04359589",  # support
    }
)
"""Categories that say too little to be worth naming, even when they hold all the mass."""


@dataclass(frozen=True)
class Synset:
    """One WordNet noun synset: its lemmas (spaces, not underscores), how often each was tagged
    in this sense, and the offsets of its hypernyms (instance hypernyms included)."""

    offset: int
    lemmas: tuple[str, ...]
    tag_counts: tuple[int, ...]
    hypernyms: tuple[int, ...]

    @property
    def wnid(self) -> str:
        return f"n{self.offset:08d}"

    @property
    def name(self) -> str:
        """The lemma most often tagged in this sense; the first one when none was tagged."""
        best = max(range(len(self.lemmas)), key=lambda i: (self.tag_counts[i], -i))
        return self.lemmas[best]

    @property
    def tag_count(self) -> int:
        return max(self.tag_counts, default=0)


class WordNetNouns:
    """Random access to WordNet's noun synsets by offset (the offset is the line's byte offset
    in ``data.noun``, so nothing is parsed that is not asked for)."""

    def __init__(self, root: str | Path = WORDNET_DIR) -> None:
        self.root = Path(root)
        data, counts = self.root / "data.noun", self.root / "cntlist.rev"
        if not data.is_file() or not counts.is_file():
            raise MissingDependencyError(f"WordNet 3.0 (data.noun in {self.root})", apt="wordnet")
        self._data = data.read_bytes()
        self._tags = _read_tag_counts(counts)
        self._cache: dict[int, Synset] = {}
        self._index: dict[str, tuple[int, ...]] | None = None

    def synset(self, offset: int) -> Synset:
        if offset not in self._cache:
            self._cache[offset] = self._parse(offset)
        return self._cache[offset]

    def _parse(self, offset: int) -> Synset:
        end = self._data.find(b"\n", offset)
        line = self._data[offset : end if end >= 0 else None].decode("utf-8")
        fields = line.split(" ")
        if not line or fields[0] != f"{offset:08d}" or fields[2] != "n":
            raise InvalidValueError(f"no noun synset at offset {offset:08d} of WordNet")
        lex_file, n_words = int(fields[1]), int(fields[3], 16)
        words = fields[4 : 4 + 2 * n_words]
        lemmas, counts = [], []
        for word, lex_id in zip(words[::2], words[1::2], strict=True):
            key = f"{word.lower()}%1:{lex_file:02d}:{int(lex_id, 16):02d}::"
            lemmas.append(word.replace("_", " "))
            counts.append(self._tags.get(key, 0))
        at = 4 + 2 * n_words
        pointers = fields[at + 1 : at + 1 + 4 * int(fields[at])]
        hypernyms = tuple(
            int(pointers[i + 1])
            for i in range(0, len(pointers), 4)
            if pointers[i] in ("@", "@i") and pointers[i + 2] == "n"
        )
        return Synset(offset, tuple(lemmas), tuple(counts), hypernyms)

    def offsets_of(self, lemma: str) -> tuple[int, ...]:
        """The noun synsets a word belongs to (``index.noun``), most common sense first."""
        if self._index is None:
            self._index = _read_noun_index(self.root / "index.noun")
        return self._index.get(lemma.lower().replace(" ", "_"), ())

    def broader(self, lemma: str, depth: int = 3) -> set[str]:
        """The lemmas of the synsets up to ``depth`` hypernym steps above the most common sense
        of ``lemma`` (``espresso`` → coffee, java, beverage, ...), lower-cased, leaving out the
        categories of :data:`TOO_GENERAL` (entity, object, organism, ...)."""
        found: set[str] = set()
        level = set(self.offsets_of(lemma)[:1])
        for _ in range(depth):
            level = {parent for offset in level for parent in self.synset(offset).hypernyms}
            named = [offset for offset in level if f"n{offset:08d}" not in TOO_GENERAL]
            found |= {name.lower() for offset in named for name in self.synset(offset).lemmas}
        return found

    def ancestors(self, offset: int) -> set[int]:
        """The synset itself and every synset above it."""
        seen, todo = {offset}, [offset]
        while todo:
            for parent in self.synset(todo.pop()).hypernyms:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen


def _read_noun_index(path: Path) -> dict[str, tuple[int, ...]]:
    """``index.noun``: lemma → its synset offsets (the last ``synset_cnt`` fields of a line)."""
    index = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        fields = line.split()
        count = int(fields[2])
        index[fields[0]] = tuple(int(f) for f in fields[-count:])
    return index


def _read_tag_counts(path: Path) -> dict[str, int]:
    """``cntlist.rev``: ``sense_key sense_number tag_count`` per line."""
    counts = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3:
            counts[parts[0]] = int(parts[2])
    return counts


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 synset ids (``n02123159`` …), indexed by class id."""
    package = resources.files("omnifuse.encoders")
    text = package.joinpath(WNIDS_FILE).read_text(encoding="utf-8")
    wnids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(wnids) != NUM_CLASSES:
        raise RuntimeError(f"{WNIDS_FILE} holds {len(wnids)} ids, expected {NUM_CLASSES}")
    return wnids


@dataclass(frozen=True)
class Category:
    """A set of ImageNet classes that some everyday WordNet category covers exactly."""

    name: str
    wnid: str
    members: np.ndarray  # (C,) bool: the classes below the category


class ImageNetTaxonomy:
    """The everyday WordNet categories above the 1000 ImageNet classes, and the folding of a
    probability vector into them.

    Categories covering the same classes are merged under the most tagged word of the chain
    (``espresso`` alone below ``coffee`` reads "coffee"); each class is a category of its own.
    """

    def __init__(self, nouns: WordNetNouns, class_names: Sequence[str] | None = None) -> None:
        wnids = imagenet_wnids()
        if class_names is None:
            from omnifuse.encoders.imagenet import imagenet_class_names

            class_names = imagenet_class_names()
        if len(class_names) != len(wnids):
            raise ConfigError(f"{len(class_names)} class names for {len(wnids)} WordNet ids")
        below: dict[int, list[int]] = {}
        for index, wnid in enumerate(wnids):
            for offset in nouns.ancestors(int(wnid[1:])):
                below.setdefault(offset, []).append(index)
        leaves = {int(w[1:]): name for w, name in zip(wnids, class_names, strict=True)}
        best: dict[tuple[int, ...], tuple[tuple[int, int], Category]] = {}
        for offset, classes in below.items():
            synset = nouns.synset(offset)
            is_leaf = offset in leaves
            if synset.wnid in TOO_GENERAL or not (is_leaf or synset.tag_count > 0):
                continue
            name = leaves[offset] if is_leaf and synset.tag_count == 0 else synset.name
            members = np.zeros(len(wnids), dtype=bool)
            members[classes] = True
            # A class names its own set (bubble, not "form"); a wider set takes its most
            # tagged word (coffee, not "beverage" for the same handful of classes).
            rank = (1, 0) if is_leaf and len(classes) == 1 else (0, synset.tag_count)
            key = tuple(classes)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, Category(name, synset.wnid, members))
        self.categories = [category for _, category in best.values()]
        self._members = np.stack([c.members for c in self.categories]).astype(np.float64)
        self._sizes = self._members.sum(axis=1)

    def fold(
        self,
        probs: np.ndarray | Sequence[float],
        *,
        cover: float = 0.6,
        min_share: float = 0.1,
        max_objects: int = 3,
    ) -> list[tuple[str, float]]:
        """The categories that hold the classifier's belief, as ``(name, summed probability)``.

        Greedy: the most specific category holding more than ``cover`` of the probability not
        yet explained is named, its classes are set aside, and so on while the named category
        holds at least ``min_share``; at most ``max_objects`` are named. A category found later
        that contains one named before replaces it with the sum of both, so a leading breed
        and its siblings read "cat 97%" rather than "Egyptian cat 54%, cat 43%".
        """
        remaining = np.asarray(probs, dtype=np.float64).copy()
        if remaining.shape != (NUM_CLASSES,) or not np.isfinite(remaining).all():
            raise InvalidValueError(
                f"expected {NUM_CLASSES} finite class probabilities, got shape {remaining.shape}"
            )
        if (remaining < 0).any() or remaining.sum() > 1.0 + 1e-4:
            raise InvalidValueError("class probabilities must be ≥ 0 and sum to at most 1")
        if not 0 < cover <= 1 or not 0 <= min_share <= 1 or max_objects < 1:
            raise ConfigError("need 0 < cover ≤ 1, 0 ≤ min_share ≤ 1 and max_objects ≥ 1")
        found: list[tuple[int, float]] = []  # (category index, probability it holds)
        while True:
            mass = self._members @ remaining  # (K,)
            enough = (mass > cover * remaining.sum()) & (mass >= max(min_share, 1e-12))
            if not enough.any():
                break
            # Fewest classes first; among equals the one holding more.
            order = np.lexsort((-mass, self._sizes))
            pick = next(int(i) for i in order if enough[i])
            members = self.categories[pick].members
            inside = [f for f in found if not (self.categories[f[0]].members & ~members).any()]
            if not inside and len(found) == max_objects:
                break
            found = [f for f in found if f not in inside]
            found.append((pick, float(mass[pick]) + sum(p for _, p in inside)))
            remaining[members] = 0.0
        found.sort(key=lambda f: -f[1])
        return [(self.categories[index].name, p) for index, p in found]


@functools.cache
def imagenet_taxonomy(root: str = str(WORDNET_DIR)) -> ImageNetTaxonomy:
    """The taxonomy over the packaged ImageNet classes, built once per WordNet folder."""
    return ImageNetTaxonomy(WordNetNouns(root))


def fold_labels(
    probs: np.ndarray | Sequence[float],
    *,
    cover: float = 0.6,
    min_share: float = 0.1,
    max_objects: int = 3,
) -> list[tuple[str, float]]:
    """ImageNet class probabilities (1000) folded into everyday categories, e.g.
    ``[("cat", 0.93)]`` for a photo the classifier splits between three cat breeds."""
    return imagenet_taxonomy().fold(
        probs, cover=cover, min_share=min_share, max_objects=max_objects
    )
