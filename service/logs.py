"""Logging set-up: one line per record, JSON (for log collectors) or text (for people).

:func:`logging_config` returns one ``logging.config.dictConfig`` dictionary that the entry point
applies in its own process and hands to the server (granian, uvicorn), so the server's own
loggers and every worker write the same format. JSON lines come from python-json-logger's
msgspec formatter with the fields ``time`` (RFC 3339, UTC), ``level``, ``logger``,
``message``, then the record's ``extra`` fields, ``route`` and ``method`` while a request is
being answered, and ``exc_info`` for exceptions.

Personal data: what the service itself logs names routes as templates
(``/v1/users/{user_id}/recommendations``), never a request's path, query or body. The access
log (:data:`ACCESS_LOGGER`, off unless ``RECO_ACCESS_LOG``) follows the same rule.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

#: The ASGI scope of the request being answered in this task, if any; set by the metrics
#: middleware (:mod:`service.metrics`), read by :class:`RequestContextFilter`.
CURRENT_REQUEST: ContextVar[dict | None] = ContextVar("reco_request", default=None)
ACCESS_LOGGER = "service.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Record attributes some libraries add that are not worth a JSON field (uvicorn's message with
#: terminal colour codes).
DROPPED_FIELDS = ("color_message",)
#: Loggers of libraries that say too much at INFO.
QUIET_LOGGERS = ("faiss.loader", "uvicorn.access", "granian.access")


class RequestContextFilter(logging.Filter):
    """Adds ``route`` and ``method`` of the current request to records logged while it is
    answered (JSON lines then carry them as fields); leaves other records alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = CURRENT_REQUEST.get()
        if scope is not None and not hasattr(record, "route"):
            route = scope.get("path_template")  # set once the request is routed
            if route is not None:
                record.route, record.method = route, scope.get("method")
        return True


def json_formatter() -> logging.Formatter:
    """The JSON line formatter (python-json-logger, encoded with msgspec)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.msgspec import MsgspecFormatter

    class _Formatter(MsgspecFormatter):
        def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
            return {"time": log_data.pop("time"), **log_data}  # time first: easier to read

    return _Formatter(["levelname", "name", "message"], timestamp="time",
                      rename_fields={"levelname": "level", "name": "logger"},
                      reserved_attrs=[*RESERVED_ATTRS, *DROPPED_FIELDS])


def logging_config(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` dictionary: every record to stderr, one line each, in ``log_format``
    (``json`` or ``text``), at ``level`` and above; existing loggers keep working."""
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', not {log_format!r}")
    formatter = ({"()": "service.logs.json_formatter"} if log_format == "json"
                 else {"format": TEXT_FORMAT})
    level_name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"reco": formatter},
        "filters": {"request": {"()": "service.logs.RequestContextFilter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "reco", "filters": ["request"]}},
        "root": {"handlers": ["stderr"], "level": level_name},
        # servers' own loggers propagate to the root handler instead of printing their format
        "loggers": {
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
            "_granian": {"level": level_name},
            "uvicorn": {"level": level_name},
            "uvicorn.error": {"level": level_name},
            ACCESS_LOGGER: {"level": "INFO"},
        },
    }
