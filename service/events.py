"""Live events: the wire schema, whole-batch validation, and the pure merge into live state.

A batch is validated completely before anything is applied: every bad event and field is named
in one error, and a batch with any error changes nothing. A body that is not a batch at all
(missing, not JSON, not ``{"events": [...]}``) is :class:`InvalidBatchBody`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from artifacts.ids import ID_PATTERN, MAX_ID_LENGTH
from artifacts.profiles import LiveItem, LiveState, SizeSignal
from service.errors import TOO_DEEP, validation_problem

Id = Annotated[str, Meta(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
EventType = Literal["view", "cart", "purchase", "return"]
MAX_EVENTS = 1000
MAX_FUTURE_S = 300  # clocks drift; further ahead than this is a bad timestamp


Timestamp = Annotated[dt.datetime, Meta(
    description=f"RFC 3339 time of the event (no offset: UTC); at most {MAX_FUTURE_S} s ahead",
    extra_json_schema={"format": "date-time"})]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One thing a shopper did: needs user_id or session_id (or both); ts defaults to now."""

    event_id: Annotated[Id, Meta(description="Unique per event: an id applied in the last 24 h "
                                             "is ignored (resending a batch is safe)")]
    type: EventType
    item_id: Id
    user_id: Id | None = None
    session_id: Id | None = None
    size: Annotated[str, Meta(min_length=1, max_length=16)] | None = None
    market: Id | None = None
    price: Annotated[float, Meta(ge=0, le=1e9)] | None = None
    ts: Timestamp | None = None


_HAS_SUBJECT = {"anyOf": [
    {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
    {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}}]}
"""``user_id`` or ``session_id``, as JSON schema (for the OpenAPI document; parse_batch checks)."""


class EventBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[Annotated[Event, Meta(extra_json_schema=_HAS_SUBJECT)]],
                      Meta(min_length=1, max_length=MAX_EVENTS,
                           description=f"1 to {MAX_EVENTS} events with distinct event ids, "
                                       "validated as a whole")]


class IngestResult(msgspec.Struct, kw_only=True):
    accepted: int
    """Events applied now."""
    duplicates: int
    """Events whose id was already applied (a resent batch): ignored."""
    subjects: int
    folded: int = 0
    """Customers whose personal vector was refreshed from new purchases."""


class _RawBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_RAW_DECODER = msgspec.json.Decoder(_RawBatch)
_EVENT_DECODER = msgspec.json.Decoder(Event)


class EventValidationError(ValueError):
    """Bad events: ``problems`` names each event (position, and id once known) and field."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        summary = "; ".join(f"{p['key']}: {p['message']}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s), nothing was applied - {summary}{more}")


class InvalidBatchBody(EventValidationError):
    """The body is not a batch at all: missing, not JSON, or not ``{"events": [...]}``."""

    def __init__(self, detail: str, problems: list[dict] | None = None):
        self.problems = problems or []
        ValueError.__init__(self, f"{detail}; nothing was applied")


def _problem(key: str, message: str) -> dict:
    return {"key": key, "source": "body", "message": message}


@dataclass(frozen=True)
class TimedEvent:
    event: Event
    ts: float  # epoch seconds


def parse_batch(body: bytes, now: float) -> list[TimedEvent]:
    """Decode and validate a whole batch or raise :class:`EventValidationError` naming every
    bad event (by position and id) and field (``events[3].item_id``), or
    :class:`InvalidBatchBody` when the body is not a batch at all."""
    if not body.strip():
        raise InvalidBatchBody('a JSON request body is required: {"events": [...]}')
    try:
        raw = _RAW_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        path, message = validation_problem(str(exc))
        key = path.removeprefix(".") or "body"
        raise InvalidBatchBody(f'request body is not a batch of events {{"events": [...]}} - '
                               f"{key}: {message}", [_problem(key, message)]) from None
    except msgspec.DecodeError as exc:
        raise InvalidBatchBody(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidBatchBody(TOO_DEEP) from None
    if not raw.events:
        raise EventValidationError([_problem("events", "at least one event is required")])
    if len(raw.events) > MAX_EVENTS:
        raise EventValidationError([_problem("events", f"at most {MAX_EVENTS} events per batch, "
                                                       f"got {len(raw.events)}")])
    problems: list[dict] = []
    events: list[TimedEvent] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.events):
        try:
            event = _EVENT_DECODER.decode(item)
        except msgspec.ValidationError as exc:
            path, message = validation_problem(str(exc))
            problems.append(_problem(f"events[{i}]{path}", message))
            continue
        except msgspec.DecodeError as exc:  # the batch's skeleton decoded, this event's text not
            raise InvalidBatchBody(f"request body is not valid JSON: {exc} (in events[{i}])"
                                   ) from None
        where = f"events[{i}] ({event.event_id})"
        if event.user_id is None and event.session_id is None:
            problems.append(_problem(where, "needs user_id or session_id"))
        if event.event_id in seen:
            problems.append(_problem(f"{where}.event_id", "repeated within the batch"))
        seen.add(event.event_id)
        ts = now
        if event.ts is not None:
            when = event.ts if event.ts.tzinfo else event.ts.replace(tzinfo=dt.UTC)
            ts = when.timestamp()
            if ts > now + MAX_FUTURE_S:
                problems.append(_problem(f"{where}.ts", "is in the future"))
        events.append(TimedEvent(event, ts))
    if problems:
        raise EventValidationError(problems)
    return events


@dataclass(frozen=True)
class LiveLimits:
    """Caps that keep one subject's live state small (and a page view's read cheap)."""

    viewed: int = 50
    purchased: int = 200
    returned: int = 100
    cart: int = 50
    sizes: int = 100
    event_ids: int = 2000
    idempotency_s: float = 86_400.0


def _push(items: list[LiveItem], item: LiveItem, cap: int) -> list[LiveItem]:
    """Newest first, one entry per item at its newest time: an item already present takes
    the event's time only when that is newer (a late event does not make it older); the
    oldest go beyond ``cap``."""
    if any(x.item_id == item.item_id and x.ts >= item.ts for x in items):
        return items
    rest = [x for x in items if x.item_id != item.item_id]
    return sorted([item, *rest], key=lambda x: -x.ts)[:cap]


def apply_events(state: LiveState | None, events: list[TimedEvent], now: float,
                 limits: LiveLimits) -> tuple[LiveState | None, int, bool]:
    """Merge ``events`` into ``state``; returns (new state or None if nothing changed,
    events applied, whether a purchase or a return was applied: the folded-in list is then
    out of date). Events whose id was applied in the last
    ``limits.idempotency_s`` (counted from when it arrived, whatever its ``ts``) are skipped, so
    applying the same batch twice has the effect of applying it once."""
    state = state or LiveState()
    horizon = now - limits.idempotency_s
    applied_ids = {eid for eid, ts in state.event_ids if ts >= horizon}
    fresh = [e for e in events if e.event.event_id not in applied_ids]
    if not fresh:
        return None, 0, False
    viewed, purchased = list(state.viewed), list(state.purchased)
    returned, cart, sizes = list(state.returned), list(state.cart), list(state.sizes)
    market = state.market
    bought = False
    for timed in sorted(fresh, key=lambda e: e.ts):
        e, item = timed.event, LiveItem(timed.event.item_id, timed.ts)
        if e.type == "view":
            viewed = _push(viewed, item, limits.viewed)
        elif e.type == "cart":
            cart = _push(cart, item, limits.cart)
        elif e.type == "purchase":
            purchased = _push(purchased, item, limits.purchased)
            cart = [x for x in cart if x.item_id != e.item_id]
            bought = True
        else:
            returned = _push(returned, item, limits.returned)
            bought = True  # the purchases to fold in changed
        if e.size is not None:
            sizes = sorted([SizeSignal(e.item_id, e.size, e.type, timed.ts), *sizes],
                           key=lambda x: -x.ts)[:limits.sizes]  # the oldest go
        if e.market is not None:
            market = e.market
    # remembered from their arrival, not their own ``ts``: a resent batch of events older than
    # the idempotency window must still be recognised
    event_ids = [(e.event.event_id, now) for e in fresh]
    event_ids += [(eid, ts) for eid, ts in state.event_ids if ts >= horizon]
    new = msgspec.structs.replace(
        state, viewed=viewed, purchased=purchased, returned=returned, cart=cart, sizes=sizes,
        market=market, event_ids=event_ids[:limits.event_ids], updated=now)
    return new, len(fresh), bought
