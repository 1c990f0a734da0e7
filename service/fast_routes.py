"""Page views on a short path: the hottest GET routes dispatched ahead of Litestar's router.

A page view for a known customer costs the service about twice the CPU of a bare Litestar
endpoint, and a third of that is Litestar's routing, parameter extraction and validation and
handler call (benchmarks/RESULTS.md). For the routes every page view calls (:data:`HOT`), this
ASGI layer does that part itself, for requests in their plain form only:

- method ``GET``, no ``root_path``, a ``Host`` header (if any) of plain host characters
  (Litestar refuses an invalid one before routing), the path one of the routes' templates
  with every path parameter matching its declared pattern and length;
- a query string of the handler's own query parameters, each at most once, each value plain
  (no percent-escape, no ``+``), an integer in its declared bounds or a string matching its
  declared pattern and length.

It then calls the very handler Litestar would call (the registered controller's method, with
a request that carries only ``app``: the hot handlers read nothing else), and sends the answer as
:class:`service.responses.AnswerResponse` would (the same bytes and headers, the answer left in
the scope for the metrics, the route template in ``path_template``). Everything else - another
route or method, a parameter it does not know or a value it would have to interpret, an answer
that is not a plain page-view answer, any exception from the handler (an unknown market, an
unknown item) - goes to Litestar untouched, which answers it exactly as it would without this
layer (the handlers are read-only, so running one again is safe, and they raise their 4xx
before they read the store, so it costs no second read). Litestar still declares the
routes, their parameters and the OpenAPI schema; the parameters' rules are read from the
handlers' signatures, not restated here. ``tests/test_fast_routes.py`` sends the same requests
both ways and compares the answers.

Ahead of both, a path with an empty segment (``//``) is refused with 404: Litestar's router
would collapse it, so ``DELETE /v1/users//recommendations`` would erase a customer called
"recommendations".
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from service.api.homepage import HomepageController
from service.api.recommendations import RecommendationController
from service.api.sizes import SizeController
from service.responses import ANSWER_SCOPE_KEY, EncodedAnswer, answer_body
from service.schemas import ErrorBody

#: The handlers taken on the short path: the page views of a shop's frontends.
HOT = (RecommendationController.for_user, RecommendationController.similar,
       HomepageController.for_user, HomepageController.anonymous,
       SizeController.for_user, SizeController.for_session)
_PLAIN_VALUE = re.compile(rb"[A-Za-z0-9._:@,\-]+")  # no escapes, spaces or '+' to interpret
_INT_VALUE = re.compile(rb"[1-9][0-9]{0,8}")  # no sign, no leading zero
_PLAIN_HOST = re.compile(rb"[A-Za-z0-9.\-:\[\]]*")  # a name or address and a port


@dataclass(frozen=True, slots=True)
class _Param:
    """One parameter's rules, read from the handler's signature."""

    name: str
    is_int: bool
    ge: int | None
    le: int | None
    pattern: re.Pattern | None
    max_length: int | None

    def parse(self, raw: bytes) -> int | str | None:
        """The value, or ``None`` when it is not plainly valid (Litestar then decides)."""
        if self.is_int:
            if _INT_VALUE.fullmatch(raw) is None:
                return None
            value = int(raw)
            if (self.ge is not None and value < self.ge) or (self.le is not None
                                                             and value > self.le):
                return None
            return value
        return self.check(raw.decode("ascii"))

    def check(self, text: str) -> str | None:
        if self.max_length is not None and len(text) > self.max_length:
            return None
        if self.pattern is not None and self.pattern.search(text) is None:
            return None
        return text


def _param(name: str, annotation) -> _Param:
    base, *extras = typing.get_args(annotation) or (annotation,)
    kwargs = next((e for e in extras if hasattr(e, "pattern")), None)
    is_int = base is int
    if not is_int and str not in (base, *typing.get_args(base)):
        raise TypeError(f"fast routes take int and str parameters, not {name}: {annotation}")
    return _Param(name, is_int,
                  getattr(kwargs, "ge", None), getattr(kwargs, "le", None),
                  re.compile(kwargs.pattern) if getattr(kwargs, "pattern", None) else None,
                  getattr(kwargs, "max_length", None))


class _FastRoute:
    """One hot route: its path template as a regex, its query parameters and defaults."""

    def __init__(self, template: str, fn: Callable):
        self.template, self.fn = template, fn
        signature = inspect.signature(fn, eval_str=True)
        names = re.findall(r"{(\w+)}", template)
        pattern = re.escape(template)
        for name in names:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
        self.path = re.compile(pattern)
        self.path_params = {n: _param(n, signature.parameters[n].annotation) for n in names}
        self.query: dict[bytes, _Param] = {}
        self.defaults: dict[str, object] = {}
        for name, p in signature.parameters.items():
            if name in ("self", "request") or name in self.path_params:
                continue
            self.query[name.encode()] = _param(name, p.annotation)
            if p.default is not inspect.Parameter.empty:
                self.defaults[name] = p.default

    def arguments(self, match: re.Match, query: bytes) -> dict | None:
        """The handler's keyword arguments, or ``None`` when the request is not plain."""
        kwargs = dict(self.defaults)
        for name, rule in self.path_params.items():
            value = rule.check(match.group(name))
            if value is None:
                return None
            kwargs[name] = value
        if query:
            given = set()
            for part in query.split(b"&"):
                key, eq, raw = part.partition(b"=")
                rule = self.query.get(key)
                if rule is None or not eq or key in given or _PLAIN_VALUE.fullmatch(raw) is None:
                    return None
                given.add(key)
                value = rule.parse(raw)
                if value is None:
                    return None
                kwargs[rule.name] = value
        if len(kwargs) < len(self.path_params) + len(self.query):
            return None  # a required query parameter is missing: Litestar says so
        return kwargs


class _AppOnly:
    """The request a hot handler gets on the short path: it reads ``request.app`` only."""

    __slots__ = ("app",)

    def __init__(self, app: Litestar):
        self.app = app


class FastRoutes:
    """The ASGI layer described in the module docstring, around Litestar's ``asgi_handler``."""

    def __init__(self, app: ASGIApp, litestar: Litestar):
        self.app = app
        self.request = _AppOnly(litestar)
        hot = {handler.fn for handler in HOT}
        # the registered handlers' functions: bound to the app's controller instances
        self.routes = [_FastRoute(route.path_format, handler.fn)
                       for route in litestar.routes
                       for handler in getattr(route, "route_handlers", ())
                       if getattr(handler.fn, "__func__", None) in hot]
        if len(self.routes) != len(HOT):
            raise RuntimeError("a hot route is not registered with the app")
        self.answered = 0  # requests this layer answered itself (for the tests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            await _empty_segment(scope, send)
            return
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path") \
                and _plain_host(scope["headers"]):
            path = scope["path"]
            for route in self.routes:
                match = route.path.fullmatch(path)
                if match is None:
                    continue
                kwargs = route.arguments(match, scope["query_string"])
                if kwargs is not None and await self._answer(route, kwargs, scope, send):
                    return
                break
        await self.app(scope, receive, send)

    async def _answer(self, route: _FastRoute, kwargs: dict, scope: Scope, send: Send) -> bool:
        # the route is known from here on (log records name it); Litestar sets it again if
        # the request goes on to it
        scope["path_template"] = route.template  # type: ignore[typeddict-unknown-key]
        try:
            answer = await route.fn(self.request, **kwargs)
        except Exception:  # noqa: BLE001 - Litestar answers it, through its error map
            answer = None
        body = answer_body(answer) if answer is not None else None
        if body is None:
            del scope["path_template"]  # Litestar routes it afresh (or refuses it unrouted)
            return False
        scope[ANSWER_SCOPE_KEY] = answer  # type: ignore[literal-required]
        self.answered += 1
        await EncodedAnswer(body, 200)(scope, None, send)  # type: ignore[arg-type]
        return True


async def _empty_segment(scope: Scope, send: Send) -> None:
    """404 for a path with an empty segment, in the shape of every error answer."""
    method = scope["method"]
    body = msgspec.json.encode(ErrorBody(
        status_code=404, error="not_found",
        detail=f"no route {method} {scope['path'][:200]}: the path has an empty segment "
               "(//; an id left out?); see /schema for the API"))
    await EncodedAnswer(body, 404)(scope, None, send)  # type: ignore[arg-type]


def _plain_host(headers) -> bool:
    """Whether the first ``Host`` header, if any, holds only the characters of a host name or
    address and a port: anything else goes to Litestar, which checks it."""
    for name, value in headers:
        if name == b"host":
            return _PLAIN_HOST.fullmatch(value) is not None
    return True
