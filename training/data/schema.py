"""The canonical training tables every data source is converted into.

Adapters read a source's own files and return a :class:`CanonicalData`; everything after that
(fitting, evaluation, export) only ever sees these columns and types. :func:`conform` is the one
place that checks them: a missing required column, a value of the wrong type, a null where none is
allowed, an id (or market) outside the id rule (:mod:`artifacts.ids`), an item or customer
listed twice, a purchase or event dated in the future or an empty table stops with a
:class:`DataError` naming the file and the column.

Datetimes are naive and mean UTC: the readers convert offsets and time zones to UTC and drop
them, and :func:`conform` does the same for a zoned column (a cast keeps the UTC instant).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from artifacts.ids import MAX_ID_LENGTH, POLARS_ID_PATTERN


class DataError(ValueError):
    """An input file cannot be used; the message names the file and the column."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    required: bool = False  # must be present in the source
    nullable: bool = True
    default: object = None  # value used when an optional column is absent
    unique: bool = False  # no value on two rows (the table's key)
    not_future: bool = False  # no datetime later than FUTURE_SLACK after the current time


def _cols(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


DATETIME = pl.Datetime("us")
#: How far past the current time a ``not_future`` datetime may lie: the source's clock may run
#: in another time zone than UTC.
FUTURE_SLACK = dt.timedelta(days=1)

PURCHASES = _cols(
    Column("user_id", pl.String, required=True, nullable=False),
    Column("item_id", pl.String, required=True, nullable=False),
    Column("ts", DATETIME, required=True, nullable=False, not_future=True),
    Column("quantity", pl.Int32, nullable=False, default=1),
    Column("price", pl.Float64),
    Column("size", pl.String),
    Column("country", pl.String),
    Column("channel", pl.String),
    Column("returned", pl.Boolean),
    Column("fit", pl.String),  # "small" | "fit" | "large"
)

ITEMS = _cols(
    Column("item_id", pl.String, required=True, nullable=False, unique=True),
    Column("name", pl.String),
    Column("category", pl.String),
    Column("department", pl.String),
    Column("size_system", pl.String),
    Column("sizes", pl.List(pl.String)),
    Column("list_price", pl.Float64),
    Column("price", pl.Float64),
    Column("first_seen", DATETIME),
    Column("markets", pl.List(pl.String)),  # null: sold in every market
    Column("sensitive", pl.Boolean, nullable=False, default=False),
    Column("in_stock", pl.Boolean, nullable=False, default=True),
)

CUSTOMERS = _cols(
    Column("user_id", pl.String, required=True, nullable=False, unique=True),
    Column("country", pl.String),
    Column("signup", DATETIME),
    Column("consent_personalisation", pl.Boolean),
    Column("consent_sensitive", pl.Boolean),
)

EVENTS = _cols(
    Column("user_id", pl.String),
    Column("session_id", pl.String),
    Column("item_id", pl.String, required=True, nullable=False),
    Column("type", pl.String, required=True, nullable=False),  # view | cart | purchase | return
    Column("size", pl.String),
    Column("ts", DATETIME, required=True, nullable=False, not_future=True),
)

FIT_VALUES = ("small", "fit", "large")
EVENT_TYPES = ("view", "cart", "purchase", "return")
ID_COLUMNS = ("user_id", "item_id", "session_id")
MARKET_COLUMNS = ("country", "markets")  # market ids; ``markets`` is a list of them


def conform(df: pl.DataFrame, spec: dict[str, Column], source: str, *,
            now: dt.datetime | None = None) -> pl.DataFrame:
    """Return ``df`` with exactly the columns of ``spec``, in order and with their types.

    ``source`` names the file (or table) in error messages. Extra columns are dropped, absent
    optional columns are added with their default. ``now`` (naive UTC; default: the current
    time) is what a ``not_future`` column is checked against.
    """
    if df.height == 0:
        raise DataError(f"{source}: the table is empty")
    missing = [c.name for c in spec.values() if c.required and c.name not in df.columns]
    if missing:
        raise DataError(f"{source}: missing required column(s) {', '.join(map(repr, missing))}; "
                        f"found {', '.join(map(repr, df.columns))}")
    exprs = []
    for col in spec.values():
        if col.name not in df.columns:
            exprs.append(pl.lit(col.default, dtype=col.dtype).alias(col.name))
            continue
        src = df.schema[col.name]
        if src == col.dtype:
            exprs.append(pl.col(col.name))
            continue
        if src == pl.Null:
            exprs.append(pl.col(col.name).cast(col.dtype))
            continue
        exprs.append(_converted(df, col, src, source))
    out = df.select(exprs)
    for col in spec.values():
        if col.nullable:
            continue
        if col.default is not None:
            out = out.with_columns(pl.col(col.name).fill_null(col.default))
        nulls = out[col.name].null_count()
        if nulls:
            raise DataError(f"{source}: column {col.name!r} has {nulls} empty value(s)")
    for name in ID_COLUMNS + MARKET_COLUMNS:
        if name in out.columns:
            _check_ids(out[name], source)
    for col in spec.values():
        if col.unique:
            _check_unique(out[col.name], source)
        if col.not_future:
            _check_not_future(out[col.name], source, now or utc_now())
    if "fit" in spec and "fit" in out.columns:
        bad = out.filter(pl.col("fit").is_not_null() & ~pl.col("fit").is_in(FIT_VALUES)).height
        if bad:
            raise DataError(f"{source}: column 'fit' has {bad} value(s) outside {FIT_VALUES}")
    if "type" in spec:
        bad = out.filter(~pl.col("type").is_in(EVENT_TYPES)).height
        if bad:
            raise DataError(f"{source}: column 'type' has {bad} value(s) outside {EVENT_TYPES}")
    return out


def utc_now() -> dt.datetime:
    """The current time as the tables hold it: naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _check_ids(values: pl.Series, source: str) -> None:
    """DataError unless every non-null value (every element, for a list) is a valid id."""
    if isinstance(values.dtype, pl.List):
        values = values.explode()
    bad = values.filter(values.is_not_null() & ~values.str.contains(POLARS_ID_PATTERN))
    if bad.len():
        examples = ", ".join(repr(v) for v in bad.unique(maintain_order=True).head(3))
        raise DataError(f"{source}: column {values.name!r} has {bad.len()} value(s) that are "
                        f"not valid ids (1-{MAX_ID_LENGTH} of letters, digits and ._:@-), "
                        f"e.g. {examples}")


def _check_unique(values: pl.Series, source: str) -> None:
    """DataError naming a few values that are on more than one row."""
    repeated = values.filter(values.is_duplicated()).unique(maintain_order=True)
    if repeated.len():
        examples = ", ".join(repr(v) for v in repeated.head(3))
        raise DataError(f"{source}: column {values.name!r} has {repeated.len()} value(s) on "
                        f"more than one row, e.g. {examples}; each must appear once")


def _check_not_future(values: pl.Series, source: str, now: dt.datetime) -> None:
    """DataError when a datetime lies more than :data:`FUTURE_SLACK` after ``now``: one row
    in 2099 would make every real purchase look years old."""
    late = values.filter(values > now + FUTURE_SLACK)
    if late.len():
        raise DataError(f"{source}: column {values.name!r} has {late.len()} datetime(s) more "
                        f"than {FUTURE_SLACK.days} day(s) after the current time "
                        f"({now:%Y-%m-%d %H:%M} UTC), e.g. {late[0]}; datetimes are UTC, "
                        "fix or drop those rows")


def _converted(df: pl.DataFrame, col: Column, src: pl.DataType, source: str) -> pl.Expr:
    """Expression converting ``col`` to its canonical type, or DataError when it cannot be
    converted without guessing (numbers as dates, fractions as integers, unparsable text)."""
    expr = pl.col(col.name)
    if col.dtype == DATETIME:
        if src.is_numeric():
            raise DataError(f"{source}: column {col.name!r} holds numbers ({src}); expected "
                            "dates or datetimes (epoch numbers are not guessed)")
        if src == pl.String:
            expr = expr.str.to_datetime(time_unit="us", strict=False)
            parsed = df.select(expr)[col.name]
            bad = parsed.is_null() & df[col.name].is_not_null()
            if bad.any():
                examples = ", ".join(repr(v) for v in df[col.name].filter(bad).head(3).to_list())
                raise DataError(f"{source}: column {col.name!r} has {int(bad.sum())} value(s) "
                                f"that are not datetimes, e.g. {examples}")
            return expr
    if col.dtype.is_integer() and src.is_float():
        values = df[col.name].drop_nulls()
        if (values != values.floor()).any():
            raise DataError(f"{source}: column {col.name!r} has fractional values; expected "
                            "whole numbers")
    try:
        df.select(expr.cast(col.dtype, strict=True))
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise DataError(f"{source}: column {col.name!r} has type {src}, expected "
                        f"{col.dtype} ({str(exc).splitlines()[0]})") from None
    return expr.cast(col.dtype, strict=True)


@dataclass
class CanonicalData:
    """One data source in canonical form. ``customers`` and ``events`` are optional."""

    name: str
    purchases: pl.DataFrame
    items: pl.DataFrame
    customers: pl.DataFrame | None = None
    events: pl.DataFrame | None = None

    def __post_init__(self) -> None:
        self.purchases = conform(self.purchases, PURCHASES, f"{self.name}: purchases")
        self.items = conform(self.items, ITEMS, f"{self.name}: items")
        if self.customers is not None:
            self.customers = conform(self.customers, CUSTOMERS, f"{self.name}: customers")
        if self.events is not None:
            self.events = conform(self.events, EVENTS, f"{self.name}: events")

    def before(self, split_at) -> CanonicalData:
        """The same source restricted to purchases and events strictly before ``split_at``."""
        purchases = self.purchases.filter(pl.col("ts") < split_at)
        if purchases.height == 0:
            raise DataError(f"{self.name}: no purchases before {split_at}")
        events = None if self.events is None else self.events.filter(pl.col("ts") < split_at)
        if events is not None and events.height == 0:
            events = None
        return CanonicalData(self.name, purchases, self.items, self.customers, events)
