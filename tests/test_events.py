"""Live event batches as pure functions: what a batch may hold, and idempotency by event id."""

import time

import msgspec
import pytest

from service.events import (EventValidationError, InvalidBatchBody, LiveLimits, apply_events,
                            parse_batch)


def _body(**extra) -> bytes:
    event = {"event_id": "e1", "type": "purchase", "item_id": "i1", "user_id": "u1",
             "size": "M", **extra}
    return msgspec.json.encode({"events": [event]})


def test_resent_batch_of_old_events_is_applied_once():
    """The idempotency window counts from arrival: events timestamped days ago (a backfill)
    are still recognised when the batch is resent."""
    now = time.time()
    body = _body(ts="2020-01-01T10:00:00Z")
    state, applied, _ = apply_events(None, parse_batch(body, now), now, LiveLimits())
    assert applied == 1 and len(state.sizes) == 1
    again, applied_again, _ = apply_events(state, parse_batch(body, now + 60), now + 60,
                                           LiveLimits())
    assert applied_again == 0 and again is None


def test_ids_are_forgotten_after_the_window():
    now = time.time()
    limits = LiveLimits(idempotency_s=3600)
    state, _, _ = apply_events(None, parse_batch(_body(), now), now, limits)
    later = now + 3601
    _, applied, _ = apply_events(state, parse_batch(_body(), later), later, limits)
    assert applied == 1


def _batch(*events) -> bytes:
    return msgspec.json.encode({"events": [
        {"item_id": "i1", "user_id": "u1", **event} for event in events]})


def test_a_late_event_does_not_make_an_item_older():
    """A view or purchase that arrives after a newer one of the same item keeps the newer
    time (a replayed purchase must not date the customer's last purchase back)."""
    now = time.time()
    state, _, _ = apply_events(None, parse_batch(_batch(
        {"event_id": "v-new", "type": "view", "ts": "2026-01-02T00:00:00Z"},
        {"event_id": "p-new", "type": "purchase", "ts": "2026-01-02T00:00:00Z"}), now),
        now, LiveLimits())
    state, applied, _ = apply_events(state, parse_batch(_batch(
        {"event_id": "v-old", "type": "view", "ts": "2025-01-01T00:00:00Z"},
        {"event_id": "p-old", "type": "purchase", "ts": "2025-01-01T00:00:00Z"}), now),
        now, LiveLimits())
    assert applied == 2
    jan2 = 1767312000.0  # 2026-01-02T00:00:00Z
    assert [(x.item_id, x.ts) for x in state.viewed] == [("i1", jan2)]
    assert [(x.item_id, x.ts) for x in state.purchased] == [("i1", jan2)]


def test_the_oldest_size_signals_go_first():
    now = time.time()
    limits = LiveLimits(sizes=3)
    recent = [{"event_id": f"m{k}", "type": "view", "item_id": f"i{k}", "size": "M",
               "ts": f"2026-01-0{k + 1}T00:00:00Z"} for k in range(3)]
    state, _, _ = apply_events(None, parse_batch(_batch(*recent), now), now, limits)
    late = [{"event_id": f"x{k}", "type": "view", "item_id": f"j{k}", "size": "XS",
             "ts": f"2025-06-0{k + 1}T00:00:00Z"} for k in range(3)]
    state, _, _ = apply_events(state, parse_batch(_batch(*late), now), now, limits)
    assert [s.size for s in state.sizes] == ["M", "M", "M"]
    assert [s.ts for s in state.sizes] == sorted((s.ts for s in state.sizes), reverse=True)


@pytest.mark.parametrize("body, message", [
    (b'{"events": [], "x": 1}', "unknown field `x`"),
    (b'{"events": [{"event_id": "e1", "type": "view", "item_id": "i1", "user_id": "u1"}], '
     b'"extra": true}', "unknown field `extra`"),
])
def test_unknown_top_level_fields_are_refused(body, message):
    with pytest.raises(EventValidationError, match=message):
        parse_batch(body, time.time())


def _problems(body: bytes) -> list[dict]:
    with pytest.raises(EventValidationError) as caught:
        parse_batch(body, time.time())
    assert not isinstance(caught.value, InvalidBatchBody), caught.value
    return caught.value.problems


@pytest.mark.parametrize("extra, key, message", [
    ({"colour": "red"}, "events[0].colour", "Object contains unknown field `colour`"),
    ({"item_id": 5}, "events[0].item_id", "Expected `str`, got `int`"),
    ({"type": "like"}, "events[0].type", "Invalid enum value 'like'"),
    ({"ts": "yesterday"}, "events[0].ts", "Invalid RFC3339 encoded datetime"),
    ({"price": -1}, "events[0].price", "Expected `float` >= 0.0"),
])
def test_a_bad_field_of_an_event_is_named_by_its_path(extra, key, message):
    """The key is the field's own path, also for an unknown field, and the message has no
    msgspec path relative to the event (`` - at `$.item_id` ``) to confuse it with."""
    problems = _problems(_body(**extra))
    assert problems == [{"key": key, "source": "body", "message": message}]


def test_a_missing_field_is_named_by_its_path():
    body = msgspec.json.encode({"events": [{"type": "view", "item_id": "i1", "user_id": "u1"}]})
    assert _problems(body) == [{"key": "events[0].event_id", "source": "body",
                                "message": "Object missing required field `event_id`"}]


def test_a_long_unknown_field_name_is_not_echoed_whole():
    problems = _problems(_body(**{"x" * 5000: 1}))
    assert len(problems[0]["key"]) < 100 and len(problems[0]["message"]) < 150


@pytest.mark.parametrize("body, message", [
    (b"", "a JSON request body is required"),
    (b"  \n", "a JSON request body is required"),
    (b"{", "request body is not valid JSON"),
    (b"[]", "body: Expected `object`, got `array`"),
    (b'{"events": "x"}', "events: Expected `array`, got `str`"),
    (b'{"event": []}', "event: Object contains unknown field `event`"),
    (b'{"events": [{"event_id": "e\xff1", "type": "view", "item_id": "i1"}]}',
     "request body is not valid JSON: Invalid UTF-8"),
])
def test_a_body_that_is_not_a_batch_is_invalid_as_a_whole(body, message):
    """Not JSON (even in one event's text) or not ``{"events": [...]}``: one problem with the
    body, never an exception of the decoder."""
    with pytest.raises(InvalidBatchBody, match="nothing was applied") as caught:
        parse_batch(body, time.time())
    assert message in str(caught.value)
