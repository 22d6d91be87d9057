"""Captions, questions and answers for ``world`` scenes.

Captions name every object by colour and shape (sometimes size too) and sometimes one spatial
relation, in varied templates, so a caption is true of its scene and tells it apart from others.

Questions come in four types: ``attribute`` ("what colour is the circle?"), ``count`` ("how many red
shapes are there?"), ``existence`` ("is there a green triangle?") and ``spatial`` ("is the red
circle to the left of the blue square?"). Answers are single words from :data:`ANSWERS`, so VQA is
answer classification. An :class:`AnswerBalancer` picks, for each question, the answer least used
so far within its type and only then a question with that answer, which keeps the answers of every
type close to uniform: a model that sees only the question (or only the answer prior) does poorly,
and the image has to be consulted. "No" existence questions are near misses (a colour or a shape
from the scene in a wrong combination), so the question text alone does not give them away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from omnifuse.data.world.scene import COLOURS, SHAPES, SIZES, Scene, SceneObject, holds

QTYPES: tuple[str, ...] = ("attribute", "count", "existence", "spatial")
COUNT_ANSWERS: tuple[str, ...] = ("0", "1", "2", "3", "4")
ANSWERS: tuple[str, ...] = ("yes", "no", *COUNT_ANSWERS, *COLOURS, *SHAPES, *SIZES)
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
RELATION_PHRASES: dict[str, str] = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}


@dataclass(frozen=True)
class Question:
    """A question about one scene, its one-word answer and its type."""

    text: str
    answer: str
    qtype: str


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------- captions


@dataclass(frozen=True)
class CaptionPlan:
    """Every choice a caption makes, apart from the scene itself: the order its objects are
    named in (indices into ``scene.objects``), whether sizes are said, the caption's form
    (``single``, ``list`` or ``relation``) and its template (an index into the form's templates;
    for ``relation`` the axis, 0 horizontal or 1 vertical). Writing one plan for a scene and for
    an edited copy of it gives two captions that differ only where the scenes do."""

    order: tuple[int, ...]
    with_size: bool
    form: str
    template: int


SINGLE_TEMPLATES: tuple[str, ...] = (
    "{p}",
    "a single {b}",
    "one {b} on a plain background",
    "a picture of {p}",
    "there is one shape: {p}",
)
LIST_TEMPLATES: tuple[str, ...] = (
    "{l}",
    "{n} shapes: {l}",
    "a picture of {l}",
    "there are {n} shapes: {l}",
)
RELATION_AXES: tuple[tuple[str, str], ...] = (("left of", "right of"), ("above", "below"))


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A true, identifying description of ``scene``."""
    return write_caption(scene, plan_caption(scene, rng))


def plan_caption(scene: Scene, rng: np.random.Generator) -> CaptionPlan:
    """The random choices of :func:`caption`, drawn in its order from ``rng``."""
    order = tuple(int(i) for i in rng.permutation(len(scene.objects)))
    with_size = bool(rng.random() < 0.5)
    if len(order) == 1:
        return CaptionPlan(order, with_size, "single", int(rng.integers(len(SINGLE_TEMPLATES))))
    if rng.random() < 0.5:
        return CaptionPlan(order, with_size, "relation", 0 if rng.random() < 0.5 else 1)
    return CaptionPlan(order, with_size, "list", int(rng.integers(len(LIST_TEMPLATES))))


def write_caption(scene: Scene, plan: CaptionPlan) -> str:
    """The caption ``plan`` describes for ``scene`` (a relation caption relates the first two
    objects of its order along its axis, as they lie in ``scene``)."""
    objects = [scene.objects[i] for i in plan.order]
    phrases = [_object_phrase(o, plan.with_size) for o in objects]
    if plan.form == "single":
        bare = phrases[0].removeprefix("a ")
        return SINGLE_TEMPLATES[plan.template].format(p=phrases[0], b=bare)
    if plan.form == "relation":
        return _relation_caption(objects, phrases, RELATION_AXES[plan.template])
    return LIST_TEMPLATES[plan.template].format(l=_join(phrases), n=_number_word(len(phrases)))


def _number_word(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else ("five", "six")[count - 5]


def _object_phrase(obj: SceneObject, with_size: bool) -> str:
    return f"a {obj.size} {obj.name}" if with_size else f"a {obj.name}"


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _relation_caption(objects: list[SceneObject], phrases: list[str], axis: tuple[str, str]) -> str:
    """``"a red circle above a blue square, with a green star"``: the first two objects related."""
    a, b = objects[0], objects[1]
    relation = next(r for r in axis if holds(r, a, b))
    text = f"{phrases[0]} {RELATION_PHRASES[relation]} {phrases[1]}"
    if len(objects) > 2:
        text += ", with " + _join(phrases[2:])
    return text


# ----------------------------------------------------------------------------- questions


def question_candidates(qtype: str, scene: Scene, rng: np.random.Generator) -> list[Question]:
    """Every question of ``qtype`` that has one clear answer in ``scene``."""
    makers = {
        "attribute": _attribute_questions,
        "count": _count_questions,
        "existence": _existence_questions,
        "spatial": _spatial_questions,
    }
    if qtype not in makers:
        raise ValueError(f"unknown question type {qtype!r}; use one of {QTYPES}")
    return [Question(text, answer, qtype) for text, answer in makers[qtype](scene, rng)]


def _attribute_questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    shapes = Counter(o.shape for o in scene.objects)
    colours = Counter(o.colour for o in scene.objects)
    out: list[tuple[str, str]] = []
    for o in scene.objects:
        if shapes[o.shape] == 1:
            template = _pick(rng, ("what colour is the {s}?", "which colour does the {s} have?"))
            out.append((template.format(s=o.shape), o.colour))
        if colours[o.colour] == 1:
            template = _pick(
                rng, ("what shape is the {c} object?", "what is the shape of the {c} thing?")
            )
            out.append((template.format(c=o.colour), o.shape))
        template = _pick(rng, ("what size is the {n}?", "is the {n} small or large?"))
        out.append((template.format(n=o.name), o.size))
    return out


def _count_questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    objs = scene.objects
    everything = ("how many shapes are there?", "how many objects are in the picture?")
    out = [(_pick(rng, everything), str(len(objs)))]
    for colour in COLOURS:
        template = _pick(
            rng, ("how many {c} shapes are there?", "how many {c} objects can you see?")
        )
        out.append((template.format(c=colour), str(sum(o.colour == colour for o in objs))))
    for shape in SHAPES:
        template = _pick(rng, ("how many {s}s are there?", "how many {s}s can you see?"))
        out.append((template.format(s=shape), str(sum(o.shape == shape for o in objs))))
    return out


def _existence_questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    templates = ("is there a {n}?", "is there a {n} in the picture?", "can you see a {n}?")
    present = {(o.colour, o.shape) for o in scene.objects}
    near_misses = {
        (colour, shape)
        for o in scene.objects
        for colour, shape in [(o.colour, s) for s in SHAPES] + [(c, o.shape) for c in COLOURS]
        if (colour, shape) not in present
    }
    out = [(_pick(rng, templates).format(n=f"{c} {s}"), "yes") for c, s in sorted(present)]
    out += [(_pick(rng, templates).format(n=f"{c} {s}"), "no") for c, s in sorted(near_misses)]
    return out


def _spatial_questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ref in scene.objects:
        others = [o for o in scene.objects if o is not ref]
        for relation, phrase in RELATION_PHRASES.items():
            for o in others:
                answer = "yes" if holds(relation, o, ref) else "no"
                out.append((f"is the {o.name} {phrase} the {ref.name}?", answer))
            matching = [o for o in others if holds(relation, o, ref)]
            if len(matching) == 1:
                out.append((f"what shape is {phrase} the {ref.name}?", matching[0].shape))
                out.append(
                    (f"what colour is the shape {phrase} the {ref.name}?", matching[0].colour)
                )
    return out


def answer_kind(answer: str) -> str:
    """What an answer is: ``yes/no``, ``number``, ``colour``, ``shape`` or ``size``."""
    if answer in ("yes", "no"):
        return "yes/no"
    if answer in COUNT_ANSWERS:
        return "number"
    if answer in COLOURS:
        return "colour"
    if answer in SHAPES:
        return "shape"
    if answer in SIZES:
        return "size"
    raise ValueError(f"{answer!r} is not in the answer vocabulary")


class AnswerBalancer:
    """Chooses among candidate questions so that answers stay evenly spread.

    Within a question type it first takes the least used kind of answer (a yes/no question, a
    colour, ...), then the least used answer of that kind, and only then a question with that
    answer. The question text tells the kind of answer, so what matters for a text-only model is
    that the answers of each kind are uniform.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, Counter[str]] = {qtype: Counter() for qtype in QTYPES}
        self.answers: dict[str, Counter[str]] = {qtype: Counter() for qtype in QTYPES}

    def choose(self, candidates: list[Question], rng: np.random.Generator) -> Question:
        if not candidates:
            raise ValueError("no candidate questions to choose from")
        qtype = candidates[0].qtype
        kind = _least_used(self.kinds[qtype], {answer_kind(q.answer) for q in candidates}, rng)
        answers = {q.answer for q in candidates if answer_kind(q.answer) == kind}
        answer = _least_used(self.answers[qtype], answers, rng)
        chosen = _pick_question(rng, [q for q in candidates if q.answer == answer])
        self.kinds[qtype][kind] += 1
        self.answers[qtype][answer] += 1
        return chosen


def _least_used(counts: Counter[str], options: set[str], rng: np.random.Generator) -> str:
    ordered = sorted(options)
    fewest = min(counts[o] for o in ordered)
    return _pick(rng, [o for o in ordered if counts[o] == fewest])


def _pick_question(rng: np.random.Generator, questions: list[Question]) -> Question:
    return questions[int(rng.integers(len(questions)))]


def ask(
    scene: Scene, count: int, rng: np.random.Generator, balancer: AnswerBalancer
) -> list[Question]:
    """``count`` distinct questions about ``scene``, cycling through the question types."""
    start = int(rng.integers(len(QTYPES)))
    asked: list[Question] = []
    for j in range(count * len(QTYPES)):
        if len(asked) == count:
            break
        qtype = QTYPES[(start + j) % len(QTYPES)]
        texts = {q.text for q in asked}
        fresh = [q for q in question_candidates(qtype, scene, rng) if q.text not in texts]
        if fresh:
            asked.append(balancer.choose(fresh, rng))
    return asked
