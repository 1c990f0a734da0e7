"""A shop's own export, already in the canonical form, and the writer of that form.

``data_dir`` holds ``purchases`` and ``items`` and optionally ``customers`` and ``events``,
each as ``<table>.parquet`` or ``<table>.csv`` (Parquet wins when both exist), with the columns
of :mod:`training.data.schema` (extra columns are ignored, absent optional ones get their
default). In CSV, datetimes are ISO text (``2026-06-30`` or ``2026-06-30T14:05:00``, an offset
is converted to naive UTC), booleans are true/false (or 1/0, yes/no) and the list columns
(``sizes``, ``markets``) are ``|``-separated text (``S|M|L``; empty means null).

:func:`write_canonical` writes the Parquet form, so ``load(write_canonical(data, d))`` gives
the same tables back.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from training.data.readers import Kind, find_file, find_optional, read_source
from training.data.schema import (CUSTOMERS, DATETIME, EVENTS, ID_COLUMNS, ITEMS, PURCHASES,
                                  CanonicalData, Column, conform)

NAME = "canonical"
TABLES: dict[str, dict[str, Column]] = {
    "purchases": PURCHASES, "items": ITEMS, "customers": CUSTOMERS, "events": EVENTS,
}
REQUIRED_TABLES = ("purchases", "items")


def _kind(column: Column) -> Kind:
    dtype = column.dtype
    if dtype == DATETIME:
        return "datetime"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.Float64:
        return "float"
    if dtype.is_integer():
        return "int"
    if isinstance(dtype, pl.List):
        return "list"
    return "id" if column.name in ID_COLUMNS else "text"


def _files(table: str) -> tuple[str, str]:
    return (f"{table}.parquet", f"{table}.csv")


def _read_table(path: Path, table: str) -> pl.DataFrame:
    spec = TABLES[table]
    required = {c.name: _kind(c) for c in spec.values() if c.required}
    optional = {c.name: _kind(c) for c in spec.values() if not c.required}
    return conform(read_source(path, required, optional), spec, f"{path} -> {table}")


def load(data_dir: str | Path, name: str = NAME) -> CanonicalData:
    """Load a canonical export from ``data_dir``; ``name`` names the source in later messages."""
    data_dir = Path(data_dir)
    tables: dict[str, pl.DataFrame | None] = {}
    for table in TABLES:
        if table in REQUIRED_TABLES:
            path: Path | None = find_file(data_dir, _files(table), table)
        else:
            path = find_optional(data_dir, _files(table))
        tables[table] = None if path is None else _read_table(path, table)
    return CanonicalData(name, tables["purchases"], tables["items"], tables["customers"],
                         tables["events"])


def write_canonical(data: CanonicalData, out_dir: str | Path) -> Path:
    """Write ``data`` as ``<table>.parquet`` files into ``out_dir`` (created if needed).

    Each file is written beside its final name and renamed into place, so a reader never sees
    a half-written table; a table that ``data`` lacks (customers, events) is removed from
    ``out_dir`` so that loading it back does not pick up an older one. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        df: pl.DataFrame | None = getattr(data, table)
        final = out_dir / f"{table}.parquet"
        if df is None:
            final.unlink(missing_ok=True)
            continue
        partial = out_dir / f".{table}.parquet.partial"
        df.write_parquet(partial)
        os.replace(partial, final)
    return out_dir
