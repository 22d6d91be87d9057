"""``GET /v1/experiments``: the sweep and tune folders under ``serve --experiments DIR``.

The listing, one experiment's leaderboard (parsed from its CSV), per-strategy results (the
accuracy with each subset of modalities present and the Shapley contributions, for sweeps) and
its summary, and its PNG plots. Ids and plot names are looked up in what the folder scan found,
never joined to a path (:mod:`omnifuse.serve.experiments`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from omnifuse.serve.api_errors import APIError
from omnifuse.serve.experiments import (
    Experiment,
    ExperimentFileError,
    ExperimentView,
    find_experiments,
    view_of,
)
from omnifuse.serve.openapi import ERROR_REF
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["experiments"])

ExperimentId = Annotated[str, Path(min_length=1, max_length=300)]
PlotName = Annotated[str, Path(min_length=1, max_length=200)]
PLOT_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


class ExperimentCard(BaseModel):
    """One experiment folder: its id, kind, title, leaderboard size, plots, last change."""

    id: str
    object: Literal["experiment"] = "experiment"
    kind: Literal["sweep", "tune"]
    title: str
    rows: int
    plots: list[str]
    modified: float
    problems: list[str]


class ExperimentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ExperimentCard]


class SubsetAccuracy(BaseModel):
    """Accuracy (and mean true-class probability) with only ``present`` modalities."""

    present: list[str]
    accuracy: float | None = None
    p_true: float | None = None


class ModelResult(BaseModel):
    """One strategy of a sweep: its test metrics, missing-modality accuracy and contributions."""

    name: str
    fusion: str
    kind: str
    modalities: list[str]
    accuracy: float | None = None
    metrics: dict[str, float | None]
    subsets: list[SubsetAccuracy]
    shapley: dict[str, float | None]
    weights: dict[str, float | None]
    ablation: dict[str, float | None]


class ExperimentDetail(ExperimentCard):
    """The leaderboard (``columns`` in file order, one object per row, numbers as numbers),
    the sweep's per-strategy ``models`` and the run's ``summary``."""

    columns: list[str]
    table: list[dict[str, Any]]
    models: list[ModelResult]
    summary: dict[str, Any]


def card(view: ExperimentView) -> dict[str, Any]:
    experiment = view.experiment
    return {
        "id": experiment.id,
        "kind": experiment.kind,
        "title": view.title,
        "rows": len(view.rows),
        "plots": view.plots,
        "modified": view.modified,
        "problems": view.problems,
    }


def experiments_of(state: ServerState) -> dict[str, Experiment]:
    root = state.config.experiments_dir
    return {} if root is None else find_experiments(root)


def experiment_named(state: ServerState, experiment_id: str) -> Experiment:
    if state.config.experiments_dir is None:
        raise APIError(
            404,
            "this server shows no experiments (start it with --experiments DIR)",
            code="experiment_not_found",
        )
    found = experiments_of(state).get(experiment_id)
    if found is None:
        raise APIError(404, f"no experiment {experiment_id[:100]!r}", code="experiment_not_found")
    return found


@router.get("/v1/experiments", response_model=ExperimentList)
async def list_experiments(request: Request) -> ExperimentList:
    """Every sweep and tune folder under the server's experiments folder (none when the server
    was started without one)."""
    state = state_of(request)

    def scan() -> list[dict[str, Any]]:
        return [card(view_of(e, models=False)) for e in experiments_of(state).values()]

    cards = await run_in_threadpool(scan)
    return ExperimentList(data=[ExperimentCard(**c) for c in cards])


@router.get("/v1/experiments/{experiment_id}", response_model=ExperimentDetail)
async def get_experiment(experiment_id: ExperimentId, request: Request) -> ExperimentDetail:
    """One experiment: its leaderboard, plots, per-strategy results and summary."""
    state = state_of(request)

    def read() -> ExperimentView:
        return view_of(experiment_named(state, experiment_id))

    view = await run_in_threadpool(read)
    return ExperimentDetail(
        **card(view),
        columns=view.columns,
        table=view.rows,
        models=[ModelResult(**m) for m in view.models],
        summary=view.summary,
    )


@router.get(
    "/v1/experiments/{experiment_id}/plots/{name}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The plot as a PNG image."},
        415: {
            "description": "The file named like a plot is not a PNG image",
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
        },
    },
)
async def get_plot(experiment_id: ExperimentId, name: PlotName, request: Request) -> Response:
    """One PNG plot of an experiment folder, by its file name (as listed in ``plots``)."""
    state = state_of(request)

    def read() -> bytes:
        try:
            return experiment_named(state, experiment_id).plot_bytes(name)
        except ExperimentFileError as err:
            raise APIError(err.status, err.message, code=err.code) from None

    return Response(await run_in_threadpool(read), media_type="image/png", headers=PLOT_HEADERS)
