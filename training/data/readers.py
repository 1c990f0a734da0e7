"""Reading a source's own files, with errors that name the file and the column.

Adapters declare, per file, the columns they need and the kind of each (``text``, ``id``,
``int``, ``float``, ``datetime``, ``bool``, ``list``). :func:`read_source` reads only those
columns from Parquet or CSV (gzip-compressed CSV too), checks that the required ones exist and
converts each to one Polars type per kind, so the adapters map columns without guessing types.

CSV files are read as text and parsed here: numbers strictly, datetimes in ISO form (date only,
with time, with or without fraction or offset; offsets are converted to naive UTC) or in one of
the extra formats an adapter names, booleans from true/false/1/0/yes/no, lists as ``a|b|c``
(blank: null). A datetime column is read in one format throughout: ISO if every value is ISO,
else the first extra format that reads every value (so ``01/12/2010`` is never read month-first
beside a ``13/12/2010`` read day-first); if none does, that is a :class:`DataError`.
Numbers are never read as datetimes (an epoch column is refused rather than guessed).
Anything that does not convert raises :class:`DataError` with the file, the column, the count
of bad values and a few examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import polars as pl

from training.data.schema import DATETIME, DataError

Kind = Literal["text", "id", "int", "float", "datetime", "bool", "list"]

KIND_TYPES: dict[str, pl.DataType] = {
    "text": pl.String(), "id": pl.String(), "int": pl.Int64(), "float": pl.Float64(),
    "datetime": DATETIME, "bool": pl.Boolean(), "list": pl.List(pl.String),
}
LIST_SEPARATOR = "|"
_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_ISO_TZ_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def find_file(data_dir: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``candidates`` that exists in ``data_dir``; DataError naming all of them."""
    found = find_optional(data_dir, candidates)
    if found is None:
        raise DataError(f"{data_dir}: no {what} file; expected one of "
                        f"{', '.join(candidates)}")
    return found


def find_optional(data_dir: Path, candidates: Sequence[str]) -> Path | None:
    for name in candidates:
        path = Path(data_dir) / name
        if path.is_file():
            return path
    return None


def is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".csv", ".csv.gz"))


def read_source(path: Path, columns: Mapping[str, Kind],
                optional: Mapping[str, Kind] | None = None,
                datetime_formats: Sequence[str] = ()) -> pl.DataFrame:
    """Read ``columns`` (required) and the present ones of ``optional`` from ``path``.

    Returns the columns converted to :data:`KIND_TYPES`; ``datetime_formats`` are tried after
    the ISO forms when a datetime column is text.
    """
    optional = dict(optional or {})
    present = _columns(path)
    missing = [name for name in columns if name not in present]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(map(repr, missing))}; "
                        f"found {', '.join(map(repr, present))}")
    wanted = {**columns, **{k: v for k, v in optional.items() if k in present}}
    try:
        if is_csv(path):
            df = pl.read_csv(path, columns=list(wanted), infer_schema=False)
        else:
            df = pl.read_parquet(path, columns=list(wanted))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot be read ({_first_line(exc)})") from None
    if df.height == 0:
        raise DataError(f"{path}: the file has no rows")
    return df.select(_convert(df, name, kind, path, datetime_formats)
                     for name, kind in wanted.items())


def _columns(path: Path) -> list[str]:
    try:
        if is_csv(path):
            return pl.read_csv(path, n_rows=0, infer_schema=False).columns
        return list(pl.read_parquet_schema(path))
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot be read ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bad(path: Path, name: str, expected: str, series: pl.Series, ok: pl.Series) -> DataError:
    """DataError for the values of ``series`` where ``ok`` is false (nulls do not count)."""
    bad = series.filter(series.is_not_null() & ~ok.fill_null(False))
    examples = ", ".join(repr(v) for v in bad.head(3).to_list())
    return DataError(f"{path}: column {name!r} has {bad.len()} value(s) that are not "
                     f"{expected} (type {series.dtype}; e.g. {examples})")


def _convert(df: pl.DataFrame, name: str, kind: Kind, path: Path,
             datetime_formats: Sequence[str]) -> pl.Series:
    s = df[name]
    dtype = s.dtype
    target = KIND_TYPES[kind]
    if dtype == target:
        return s
    if dtype == pl.Null:
        return s.cast(target)
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        s = s.cast(pl.String)
        dtype = pl.String
    wrong = DataError(f"{path}: column {name!r} has type {dtype}, expected {kind}")
    if kind in ("text", "id"):
        if dtype == pl.String:
            return s
        if dtype.is_integer():
            return s.cast(pl.String)
        if dtype.is_float() and kind == "text":
            return s.cast(pl.String)
        if dtype.is_float():
            ok = s == s.round(0)
            if not ok.fill_null(True).all():
                raise _bad(path, name, "whole-number ids", s, ok)
            return s.cast(pl.Int64).cast(pl.String)
        raise wrong
    if kind in ("int", "float"):
        if dtype == pl.String:
            parsed = s.str.strip_chars().cast(target, strict=False)
            if parsed.null_count() != s.null_count():
                raise _bad(path, name, "numbers" if kind == "float" else "integers",
                           s, parsed.is_not_null())
            return parsed
        if kind == "int" and dtype.is_float():
            ok = s == s.round(0)
            if not ok.fill_null(True).all():
                raise _bad(path, name, "integers", s, ok)
        if dtype.is_numeric():
            return s.cast(target)
        raise wrong
    if kind == "datetime":
        if dtype == pl.Date:
            return s.cast(DATETIME)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return s.cast(DATETIME)
        if dtype == pl.String:
            return _parse_datetimes(s, datetime_formats, path).alias(name)
        raise wrong
    if kind == "bool":
        if dtype == pl.String:
            low = s.str.strip_chars().str.to_lowercase()
            parsed = (pl.when(low.is_in(_TRUE)).then(True)
                      .when(low.is_in(_FALSE)).then(False).otherwise(None))
            out = pl.select(parsed.alias(name)).to_series()
            if out.null_count() != s.null_count():
                raise _bad(path, name, "booleans (true/false)", s, out.is_not_null())
            return out
        if dtype.is_integer():
            ok = s.is_in([0, 1])
            if not ok.fill_null(True).all():
                raise _bad(path, name, "booleans (0/1)", s, ok)
            return s.cast(pl.Boolean)
        raise wrong
    if kind == "list":
        if isinstance(dtype, pl.List):
            return s.cast(target)
        if dtype == pl.String:
            parts = (s.str.split(LIST_SEPARATOR).list.eval(pl.element().str.strip_chars())
                     .list.eval(pl.element().filter(pl.element() != "")))
            return pl.select(pl.when(parts.list.len() > 0).then(parts).alias(name)).to_series()
        raise wrong
    raise wrong  # pragma: no cover - every kind is handled above


def _parse_datetimes(s: pl.Series, extra_formats: Sequence[str], path: Path) -> pl.Series:
    """Parse the text column ``s`` as naive UTC datetimes, every value in the same format.

    ISO 8601 comes first; its forms are unambiguous, so values may mix them (date only, with
    time, with an offset). Then each of ``extra_formats`` in order: the first one that reads
    every non-null value is used for all of them. Choosing per value would read a day-first
    ``01/12/2010`` month-first next to a ``13/12/2010`` read day-first. DataError naming the
    formats tried and a few values the closest one could not read when none reads them all.
    """
    text, nulls = s.str.strip_chars(), s.null_count()
    best = _parse_iso(text)
    for fmt in extra_formats:
        if best.null_count() == nulls:
            break
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        if parsed.null_count() < best.null_count():
            best = parsed
    if best.null_count() != nulls:
        if extra_formats:
            tried = ", ".join(["ISO 8601", *extra_formats])
            expected = f"datetimes in one format for the whole column (tried {tried})"
        else:
            expected = "datetimes (ISO 8601, e.g. 2026-06-30 or 2026-06-30T14:05:00)"
        raise _bad(path, s.name, expected, s, best.is_not_null())
    return best.cast(DATETIME)


def _parse_iso(text: pl.Series) -> pl.Series:
    """``text`` parsed by whichever ISO form fits each value; offsets become naive UTC."""
    attempts = [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _ISO_FORMATS]
    attempts += [text.str.to_datetime(fmt, strict=False, time_unit="us")
                 .dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                 for fmt in _ISO_TZ_FORMATS]
    return pl.select(pl.coalesce(attempts)).to_series()
