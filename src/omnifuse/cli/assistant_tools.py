"""The options of ``omnifuse ask`` and ``omnifuse chat`` that choose the assistant's tools
(trained model folders, an aligned index), which of them run, and how strictly a reply must
stand on what was perceived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from omnifuse.assistant.premise import PremiseTool
    from omnifuse.assistant.tools import RetrievalTool, Tool, Toolbox

ModelsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--model",
        help="A trained model folder to consult (a VQA model, a classifier); repeatable.",
    ),
]
IndexOption = Annotated[
    Path | None,
    typer.Option("--index", help="An index folder whose nearest items join the notes."),
]
AlignOption = Annotated[
    Path | None,
    typer.Option(
        "--align",
        help="An aligned model: embeds for --index (default: the index's own) and, once "
        "calibrated (omnifuse consistency calibrate), checks the question's premises against "
        "the image (tool 'consistency').",
    ),
]
ToolsOption = Annotated[
    str | None,
    typer.Option(
        "--tools",
        help="Comma-separated tools allowed to run (index, consistency, model:NAME, model:*; "
        "default all).",
    ),
]
GroundingOption = Annotated[
    str,
    typer.Option(
        help="How strictly a reply must stand on the notes: off, normal or strict "
        "(strict also needs what the question names to be in them)."
    ),
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-models/--llm-decides",
        help="A model asked the question itself gives the short answer (else the LLM's reply).",
    ),
]


@dataclass(frozen=True)
class ToolOptions:
    """What the tool options said."""

    models: Sequence[Path] = ()
    index: Path | None = None
    align: Path | None = None
    tools: str | None = None
    grounding: str = "normal"
    trust_models: bool = True

    def toolbox(self) -> Toolbox:
        """The tools these options name; models and indexes load when first consulted."""
        from omnifuse.align.consistency.checker import CALIBRATION_FILE
        from omnifuse.assistant.tools import TaskModelTool, Toolbox

        found: list[Tool] = [TaskModelTool(m) for m in self.models]
        if self.index is not None:
            found.append(self._retrieval())
        if self.align is not None and (self.align / CALIBRATION_FILE).is_file():
            found.append(self._premises(self.align))
        enabled = None if self.tools is None else [t.strip() for t in self.tools.split(",")]
        return Toolbox(found, enabled=[t for t in enabled if t] if enabled else None)

    @staticmethod
    def _premises(folder: Path) -> PremiseTool:
        """The premise check of a calibrated aligned model, loaded when first consulted."""
        from omnifuse.align.consistency import ConsistencyChecker
        from omnifuse.assistant.premise import PremiseTool

        return PremiseTool(lambda: ConsistencyChecker.load(folder))

    def _retrieval(self) -> RetrievalTool:
        from omnifuse.assistant.tools import RetrievalTool
        from omnifuse.cli.index import load_model
        from omnifuse.index import open_index

        assert self.index is not None
        index = open_index(self.index, read_only=True)
        return RetrievalTool(index, load_model(self.align, index).embed)
