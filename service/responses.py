"""The app's response class: answers encoded on a short path, and handed to the metrics.

Every handler returns a msgspec Struct. Litestar turns it into a :class:`~litestar.Response`,
merges headers, cookies and type encoders, picks a serializer by media type and then builds the
low-level ``ASGIResponse``: about 40,000 instructions per request, a fifth of a bare endpoint
(benchmarks/RESULTS.md). The page-view answers (Structs with ``degraded`` and ``source``:
recommendations, homepage, sizes) need none of it - no headers, cookies or background tasks,
plain JSON - so :class:`AnswerResponse` encodes them with one msgspec encoder straight into a
two-message ASGI response (:class:`EncodedAnswer`); anything else, or an answer with headers
or cookies, takes Litestar's path. Both give the same bytes (msgspec JSON of the Struct) and
the same content type and length headers.

It also leaves the answer in the ASGI scope (``ANSWER_SCOPE_KEY``), where
:class:`service.metrics.MetricsMiddleware` counts degraded and fallback answers without
parsing the body.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.types import Receive, Scope, Send

ANSWER_SCOPE_KEY = "reco.answer"
JSON = "application/json"
_ENCODER = msgspec.json.Encoder()


class EncodedAnswer:
    """The ASGI response of an answer on the short path: its two messages, nothing else.

    Litestar only calls a handler's ASGI response; its own ``ASGIResponse`` would first build
    a header container and set the content type and length through it (about 43,000
    instructions per request, benchmarks/RESULTS.md). The messages are the same.
    """

    __slots__ = ("body", "status")

    def __init__(self, body: bytes, status: int):
        self.body, self.status = body, status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body, "more_body": False})


_answers: dict[type, bool] = {}
"""Per content type: is it an answer (a Struct with ``degraded`` and ``source``)?"""


def is_answer(kind: type) -> bool:
    """Whether ``kind`` is a page-view answer: a Struct with ``degraded`` and ``source``."""
    answer = _answers.get(kind)
    if answer is None:
        fields = getattr(kind, "__struct_fields__", ())
        answer = _answers[kind] = "degraded" in fields and "source" in fields
    return answer


def answer_body(content: Any) -> bytes | None:
    """The JSON body of a page-view answer as :class:`AnswerResponse` sends it, or ``None``
    when ``content`` is no answer (for :mod:`service.fast_routes`)."""
    return _ENCODER.encode(content) if is_answer(type(content)) else None


class AnswerResponse(Response):
    """Litestar's response, with the short path for answers described in the module doc."""

    def __init__(self, content: Any, *, background=None, cookies=None, encoding: str = "utf-8",
                 headers=None, media_type=None, status_code: int | None = None,
                 type_encoders=None) -> None:
        if is_answer(type(content)) and background is None and not cookies and not headers \
                and not type_encoders and media_type in (None, JSON):
            # all Response.__init__ would set, without its copies and merges
            self.content, self.background, self.cookies, self.headers = content, None, [], {}
            self.encoding, self.media_type, self.status_code = encoding, JSON, status_code
            self.response_type_encoders = {}
            self._short = True
            return
        self._short = False
        super().__init__(content, background=background, cookies=cookies, encoding=encoding,
                         headers=headers, media_type=media_type, status_code=status_code,
                         type_encoders=type_encoders)

    def to_asgi_response(self, app, request, *, background=None, cookies=None,
                         encoded_headers=None, headers=None, **kwargs):  # type: ignore[override]
        if self._short or is_answer(type(self.content)):
            request.scope[ANSWER_SCOPE_KEY] = self.content  # type: ignore[literal-required]
        if self._short and not (background or cookies or encoded_headers or headers
                                or self.headers or self.cookies
                                or kwargs.get("is_head_response")):
            return EncodedAnswer(_ENCODER.encode(self.content),
                                 self.status_code or kwargs.get("status_code") or 200)
        return super().to_asgi_response(app, request, background=background, cookies=cookies,
                                        encoded_headers=encoded_headers, headers=headers,
                                        **kwargs)
