"""One-attribute edits of ``world`` scenes, and the captions of the edited scenes.

A hard negative for cross-modal consistency is a caption that is almost true of an image: one
colour, one shape, one count or one relation wrong. Editing the *scene* and writing its caption
with the original caption's :class:`~omnifuse.data.world.language.CaptionPlan` (same object
order, templates and size words) gives a caption that differs from the true one exactly where
the scenes differ, and the scene JSON says what changed (:func:`changed_attribute`):

- ``colour``: one named object takes another colour (its colour-shape pair new to the scene);
- ``shape``: one named object takes another shape (likewise);
- ``count``: the scene holds one object more, of a colour-shape pair new to it, named last
  (a caption that names an object the image lacks is false; one that leaves an object out may
  still be true of it, so objects are only ever added);
- ``relation``: the two objects a relation caption relates trade places, so "above" becomes
  "below" (only relation captions have a relation to change).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.world.builder import CAPTION_STREAM
from omnifuse.data.world.language import CaptionPlan, plan_caption, write_caption
from omnifuse.data.world.scene import COLOURS, SHAPES, SIZES, Scene, SceneObject
from omnifuse.errors import ConfigError, InvalidValueError

SWAP_KINDS: tuple[str, ...] = ("colour", "shape", "count", "relation")
SINGLE_TO_LIST = (0, 1, 1, 2, 3)
"""A single-object caption's template → the list template it becomes with a second object
("a picture of {p}" → "a picture of {l}")."""


def edit_scene(
    scene: Scene, plan: CaptionPlan, kind: str, rng: np.random.Generator
) -> tuple[Scene, CaptionPlan] | None:
    """``scene`` with one attribute of kind ``kind`` changed, and the plan that describes it;
    None when the caption has no such attribute (a relation in a caption without one)."""
    if kind == "colour":
        return _recolour(scene, plan, rng, "colour", list(COLOURS))
    if kind == "shape":
        return _recolour(scene, plan, rng, "shape", list(SHAPES))
    if kind == "count":
        return _add_object(scene, plan, rng)
    if kind == "relation":
        return _swap_places(scene, plan)
    raise ConfigError(f"unknown edit {kind!r}; use one of {SWAP_KINDS}")


def _recolour(
    scene: Scene, plan: CaptionPlan, rng: np.random.Generator, field: str, values: list[str]
) -> tuple[Scene, CaptionPlan] | None:
    """One object (of those the caption names) given another ``field`` value."""
    taken = {(o.colour, o.shape) for o in scene.objects}
    options = []
    for index in plan.order:
        obj = scene.objects[index]
        for value in values:
            edited = replace(obj, colour=value) if field == "colour" else replace(obj, shape=value)
            if value != getattr(obj, field) and (edited.colour, edited.shape) not in taken:
                options.append((index, edited))
    if not options:
        return None
    index, edited = options[int(rng.integers(len(options)))]
    objects = list(scene.objects)
    objects[index] = edited
    return replace(scene, objects=tuple(objects)), plan


def _add_object(
    scene: Scene, plan: CaptionPlan, rng: np.random.Generator
) -> tuple[Scene, CaptionPlan]:
    """One object more, of a new colour-shape pair, named last."""
    taken = {(o.colour, o.shape) for o in scene.objects}
    kinds = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in taken]
    colour, shape = kinds[int(rng.integers(len(kinds)))]
    size = str(rng.choice(list(SIZES)))
    x, y = _free_place(scene, SIZES[size], rng)
    objects = (*scene.objects, SceneObject(shape, colour, size, x, y))
    order = (*plan.order, len(scene.objects))
    if plan.form == "single":
        plan = replace(plan, form="list", template=SINGLE_TO_LIST[plan.template])
    return replace(scene, objects=objects), replace(plan, order=order)


def _free_place(scene: Scene, radius: float, rng: np.random.Generator) -> tuple[float, float]:
    """Where a new object is farthest from the others among a few random places (the caption
    does not say where it is; the edited scene should still be drawable)."""
    low, high = radius + 0.03, 1.0 - radius - 0.03
    candidates = rng.uniform(low, high, size=(64, 2))
    centres = np.array([[o.x, o.y] for o in scene.objects])
    gaps = np.linalg.norm(candidates[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    x, y = candidates[int(gaps.argmax())]
    return round(float(x), 4), round(float(y), 4)


def _swap_places(scene: Scene, plan: CaptionPlan) -> tuple[Scene, CaptionPlan] | None:
    """The two related objects of a relation caption trade places."""
    if plan.form != "relation":
        return None
    first, second = plan.order[0], plan.order[1]
    a, b = scene.objects[first], scene.objects[second]
    objects = list(scene.objects)
    objects[first] = replace(a, x=b.x, y=b.y)
    objects[second] = replace(b, x=a.x, y=a.y)
    return replace(scene, objects=tuple(objects)), plan


def changed_attribute(original: Scene, edited: Scene) -> str | None:
    """Which one kind of attribute ``edited`` changes in ``original`` (``colour``, ``shape``,
    ``count`` or ``relation``), or None when it is not exactly one edit of one kind (nothing
    changed, or more than one thing did). Read from the scenes alone."""
    before, after = original.objects, edited.objects
    if original.background != edited.background:
        return None
    if len(after) == len(before) + 1:
        return "count" if after[: len(before)] == before else None
    if len(after) != len(before):
        return None
    diffs = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    if len(diffs) == 1:
        a, b = before[diffs[0]], after[diffs[0]]
        fields = [
            f for f in ("shape", "colour", "size", "x", "y") if getattr(a, f) != getattr(b, f)
        ]
        return fields[0] if fields in (["colour"], ["shape"]) else None
    if len(diffs) == 2:
        i, j = diffs
        a, b, a2, b2 = before[i], before[j], after[i], after[j]
        same_kinds = all(
            getattr(x, f) == getattr(y, f)
            for x, y in ((a, a2), (b, b2))
            for f in ("shape", "colour", "size")
        )
        traded = (a2.x, a2.y, b2.x, b2.y) == (b.x, b.y, a.x, a.y)
        return "relation" if same_kinds and traded else None
    return None


def swapped_captions(
    scene: Scene, plan: CaptionPlan, rng: np.random.Generator, kinds: tuple[str, ...] = SWAP_KINDS
) -> dict[str, tuple[str, Scene]]:
    """Per kind that applies, the caption of the edited scene and the edited scene."""
    out: dict[str, tuple[str, Scene]] = {}
    for kind in kinds:
        edited = edit_scene(scene, plan, kind, rng)
        if edited is not None:
            out[kind] = (write_caption(*edited), edited[0])
    return out


def premise_statements(scene: Scene, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    """What a question may take for granted about ``scene`` — ``(statement, true?, kind)`` —
    stated as the assistant states a presupposition: each object as "a red circle" (true) and
    with its colour or its shape changed to a pair the scene lacks (false, of that kind)."""
    taken = {(o.colour, o.shape) for o in scene.objects}
    out: list[tuple[str, bool, str]] = []
    for obj in scene.objects:
        out.append((f"a {obj.name}", True, "own"))
        recolour = [(c, obj.shape) for c in COLOURS if (c, obj.shape) not in taken]
        reshape = [(obj.colour, s) for s in SHAPES if (obj.colour, s) not in taken]
        first = "colour" if rng.random() < 0.5 else "shape"
        for kind in (first, "shape" if first == "colour" else "colour"):
            options = recolour if kind == "colour" else reshape
            if options:  # every shape of a colour may be in the scene already
                colour, shape = options[int(rng.integers(len(options)))]
                out.append((f"a {colour} {shape}", False, kind))
                break
    return out


def row_plan(row: Mapping[str, Any], seed: int) -> tuple[Scene, CaptionPlan]:
    """The scene and caption plan of a row of a world ``scenes`` manifest built with ``seed``,
    checked against the row's caption (a manifest of another version, or edited by hand, is
    refused rather than given wrong negatives)."""
    scene = Scene.from_dict(row["scene"])
    name = str(row.get("id", ""))
    try:
        index = int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise InvalidValueError(f"row {name!r} is not a world scene id (scene-NNNNN)") from None
    plan = plan_caption(scene, np.random.default_rng([seed, CAPTION_STREAM, index]))
    if write_caption(scene, plan) != row.get("caption"):
        raise InvalidValueError(
            f"row {name!r}: its caption is not the one world writes for its scene "
            f"with seed {seed}; the manifest was not built by this version of world"
        )
    return scene, plan


def dataset_seed(folder: str | Path) -> int:
    """The seed a world folder was built with (its ``dataset.json``)."""
    info = Path(folder) / "dataset.json"
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{info}: not a built world dataset ({err})") from None
    if data.get("name") != "world":
        raise ConfigError(f"{info}: dataset {data.get('name')!r} is not world")
    return int(data["seed"])
