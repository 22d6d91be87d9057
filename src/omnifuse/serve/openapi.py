"""The API description declares the JSON errors every operation can answer.

FastAPI describes the successful responses of each route, and a 422 in its own validation
shape, which this server never sends. :func:`declare_errors` rewrites the generated document
once: every operation lists the statuses it can be refused or failed with, each in the one
error shape (:class:`ErrorResponse`), so clients generated from the document (and schemathesis)
know the bodies of failures as well as of successes. The statuses follow where they come from:

- the guard in front of every route: 400 (a Host that is not the server's, a malformed
  Content-Length), 413 (a body over the limit), and 401 on ``/v1/*`` and ``/metrics`` when the
  server has API keys;
- request validation (422) wherever there are parameters or a body;
- the API's own refusals on ``/v1/*``: unknown model (404), unavailable component, index or
  overload (503), a step over its time (504); where a request names inputs, a path or URL
  not allowed (403), and where it carries a body, media in an unsupported format (415);
- 500 for anything unexpected, everywhere.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from omnifuse.serve.guard import PROTECTED_PREFIXES


class ErrorDetail(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    message: str
    """What went wrong, in words that name the field, input or limit."""
    type: str
    """The kind (OpenAI's names): ``invalid_request_error``, ``authentication_error``..."""
    code: str
    """A stable identifier of the cause, e.g. ``host_not_allowed``, ``model_not_found``."""


class ErrorResponse(BaseModel):
    """The body of every error: ``{"error": {"message", "type", "code"}}``."""

    error: ErrorDetail


MEANINGS = {
    400: "Bad request: malformed input, a Host that is not this server's, invalid JSON",
    401: "Missing or invalid API key (when the server has keys)",
    403: "A file path or URL the server may not read",
    404: "Unknown model, or a component this server does not have",
    413: "Request body, media or item count over a limit",
    415: "Media in a format that cannot be decoded",
    422: "A field with an invalid value (the message names it)",
    500: "Unexpected server error (details in the server log)",
    503: "A component is unavailable or the server is overloaded; retry later",
    504: "The request took longer than the server's limit",
}
ERROR_REF = "#/components/schemas/ErrorResponse"
GENERATED_422 = "Validation Error"
"""FastAPI's description of the 422 it declares itself (replaced by :data:`MEANINGS`)."""
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def error_statuses(path: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses ``operation`` on ``path`` can answer (see the module description)."""
    statuses = {400, 413, 500}
    if path.startswith(PROTECTED_PREFIXES):
        statuses.add(401)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if path.startswith("/v1/"):
        statuses |= {404, 503, 504}
        if operation.get("parameters") or operation.get("requestBody"):
            statuses.add(403)
        if operation.get("requestBody"):
            statuses.add(415)
    return sorted(statuses)


def add_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the error responses on every operation and the error schema among its
    components (FastAPI's unused validation schemas removed). An error status a route declares
    itself keeps its description and gets the error shape."""
    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["ErrorResponse"] = schema
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(declared | set(error_statuses(path, operation))):
                given = responses.get(str(status), {}).get("description")
                if given in (None, "", GENERATED_422):
                    given = MEANINGS.get(status, HTTPStatus(status).phrase)
                responses[str(status)] = {
                    "description": given,
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return document


def declare_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``, ``/docs``) declare the error responses."""
    generate = app.openapi  # FastAPI's: cached, regenerated when routes are added

    def openapi() -> dict[str, Any]:
        document = generate()
        if "ErrorResponse" not in document.get("components", {}).get("schemas", {}):
            add_error_responses(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
