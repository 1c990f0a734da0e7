"""Request bodies in the OpenAPI schema, documented from msgspec's own JSON schema.

The POST handlers decode their bodies with msgspec (``POST /v1/events`` decodes the raw bytes
itself, to name every bad event at once), so the schema that msgspec enforces is the one to
publish: ``operation_class=json_body(Struct)`` puts it, refs inlined, into the operation's
request body. Documented and enforced limits (lengths, patterns, batch sizes) cannot drift apart,
and a handler that reads the body itself still gets a documented one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from service.errors import UnsupportedMediaType


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        inlined = {key: _inline(value, defs) for key, value in node.items() if key != "$ref"}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            # keywords next to a $ref (e.g. from Meta(extra_json_schema=...)) apply as well
            return {**_inline(defs[ref.removeprefix("#/$defs/")], defs), **inlined}
        return inlined
    if isinstance(node, list):
        return [_inline(value, defs) for value in node]
    return node


def json_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """msgspec's JSON schema of ``struct`` with every ``$ref`` inlined (no recursive types)."""
    schema = msgspec.json.schema(struct)
    return _inline(schema, schema.pop("$defs", {}))


def json_body(struct: type[msgspec.Struct], description: str | None = None) -> type[Operation]:
    """An ``operation_class`` whose request body is ``struct`` as JSON (required)."""
    body = RequestBody(required=True, description=description, content={
        "application/json": OpenAPIMediaType(schema=json_schema(struct))})  # type: ignore[arg-type]

    @dataclass
    class JSONBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    JSONBodyOperation.__name__ = JSONBodyOperation.__qualname__ = f"{struct.__name__}Operation"
    return JSONBodyOperation


async def json_only(request: Request) -> None:
    """``before_request`` of the POST handlers that read a JSON body: 415 unless the body is
    declared JSON (``application/json``, parameters such as ``charset`` allowed). Besides
    saying what to send, it keeps browsers from posting here across sites without asking
    first: a ``text/plain`` or form POST needs no CORS preflight, a JSON one does."""
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != "application/json":
        shown = declared[:60] or "none"
        raise UnsupportedMediaType(f"the request body must be JSON, sent with content-type: "
                                   f"application/json (got {shown})")
