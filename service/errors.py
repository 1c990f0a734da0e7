"""One error hierarchy and one map from errors to HTTP responses.

Every 4xx answer has the same JSON shape (:class:`service.schemas.ErrorBody`): a machine code, a
sentence saying what was wrong and how to fix it, and for parameter errors the fields at fault.

A request body that cannot be used at all - missing, not JSON, or not a JSON object of the
documented shape - is ``invalid_body`` on every POST, whichever way the handler decodes it.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from service.schemas import ErrorBody

log = logging.getLogger(__name__)

_ERROR_DESCRIPTIONS = {
    400: "Bad input: ``detail`` says what was wrong and how to fix it, ``fields`` names each "
         "parameter or body field at fault",
    404: "Unknown item (or no such route); ``detail`` names it",
    415: "The request body is not declared as JSON (``content-type: application/json``)",
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


class InvalidBody(ServiceError):
    """The request body is missing, not JSON, or not a JSON object of the documented shape."""

    status_code = 400
    code = "invalid_body"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


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


_AT = " - at `$"
_NAMED_FIELD = re.compile(r"Object (?:contains unknown|missing required) field `(?P<name>.*)`",
                          re.DOTALL)
TOO_DEEP = "request body is nested too deeply to be a request of this API"
MAX_ECHOED = 64
"""Longest piece of the client's input (a field name, a value) an error message repeats."""


def _clip(text: str, limit: int = MAX_ECHOED) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


_ID_REGEX_MESSAGE = re.compile(r"Expected `str` matching regex '\^\[A-Za-z0-9\][^']*'")
ID_RULE = "an id: 1-128 letters, digits and ._:@-, starting with a letter or digit"


def humane(message: str) -> str:
    """``message`` with the id rule in words instead of its regex (the regex guards details
    such as a trailing newline that say nothing to a reader)."""
    return _ID_REGEX_MESSAGE.sub(f"Expected {ID_RULE}", message)


def validation_problem(message: str) -> tuple[str, str]:
    """Where a msgspec validation message says the input is wrong, and what is wrong.

    Returns the path of the field at fault relative to the decoded value (``.item_id``,
    ``.users[2]``; ``""`` for the value itself) and the message without msgspec's
    `` - at `$...` `` suffix. An unknown or missing field is located at the field itself
    (``.colour``), not at the object holding it. The client's own text (an unknown field's
    name, an invalid enum value) is clipped, so a message never echoes much of a body.
    """
    path = ""
    if _AT in message and message.endswith("`"):
        message, path = message.rsplit(_AT, 1)
        path = path[:-1]
    message = humane(message)
    named = _NAMED_FIELD.fullmatch(message)
    if named:
        name = _clip(named["name"])
        path = f"{path}.{name}"
        message = message[:named.start("name")] + name + "`"
    elif len(message) > 4 * MAX_ECHOED:
        message = _clip(message, 4 * MAX_ECHOED)
    return path, message


def _body_field(field: dict) -> dict:
    """Litestar's entry for a field of a body it decoded, located at the field at fault (its key
    ``data`` is the body itself): an unknown ``zz`` at the top level is ``zz``, a body that is
    not an object ``body``."""
    key = str(field.get("key", ""))
    path, message = validation_problem(str(field.get("message", "")))
    key = (path.removeprefix(".") or "body") if key == "data" else key + path
    return {**field, "key": key, "message": message}


def _respond(status: int, code: str, detail: str, fields: list[dict] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    return Response(ErrorBody(status_code=status, error=code, detail=detail, fields=fields or []),
                    status_code=status, headers=headers)


def _service_error(_: Request, exc: ServiceError) -> Response:
    return _respond(exc.status_code, exc.code, exc.detail, exc.fields)


_MISSING = re.compile(r"Missing required (?P<source>query|path|header|cookie) parameter "
                      r"'(?P<key>[^']{1,100})'")


def _validation_error(_: Request, exc: ValidationException) -> Response:
    fields = exc.extra if isinstance(exc.extra, list) else []
    missing = _MISSING.match(str(exc.detail)) if not fields else None
    if missing:  # Litestar names a missing parameter in its message only
        fields = [{"key": missing["key"], "source": missing["source"],
                   "message": f"missing required {missing['source']} parameter"}]
    if any(isinstance(f, dict) and f.get("source") == "body" and f.get("key") == "data"
           and f.get("message") == "'data'" for f in fields):
        return _respond(400, InvalidBody.code, "a JSON request body is required")
    fields = [f for f in fields if isinstance(f, dict)]
    # Litestar names the body itself ``data``: a body that is not an object, or lacks or adds a
    # top-level field, is not of the documented shape; a bad value of a field is a parameter
    whole_body = any(f.get("source") == "body" and f.get("key") == "data" for f in fields)
    fields = [_body_field(f) if f.get("source") == "body"
              else {**f, "message": humane(str(f.get("message", "")))} for f in fields]
    parts = "; ".join(f"{f.get('key', '?')}: {f.get('message', '')}" for f in fields)
    if whole_body:
        return _respond(400, InvalidBody.code, "request body is not a JSON object of the "
                        f"documented shape (see /schema) - {parts}", fields)
    detail = f"invalid request parameters - {parts}" if parts else str(exc.detail)
    return _respond(400, "invalid_parameter", detail, fields)


def _http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        exc.status_code, "http_error")
    detail = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and isinstance(exc.__cause__, SerializationException):
        # Litestar's route raises it from the body's decoding error
        code, detail = InvalidBody.code, f"request body is not valid JSON: {detail}"
    elif exc.status_code == 400:  # e.g. an invalid Host or Content-Length header
        code = "bad_request"
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


def _recursion(request: Request, exc: RecursionError) -> Response:
    """msgspec gives up on a body nested deeper than the interpreter's recursion limit (a
    2 KB body of brackets does it): the client's error, not ours. Any other RecursionError
    is a bug, answered and logged as such."""
    if "while deserializing" in str(exc):
        return _respond(400, InvalidBody.code, TOO_DEEP)
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> Response:
    # the route's template, not the path: paths hold customer ids
    log.exception("unhandled error on %s %s", request.method,
                  request.scope.get("path_template", "(unrouted)"))
    return _respond(500, "internal_error", "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    ServiceError: _service_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    RecursionError: _recursion,
    Exception: _unexpected,
}
