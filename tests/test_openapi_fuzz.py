"""Bad input: schemathesis drives every operation of the service's own OpenAPI schema.

The app runs in process (ASGI) on the demo bundle and a real Redis. Per operation: schemathesis'
coverage phase (every documented limit at and past its boundary, missing inputs, unexpected
methods), generated schema-valid and schema-invalid requests, realistic requests whose ids come
from the bundle (known customers, items, markets) so that the deep paths run and not only the
400s, and for a body one byte over the size limit.

Every response must: not be a 5xx; have a documented status code, content type and body shape;
reject invalid input with a 4xx; and, for any 4xx, carry the error body with a human message.
Generation is derandomised (the same requests on every run for the same code) and the requests
sent are counted and asserted, so the test fails if generation silently shrinks.
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from collections import Counter

import msgspec
import pytest

from artifacts.catalog import Catalog
from artifacts.homepage import SECTIONS
from service.app import create_app
from service.picks import Pick
from service.settings import Settings
from service.store import RedisProfileStore
from tests.conftest import IN_CI
from training.redis_push import push_profiles

try:
    import schemathesis
except ImportError:
    if IN_CI:
        raise
    pytest.skip("schemathesis is not installed: pip install -e '.[test]'", allow_module_level=True)

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402 (schemathesis brings it)
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPERATIONS = {
    "GET /health", "GET /ready",
    "GET /v1/users/{user_id}/recommendations", "GET /v1/items/{item_id}/similar",
    "GET /v1/users/{user_id}/homepage", "GET /v1/homepage",
    "GET /v1/users/{user_id}/size", "GET /v1/sessions/{session_id}/size",
    "POST /v1/events", "POST /v1/sessions/{session_id}/identify", "POST /v1/picks",
    "DELETE /v1/users/{user_id}",
}
"""Operations the schema must publish (every published one is fuzzed, listed or not)."""

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 25}
REALISTIC_EXAMPLES = 30
MIN_REQUESTS = 1_000


def error_has_message(ctx, response, case) -> None:
    """Every 4xx is the service's error body with a non-empty, human-readable ``detail``."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body: "
                             f"{response.content[:200]!r}") from None
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {body!r}"
    assert body.get("status_code") == response.status_code, body
    assert isinstance(body.get("error"), str) and body["error"], body
    detail = body.get("detail")
    assert isinstance(detail, str) and len(detail.strip()) >= 10, body
    phrase = HTTPStatus(response.status_code).phrase
    assert detail.strip().lower() != phrase.lower(), f"only the status phrase: {body}"


def picks_lines_conform(ctx, response, case) -> None:
    """``POST /v1/picks`` answers NDJSON, which schemathesis cannot validate: each line must
    decode as the documented ``Pick``, one per requested customer, in request order."""
    if case.operation.label != "POST /v1/picks" or response.status_code != 200:
        return
    picks = [msgspec.json.decode(line, type=Pick) for line in response.content.splitlines()]
    assert [p.user_id for p in picks] == case.body["users"], response.content[:300]
    assert all(len(p.items) <= case.body.get("n", 6) for p in picks)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection,
          error_has_message, picks_lines_conform]


class Ids:
    """Realistic values from the demo bundle, to reach past validation into the handlers.

    Mostly known ids, with a few unknown but well-formed ones (an unknown customer is served,
    an unknown item is a 404, an unknown market a 400).
    """

    def __init__(self, bundle, profiles):
        catalog = Catalog(bundle)
        self.users = [*sorted(profiles)[:60], "stranger-1", "x" * 128]
        self.items = [*catalog.ids[:80], "no-such-item"]
        self.markets = [*catalog.markets, "ZZ"]
        self.sessions = [f"s-{k}" for k in range(8)]

    def user(self):
        return st.sampled_from(self.users)

    def item(self):
        return st.sampled_from(self.items)

    def market(self):
        return st.sampled_from(self.markets)

    def session(self):
        return st.sampled_from(self.sessions)

    def sections(self):
        return st.lists(st.sampled_from(list(SECTIONS)), min_size=1, max_size=4,
                        unique=True).map(",".join)

    def event(self):
        subject = st.one_of(st.fixed_dictionaries({"user_id": self.user()}),
                            st.fixed_dictionaries({"session_id": self.session()}),
                            st.fixed_dictionaries({"user_id": self.user(),
                                                   "session_id": self.session()}))
        event = st.fixed_dictionaries(
            {"event_id": st.uuids().map(str),
             "type": st.sampled_from(["view", "cart", "purchase", "return"]),
             "item_id": self.item()},
            optional={"size": st.sampled_from(["XS", "S", "M", "L", "XL", "38", "40"]),
                      "market": self.market(),
                      "price": st.floats(0, 500, allow_nan=False)})
        return st.tuples(event, subject).map(lambda pair: {**pair[0], **pair[1]})

    def cases(self, operation):
        """A strategy of cases for ``operation`` built from known ids (None: nothing to add)."""
        path, query, body = {}, {}, None
        names = {p.name for p in operation.path_parameters}
        if "user_id" in names:
            path["user_id"] = self.user()
        if "item_id" in names:
            path["item_id"] = self.item()
        if "session_id" in names:
            path["session_id"] = self.session()
        query_names = {p.name for p in operation.query}
        if "item_id" in query_names:
            query["item_id"] = self.item()
        if "market" in query_names:
            query["market"] = self.market()
        if "user_id" in query_names:
            query["user_id"] = self.user()
        if "sections" in query_names:
            query["sections"] = self.sections()
        if operation.label == "POST /v1/events":
            body = st.fixed_dictionaries({"events": st.lists(self.event(), min_size=1,
                                                             max_size=5)})
        elif operation.label == "POST /v1/picks":
            body = st.fixed_dictionaries(
                {"users": st.lists(self.user(), min_size=1, max_size=20)},
                optional={"n": st.integers(1, 50), "market": self.market(),
                          "campaign": st.sampled_from(["weekly", "default"]),
                          "record": st.booleans()})
        elif operation.label.endswith("/identify"):
            body = st.fixed_dictionaries({"user_id": self.user()})
        if not (path or query) and body is None:
            return None
        fixed = st.fixed_dictionaries({
            "path": st.fixed_dictionaries(path),
            "query": st.fixed_dictionaries(query),
            "body": body if body is not None else st.none()})

        def build(values):
            kwargs = {"path_parameters": values["path"] or None, "query": values["query"] or None}
            if values["body"] is not None:
                kwargs["body"] = values["body"]
                kwargs["media_type"] = "application/json"
            return operation.as_strategy(GenerationMode.POSITIVE, **kwargs)

        return fixed.flatmap(build)


@pytest.fixture
def app(demo_bundle, redis_url, redis_prefix):
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=2.0)
    return create_app(Settings(), bundle=demo_bundle, store=store)


class Fuzzer:
    """Sends cases through the ASGI app, validates every answer, counts what was sent."""

    def __init__(self, schema):
        self.schema = schema
        self.sent: Counter = Counter()
        self.statuses: Counter = Counter()

    def send(self, case, label: str, checks=CHECKS):
        response = case.call()
        self.sent[label] += 1
        self.statuses[(case.operation.label, response.status_code)] += 1
        case.validate_response(response, checks=checks)
        return response

    def coverage(self, operation) -> None:
        """Schemathesis' coverage phase: boundary values of every limit (n 0/1/100/101, ids of
        128 and 129 characters, ...), missing required inputs, unexpected methods."""
        config = self.schema.config.generation_for(operation=operation)
        for case in self.schema.iter_coverage_cases(
                operation, generation_modes=list(GenerationMode), generation_config=config):
            self.send(case, f"{operation.label} coverage")

    def generated(self, strategy, examples: int, label: str) -> None:
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink], print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(case=strategy)
        def fuzz(case):
            self.send(case, label)

        fuzz()

    def oversized(self, operation, limit: int) -> None:
        """A JSON body one byte over the request size limit is a documented 413."""
        filler = "x" * (limit - len('{"pad":""}') + 1)
        case = operation.Case(body={"pad": filler}, media_type="application/json",
                              path_parameters={p.name: "s-1" for p in operation.path_parameters})
        response = self.send(case, f"{operation.label} oversized",
                              checks=[c for c in CHECKS if c is not negative_data_rejection])
        assert response.status_code == 413, (operation.label, response.status_code)


def test_every_operation_answers_bad_and_odd_input_without_5xx(app, demo_bundle, profiles):
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    published = {op.label for op in operations}
    assert OPERATIONS <= published, f"not in the schema: {OPERATIONS - published}"
    ids = Ids(demo_bundle, profiles)
    fuzzer = Fuzzer(schema)
    cpu = time.process_time()
    failures = {}
    for operation in operations:
        takes_input = any(len(group) for group in (operation.path_parameters, operation.query,
                                                   operation.headers, operation.body))
        try:
            fuzzer.coverage(operation)
            for mode, examples in EXAMPLES.items():
                if mode is GenerationMode.NEGATIVE and not takes_input:
                    continue  # nothing to get wrong
                fuzzer.generated(operation.as_strategy(mode), examples,
                                 f"{operation.label} {mode.value}")
            realistic = ids.cases(operation)
            if realistic is not None:
                fuzzer.generated(realistic, REALISTIC_EXAMPLES, f"{operation.label} realistic")
            if len(operation.body):
                fuzzer.oversized(operation, Settings().max_body_kb * 1024)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
            failures[operation.label] = exc
    print("\n".join(f"{n:5d}  {label}" for label, n in sorted(fuzzer.sent.items())))
    print(f"{sum(fuzzer.sent.values()):5d}  requests in all "
          f"({time.process_time() - cpu:.1f} s CPU, all threads)")
    print("\n".join(f"{n:5d}  {status}  {label}"
                    for (label, status), n in sorted(fuzzer.statuses.items())))
    for label, exc in failures.items():
        print(f"==== {label}\n{exc}")
    assert not failures, sorted(failures)
    assert sum(fuzzer.sent.values()) >= MIN_REQUESTS, fuzzer.sent
    answered = {label for (label, status), n in fuzzer.statuses.items() if status < 300}
    assert answered == published, f"never answered 2xx: {published - answered}"
