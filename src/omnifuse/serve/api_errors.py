"""One error shape for every failure: ``{"error": {"message", "type", "code"}}`` (OpenAI style).

omnifuse's typed errors map to statuses by what went wrong: an input too large is 413, an
unsupported format 415, a value that cannot be used 422, any other bad input 400, an unknown
model 404, a missing optional component or a server that does not answer (a Milvus server
holding the index) 503. Request validation errors are 422 in the same
shape, naming the field. Anything unexpected is logged with its traceback and answered 500
without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnifuse.errors import (
    ConfigError,
    InputError,
    InputTooLargeError,
    InvalidValueError,
    MissingDependencyError,
    MissingModalityError,
    ServiceUnavailableError,
    UnknownComponentError,
    UnsupportedFormatError,
)
from omnifuse.serve.batching import BatchTimeout, Overloaded

log = logging.getLogger("omnifuse.serve")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    501: "server_error",
    503: "overloaded_error",
    504: "timeout_error",
}
CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_format",
    422: "invalid_value",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}


class APIError(Exception):
    """An error the API answers with ``status`` and ``message`` (``code`` refines the kind)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "error")
        self.headers = headers


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in, once it passes the limit (an ``HTTPException`` so the
    framework's body parsing lets it through unchanged)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit} bytes")


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
            "code": code or CODES.get(status, "error"),
        }
    }


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code), status_code=status, headers=headers)


def input_status(err: InputError) -> int:
    """The HTTP status of a bad input."""
    if isinstance(err, InputTooLargeError):
        return 413
    if isinstance(err, UnsupportedFormatError):
        return 415
    if isinstance(err, (InvalidValueError, MissingModalityError)):
        return 422
    return 400


def as_api_error(err: BaseException) -> APIError | None:
    """The API error for an omnifuse (or batching) exception; None when it is unexpected."""
    if isinstance(err, APIError):
        return err
    if isinstance(err, InputError):
        return APIError(input_status(err), str(err), code=type(err).__name__)
    if isinstance(err, UnknownComponentError):
        return APIError(404, str(err), code="model_not_found")
    if isinstance(err, MissingDependencyError):
        return APIError(503, str(err), code="component_unavailable")
    if isinstance(err, ServiceUnavailableError):
        return APIError(503, str(err), code="service_unavailable", headers={"Retry-After": "5"})
    if isinstance(err, ConfigError):
        return APIError(400, str(err), code="invalid_setting")
    if isinstance(err, Overloaded):
        return APIError(503, str(err), code="overloaded", headers={"Retry-After": "1"})
    if isinstance(err, BatchTimeout):
        return APIError(504, str(err), code="timeout")
    return None


TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "function-after"})
"""Names pydantic puts in an error's location for the branches of a union, not fields."""


def error_location(loc: Sequence[Any]) -> str:
    """``("body", "input", "list[...]", 0)`` → ``input[0]``; union branch tags are dropped."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part) in TYPE_TAGS:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_message(errors: Sequence[Any]) -> str:
    """Pydantic's errors as one line: ``input: Input should be a valid string; ...``."""
    parts = list(
        dict.fromkeys(
            f"{error_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors
        )
    )
    more = len(parts) - 5
    return "; ".join(parts[:5]) + (f" (and {more} more)" if more > 0 else "")


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    err = as_api_error(exc)
    if err is None:
        return await _unexpected(request, exc)
    return error_response(err.status, err.message, err.code, err.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
        reason = detail.get("error", "malformed") if isinstance(detail, dict) else "malformed"
        return error_response(400, f"the request body is not valid JSON ({reason})", "bad_json")
    return error_response(422, validation_message(errors), "validation_error")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    if exc.status_code == 400 and message == "There was an error parsing the body":
        message = "the request body cannot be parsed (invalid UTF-8, or JSON nested too deeply)"
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, None, dict(exc.headers or {}) or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Every error answered in the one JSON shape."""
    for kind in (
        APIError,
        InputError,
        UnknownComponentError,
        MissingDependencyError,
        ServiceUnavailableError,
        ConfigError,
        Overloaded,
        BatchTimeout,
    ):
        app.add_exception_handler(kind, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
