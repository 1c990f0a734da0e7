"""One error hierarchy and one map from errors to HTTP responses.

Every 4xx answer has the same JSON shape (:class:`service.schemas.ErrorBody`): a machine code, a
sentence saying what was wrong and how to fix it, and for parameter errors the fields at fault.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from service.schemas import ErrorBody

log = logging.getLogger(__name__)

_ERROR_DESCRIPTIONS = {
    400: "Bad input: ``detail`` says what was wrong and how to fix it, ``fields`` names each "
         "parameter or body field at fault",
    404: "Unknown item (or no such route); ``detail`` names it",
    413: "Request body larger than the limit (1 MiB unless ``RECO_MAX_BODY_KB`` says otherwise; "
         "the limit in force is stated in the API description)",
    503: "The profile store is unreachable and the request could not be done without it; "
         "``detail`` says whether to retry",
}


def error_responses(*status_codes: int,
                    descriptions: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error answers a handler can give, for the ``responses=`` of
    its route decorator: each an :class:`ErrorBody`. Descriptions default to the service-wide
    ones (400, 404, 413, 503), else the HTTP status's; ``descriptions`` overrides them."""
    described = {**_ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {code: ResponseSpec(ErrorBody, generate_examples=False,
                               description=described.get(code) or HTTPStatus(code).description)
            for code in status_codes}


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


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class BundleRefused(ServiceError):
    """A bundle that did not load or verify; the previous one keeps serving."""

    status_code = 409
    code = "bundle_refused"


def _respond(status: int, code: str, detail: str, fields: list[dict] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    return Response(ErrorBody(status_code=status, error=code, detail=detail, fields=fields or []),
                    status_code=status, headers=headers)


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
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and code == "http_error":  # the body did not decode as JSON
        code, detail = "invalid_body", f"request body is not valid JSON: {detail}"
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /schema for the API"
    elif exc.status_code == 405:
        allowed = headers.get("allow") or headers.get("Allow") or "see /schema"
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    elif exc.status_code == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        detail = (f"request body larger than {limit} bytes (RECO_MAX_BODY_KB); send it in "
                  "smaller batches")
    return _respond(exc.status_code, code, detail, headers=headers or None)


def _unexpected(request: Request, exc: Exception) -> Response:
    # the route's template, not the path: paths hold customer ids
    log.exception("unhandled error on %s %s", request.method,
                  request.scope.get("path_template", "(unrouted)"))
    return _respond(500, "internal_error", "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    ServiceError: _service_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
