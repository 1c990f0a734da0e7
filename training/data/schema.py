"""The canonical training tables every data source is converted into.

Adapters read a source's own files and return a :class:`CanonicalData`; everything after that
(fitting, evaluation, export) only ever sees these columns and types. :func:`conform` is the one
place that checks them: a missing required column, a value of the wrong type, a null where none is
allowed or an empty table stops with a :class:`DataError` naming the file and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from artifacts.ids import MAX_ID_LENGTH


class DataError(ValueError):
    """An input file cannot be used; the message names the file and the column."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    required: bool = False  # must be present in the source
    nullable: bool = True
    default: object = None  # value used when an optional column is absent


def _cols(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


DATETIME = pl.Datetime("us")

PURCHASES = _cols(
    Column("user_id", pl.String, required=True, nullable=False),
    Column("item_id", pl.String, required=True, nullable=False),
    Column("ts", DATETIME, required=True, nullable=False),
    Column("quantity", pl.Int32, nullable=False, default=1),
    Column("price", pl.Float64),
    Column("size", pl.String),
    Column("country", pl.String),
    Column("channel", pl.String),
    Column("returned", pl.Boolean),
    Column("fit", pl.String),  # "small" | "fit" | "large"
)

ITEMS = _cols(
    Column("item_id", pl.String, required=True, nullable=False),
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
    Column("user_id", pl.String, required=True, nullable=False),
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
    Column("ts", DATETIME, required=True, nullable=False),
)

FIT_VALUES = ("small", "fit", "large")
EVENT_TYPES = ("view", "cart", "purchase", "return")
ID_COLUMNS = ("user_id", "item_id", "session_id")


def conform(df: pl.DataFrame, spec: dict[str, Column], source: str) -> pl.DataFrame:
    """Return ``df`` with exactly the columns of ``spec``, in order and with their types.

    ``source`` names the file (or table) in error messages. Extra columns are dropped, absent
    optional columns are added with their default.
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
        try:
            df.select(pl.col(col.name).cast(col.dtype, strict=True))
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
            raise DataError(f"{source}: column {col.name!r} has type {src}, expected "
                            f"{col.dtype} ({str(exc).splitlines()[0]})") from None
        exprs.append(pl.col(col.name).cast(col.dtype, strict=True))
    out = df.select(exprs)
    for col in spec.values():
        if col.nullable:
            continue
        if col.default is not None:
            out = out.with_columns(pl.col(col.name).fill_null(col.default))
        nulls = out[col.name].null_count()
        if nulls:
            raise DataError(f"{source}: column {col.name!r} has {nulls} empty value(s)")
    for name in ID_COLUMNS:
        if name in out.columns and out.schema[name] == pl.String:
            too_long = out.filter(pl.col(name).str.len_chars() > MAX_ID_LENGTH).height
            if too_long:
                raise DataError(f"{source}: column {name!r} has {too_long} id(s) longer than "
                                f"{MAX_ID_LENGTH} characters")
            bad = out.filter(pl.col(name).str.contains(r"[{}\s]")).height
            if bad:
                raise DataError(f"{source}: column {name!r} has {bad} id(s) containing braces "
                                "or whitespace")
    if "fit" in spec and "fit" in out.columns:
        bad = out.filter(pl.col("fit").is_not_null() & ~pl.col("fit").is_in(FIT_VALUES)).height
        if bad:
            raise DataError(f"{source}: column 'fit' has {bad} value(s) outside {FIT_VALUES}")
    if "type" in spec:
        bad = out.filter(~pl.col("type").is_in(EVENT_TYPES)).height
        if bad:
            raise DataError(f"{source}: column 'type' has {bad} value(s) outside {EVENT_TYPES}")
    return out


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
        if self.items["item_id"].n_unique() != self.items.height:
            raise DataError(f"{self.name}: items: column 'item_id' has duplicate ids")
        if self.customers is not None:
            self.customers = conform(self.customers, CUSTOMERS, f"{self.name}: customers")
        if self.events is not None:
            self.events = conform(self.events, EVENTS, f"{self.name}: events")

    def before(self, split_at) -> CanonicalData:
        """The same source restricted to purchases and events strictly before ``split_at``."""
        purchases = self.purchases.filter(pl.col("ts") < split_at)
        events = None if self.events is None else self.events.filter(pl.col("ts") < split_at)
        return CanonicalData(self.name, purchases, self.items, self.customers, events)
