"""The app's response class: answers encoded on a short path, and handed to the metrics.

Every handler returns a msgspec Struct. Litestar turns it into a :class:`~litestar.Response`,
merges headers, cookies and type encoders, picks a serializer by media type and then builds the
low-level ``ASGIResponse``: about 40,000 instructions per request, a fifth of a bare endpoint
(benchmarks/RESULTS.md). The page-view answers (Structs with ``degraded`` and ``source``:
recommendations, homepage, sizes) need none of it - no headers, cookies or background tasks,
plain JSON - so :class:`AnswerResponse` encodes them with one msgspec encoder straight into an
``ASGIResponse``; anything else, or an answer with headers or cookies, takes Litestar's path.
Both give the same bytes (msgspec JSON of the Struct).

It also leaves the answer in the ASGI scope (``ANSWER_SCOPE_KEY``), where
:class:`service.metrics.MetricsMiddleware` counts degraded and fallback answers without
parsing the body.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.response.base import ASGIResponse

ANSWER_SCOPE_KEY = "reco.answer"
JSON = "application/json"
_ENCODER = msgspec.json.Encoder()


class AnswerResponse(Response):
    """Litestar's response, with the short path for answers described in the module doc."""

    _answers: dict[type, bool] = {}
    """Per content type: is it an answer (a Struct with ``degraded`` and ``source``)?"""

    def __init__(self, content: Any, *, background=None, cookies=None, encoding: str = "utf-8",
                 headers=None, media_type=None, status_code: int | None = None,
                 type_encoders=None) -> None:
        kind = type(content)
        answer = self._answers.get(kind)
        if answer is None:
            fields = getattr(kind, "__struct_fields__", ())
            answer = self._answers[kind] = "degraded" in fields and "source" in fields
        if answer and background is None and not cookies and not headers \
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
        if self._short or self._answers.get(type(self.content)):
            request.scope[ANSWER_SCOPE_KEY] = self.content  # type: ignore[literal-required]
        if self._short and not (background or cookies or encoded_headers or headers
                                or self.headers or self.cookies):
            return ASGIResponse(body=_ENCODER.encode(self.content), media_type=JSON,
                                status_code=self.status_code or kwargs.get("status_code"),
                                is_head_response=kwargs.get("is_head_response", False))
        return super().to_asgi_response(app, request, background=background, cookies=cookies,
                                        encoded_headers=encoded_headers, headers=headers,
                                        **kwargs)
