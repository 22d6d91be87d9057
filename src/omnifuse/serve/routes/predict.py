"""``POST /v1/predict``: a trained fusion model on any subset of its modalities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from omnifuse.errors import MissingModalityError
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.inputs import decode, fetch_input
from omnifuse.serve.predictor import Prediction, Predictor
from omnifuse.serve.schemas import (
    LabelScore,
    MediaRef,
    PredictionOut,
    PredictRequest,
    PredictResponse,
)
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["predict"])


def column_of(predictor: Predictor, key: str) -> str:
    """A request key → the model's column: the column itself, or the one column of that kind."""
    if key in predictor.columns:
        return key
    matching = [c for c, kind in predictor.kinds.items() if kind == key]
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise APIError(
            400,
            f"model {predictor.name!r} has several {key} columns {matching}; name one",
            code="ambiguous_column",
        )
    raise APIError(
        400,
        f"model {predictor.name!r} has no input {key!r}; its inputs are "
        + ", ".join(f"{c} ({k})" for c, k in predictor.kinds.items()),
        code="unknown_column",
    )


async def fetch_sample(
    state: ServerState,
    predictor: Predictor,
    sample: dict[str, str | MediaRef | list[Any] | dict[str, Any]],
    index: int,
) -> dict[str, Any]:
    """Column → fetched input (text and inline values stay as they are)."""
    if not sample:
        raise MissingModalityError(
            "has no inputs; give at least one of " + ", ".join(predictor.columns),
            source=f"inputs[{index}]",
        )
    fetched: dict[str, Any] = {}
    for key, value in sample.items():
        column = column_of(predictor, key)
        if column in fetched:
            raise APIError(400, f"inputs[{index}]: column {column!r} given twice", code="duplicate")
        fetched[column] = await fetch_input(
            predictor.kinds[column], value, state.policy, label=f"inputs[{index}].{key}"
        )
    return fetched


def prepare_samples(
    state: ServerState, predictor: Predictor, samples: list[dict[str, Any]]
) -> list[Any]:
    """Decode and preprocess every sample (blocking; on a worker thread)."""
    prepared = []
    for i, sample in enumerate(samples):
        decoded = {
            column: decode(
                predictor.kinds[column], source, state.decode_limits, label=f"inputs[{i}].{column}"
            )
            for column, source in sample.items()
        }
        prepared.append(predictor.prepare(decoded))
    return prepared


def prediction_out(index: int, prediction: Prediction, explain: bool) -> PredictionOut:
    label, score = prediction.top[0]
    return PredictionOut(
        index=index,
        label=label,
        score=score,
        top=[LabelScore(label=name, score=value) for name, value in prediction.top],
        present=prediction.present,
        weights=prediction.weights,
        contributions=prediction.contributions if explain else None,
    )


@router.post("/v1/predict", response_model=PredictResponse)
async def predict(body: PredictRequest, request: Request) -> PredictResponse:
    """Predict from one sample (or a list); missing columns count as absent modalities.

    Each prediction lists the top outputs, the fusion's modality weights (when the fusion has
    them) and each present modality's Shapley contribution to the predicted output.
    """
    state = state_of(request)
    samples = body.inputs if isinstance(body.inputs, list) else [body.inputs]
    if not samples:
        raise APIError(400, "inputs must hold at least one sample", code="empty_input")
    if len(samples) > state.config.limits.max_items:
        raise APIError(
            413,
            f"{len(samples)} samples; at most {state.config.limits.max_items} per request",
            code="too_many_inputs",
        )
    predictor = await run_in_threadpool(state.components.predictor, body.model)
    fetched = [await fetch_sample(state, predictor, s, i) for i, s in enumerate(samples)]
    prepared = await run_in_threadpool(prepare_samples, state, predictor, fetched)
    batcher = state.components.batcher(f"predict:{predictor.name}", predictor.run)
    predictions = await batcher.submit([(p, body.top_k) for p in prepared])
    return PredictResponse(
        model=predictor.name,
        task=predictor.task,
        data=[prediction_out(i, p, body.explain) for i, p in enumerate(predictions)],
    )
