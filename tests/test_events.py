"""Live event batches as pure functions: what a batch may hold, and idempotency by event id."""

import time

import msgspec
import pytest

from service.events import EventValidationError, LiveLimits, apply_events, parse_batch


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


@pytest.mark.parametrize("body, message", [
    (b'{"events": [], "x": 1}', "unknown field `x`"),
    (b'{"events": [{"event_id": "e1", "type": "view", "item_id": "i1", "user_id": "u1"}], '
     b'"extra": true}', "unknown field `extra`"),
])
def test_unknown_top_level_fields_are_refused(body, message):
    with pytest.raises(EventValidationError, match=message):
        parse_batch(body, time.time())
