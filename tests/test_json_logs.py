"""JSON log lines: one object per line with time, level, logger, message and the request's route,
never a customer id from the path, never a body.

The handler below is the one ``service.logs.logging_config("json")`` installs (same formatter,
same filter), attached to the ``service`` logger for the test and removed afterwards. The whole
set-up through ``python -m service serve`` is exercised in tests/test_prometheus.py.
"""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.logs import RequestContextFilter, json_formatter, logging_config
from service.settings import Settings
from service.store import MemoryProfileStore, RedisProfileStore

USER = "customer-4711-private"


@pytest.fixture
def json_lines():
    """Lines written by the ``service`` loggers through the JSON handler during the test."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("service")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: out.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def test_redis_down_warning_is_json_with_route_and_no_customer_id(
        demo_bundle, dead_redis_url, json_lines):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1, retry_after_s=5)
    app = create_app(Settings(access_log=True), bundle=demo_bundle, store=store)
    async with AsyncTestClient(app) as c:
        r = await c.get(f"/v1/users/{USER}/recommendations", params={"n": 4})
        assert r.status_code == 200 and r.json()["degraded"] is True

    lines = json_lines()
    records = [json.loads(line) for line in lines]  # each line is exactly one JSON object
    assert all(isinstance(r, dict) for r in records)
    for r in records:
        assert {"time", "level", "logger", "message"} <= r.keys()
        assert r["time"].endswith("Z")  # RFC 3339, UTC
    warning = next(r for r in records if r["logger"] == "service.store.redis")
    assert warning["level"] == "WARNING" and "redis unavailable" in warning["message"]
    # logged while the request was answered: it names the route (a template), not the path
    assert warning["route"] == "/v1/users/{user_id}/recommendations"
    assert warning["method"] == "GET"
    access = [r for r in records if r["logger"] == "service.access"]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/users/{user_id}/recommendations"
    assert access[0]["status"] == 200 and access[0]["duration_ms"] > 0
    assert not any(USER in line for line in lines)


async def test_access_log_is_off_unless_asked_for(demo_bundle, json_lines):
    app = create_app(Settings(), bundle=demo_bundle,
                     store=MemoryProfileStore(demo_bundle.profile_records()))
    async with AsyncTestClient(app) as c:
        assert (await c.get(f"/v1/users/{USER}/recommendations")).status_code == 200
    assert not [line for line in json_lines() if '"service.access"' in line]


async def test_bodies_are_never_logged(demo_bundle, json_lines):
    app = create_app(Settings(access_log=True), bundle=demo_bundle,
                     store=MemoryProfileStore(demo_bundle.profile_records()))
    item = demo_bundle.items.id(0)
    body = {"events": [{"event_id": "event-0815", "type": "view", "user_id": USER,
                        "item_id": item}]}
    async with AsyncTestClient(app) as c:
        r = await c.post("/v1/events", json=body)
        assert r.status_code == 200, r.text
    lines = json_lines()
    assert any('"service.access"' in line for line in lines)
    assert not any(USER in line or "event-0815" in line for line in lines)


def test_exceptions_stay_inside_one_line():
    formatter = json_formatter()
    try:
        raise ValueError("boom\nwith a second line")
    except ValueError:
        record = logging.getLogger("service.test").makeRecord(
            "service.test", logging.ERROR, __file__, 1, "failed: %s", ("x",), None)
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed: x" and parsed["level"] == "ERROR"
    assert "ValueError: boom" in parsed["exc_info"]


def test_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="json"):
        logging_config("xml")


def test_extra_fields_become_fields_and_terminal_colours_do_not():
    record = logging.LogRecord("uvicorn.error", logging.INFO, "x.py", 1, "Started %d", (7,), None)
    record.color_message = "Started \x1b[36m%d\x1b[0m"  # what uvicorn adds
    record.status = 503
    parsed = json.loads(json_formatter().format(record))
    assert parsed["message"] == "Started 7" and parsed["status"] == 503
    assert "color_message" not in parsed


class _BrokenStore(MemoryProfileStore):
    """A store with a bug: every customer read raises something that is not a Redis error."""

    async def read_user(self, user_id):
        raise RuntimeError("a bug in the store")

    get_user = read_user


async def test_unexpected_error_is_a_500_logged_by_route_not_path(demo_bundle, json_lines):
    app = create_app(Settings(), bundle=demo_bundle, store=_BrokenStore({}))
    async with AsyncTestClient(app) as c:
        r = await c.get(f"/v1/users/{USER}/recommendations")
    assert r.status_code == 500 and r.json()["error"] == "internal_error"
    records = [json.loads(line) for line in json_lines()]
    error = next(r for r in records if r["level"] == "ERROR")
    assert "/v1/users/{user_id}/recommendations" in error["message"]
    assert "a bug in the store" in error["exc_info"]
    assert not any(USER in line for line in json_lines())
