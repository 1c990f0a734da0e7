"""Rules for external ids (customers, sessions, items, markets) shared by trainer and service.

Ids end up inside Redis keys with a hash tag (``{<user_id>}``), in URLs and in log lines, so they
are restricted to a conservative alphabet: no braces, whitespace or control characters.
"""

import re

MAX_ID_LENGTH = 128
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}"
#: For Python's ``re`` (msgspec, Litestar, this module) and ECMA 262 (the OpenAPI schema).
#: Python's ``$`` also matches before a final newline, and msgspec *searches* a pattern:
#: ``(?!\n)`` keeps ``"a\n"`` out (ECMA's ``$`` is the end of the text already).
ID_PATTERN = _ID + r"(?!\n)$"
#: The same rule for polars (Rust's regex has no look-ahead; its ``$`` is the end of the text).
POLARS_ID_PATTERN = _ID + "$"
_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """True when ``value`` may be used as an external id anywhere in the system."""
    return bool(_ID_RE.match(value))
