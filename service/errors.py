"""One error hierarchy and one map from errors to HTTP responses.

Every 4xx answer has the same JSON shape (:class:`service.schemas.ErrorBody`): a machine code, a
sentence saying what was wrong and how to fix it, and for parameter errors the fields at fault.
"""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.schemas import ErrorBody

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str, *, fields: list[dict] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or []


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


def _respond(status: int, code: str, detail: str, fields: list[dict] | None = None) -> Response:
    return Response(ErrorBody(status_code=status, error=code, detail=detail, fields=fields or []),
                    status_code=status)


def _service_error(_: Request, exc: ServiceError) -> Response:
    return _respond(exc.status_code, exc.code, exc.detail, exc.fields)


def _validation_error(_: Request, exc: ValidationException) -> Response:
    fields = exc.extra if isinstance(exc.extra, list) else []
    if any(isinstance(f, dict) and f.get("source") == "body" and f.get("key") == "data"
           and f.get("message") == "'data'" for f in fields):
        return _respond(400, "invalid_body", "a JSON request body is required")
    parts = [f"{f.get('key', '?')}: {f.get('message', '')}" for f in fields if isinstance(f, dict)]
    detail = "invalid request parameters - " + "; ".join(parts) if parts else str(exc.detail)
    return _respond(400, "invalid_parameter", detail, [f for f in fields if isinstance(f, dict)])


def _http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        exc.status_code, "http_error")
    detail = exc.detail
    if exc.status_code == 400 and code == "http_error":  # the body did not decode as JSON
        code, detail = "invalid_body", f"request body is not valid JSON: {detail}"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /schema for the API"
    return _respond(exc.status_code, code, detail)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _respond(500, "internal_error", "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    ServiceError: _service_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
