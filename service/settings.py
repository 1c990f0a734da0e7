"""Service configuration: one typed Struct, read once from the environment, passed explicitly.

Every ``RECO_*`` variable must be a setting: a typo (``RECO_REDIS_ULR``) would otherwise leave
the setting at its default without a word (here: no Redis), so it stops the service instead.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

ENV_PREFIX = "RECO_"
NOT_SETTINGS_PREFIX = "RECO_TEST_"
"""Variables of the test suite (``RECO_TEST_REDIS_URL``, see tests/conftest.py), which a
developer's shell may export; never settings."""
DOCUMENTED_AT = "README.md, section 'Configuration of the service'"


class UnknownSettingError(ValueError):
    """``RECO_*`` variables that are no setting; the message names the closest setting of each."""

    def __init__(self, names: Iterable[str], known: Iterable[str]):
        self.names = sorted(names)
        bare = {name.removeprefix(ENV_PREFIX): name for name in known}
        described = []
        for name in self.names:
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX).upper(), bare, n=1)
            described.append(f"{name} (did you mean {bare[close[0]]}?)" if close else name)
        super().__init__(
            f"unknown setting{'s' if len(self.names) > 1 else ''} {', '.join(described)}: every "
            f"{ENV_PREFIX}* variable must be one of the settings listed in {DOCUMENTED_AT} "
            "(service/settings.py); correct or unset it")


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every setting, its environment variable (``RECO_`` + upper-case name) and default."""

    bundle_dir: str = "artifacts/bundles"
    """Bundle directory, or a bundles root whose ``current`` link is served."""
    redis_url: str | None = None
    """Profile store; unset runs the embedded in-process store (one process, demo only)."""
    redis_prefix: str = "reco"
    """Prefix of every Redis key, so several deployments or test runs can share a server."""
    redis_timeout_ms: Annotated[float, Meta(gt=0, le=10_000)] = 250.0
    """Socket timeout per Redis call; past it the answer degrades instead of waiting. It also
    measures how busy the worker's event loop is, so too tight a value degrades answers on a
    loaded machine while Redis is fine."""
    redis_retry_after_s: Annotated[float, Meta(ge=0, le=600)] = 1.0
    """After a Redis failure, skip Redis for this long (answers are marked degraded)."""
    near_cache_keys: Annotated[int, Meta(ge=0, le=10_000_000)] = 100_000
    """Page-view values (three per customer) each worker keeps after reading them from a
    single Redis server, dropped when Redis reports a change (client tracking); 0 turns the
    cache off. A Redis Cluster is always read directly."""
    near_cache_ttl_s: Annotated[float, Meta(gt=0, le=86_400)] = 60.0
    """A kept value is read from Redis again at the latest this long after it was read."""
    default_market: str | None = None
    """Market for requests that name none and customers whose profile has none."""
    verify_bundle: bool = True
    """Check every bundle file's checksum at load (refuses corrupt or partial bundles)."""
    bundle_poll_s: Annotated[float, Meta(ge=0, le=86_400)] = 5.0
    """Every this many seconds each worker checks where ``bundle_dir`` points (a bundles
    root's ``current`` link) and hot-swaps a new target; 0 turns the watcher off."""
    admin_token: str | None = None
    """Bearer token for ``POST /admin/reload``; unset disables the admin endpoints (403)."""
    live_ttl_days: Annotated[float, Meta(gt=0, le=3650)] = 90.0
    """A customer's live state expires this long after their last event."""
    session_ttl_hours: Annotated[float, Meta(gt=0, le=24 * 365)] = 168.0
    """An anonymous session's live state expires this long after its last event."""
    max_body_kb: Annotated[int, Meta(ge=1, le=65_536)] = 1024
    """Largest request body accepted (events, picks); larger is a 413."""
    picks_config: str | None = None
    """JSON or TOML file with frequency caps for batch picks (see service/picks.py)."""
    metrics: bool = True
    """Measure requests and serve ``GET /metrics`` (Prometheus); off also turns the access log
    off. Several workers share their metrics through ``PROMETHEUS_MULTIPROC_DIR``."""
    access_log: bool = False
    """One log line per request: method, route template, status, duration (never the path)."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (the container's default); ``text``: for people."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def env_names(cls) -> list[str]:
        """The environment variable of every setting."""
        return [ENV_PREFIX + name.upper() for name in cls.__struct_fields__]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``RECO_*`` variables (strings are converted and validated).

        Raises :class:`UnknownSettingError` for a ``RECO_*`` variable that is no setting
        (``RECO_TEST_*`` belong to the test suite and are left alone), and
        ``msgspec.ValidationError`` for an invalid value."""
        environ = os.environ if environ is None else environ
        known = cls.env_names()
        unknown = {name for name in environ if name.startswith(ENV_PREFIX)
                   and not name.startswith(NOT_SETTINGS_PREFIX)} - set(known)
        if unknown:
            raise UnknownSettingError(unknown, known)
        raw: dict[str, str] = {}
        for name, variable in zip(cls.__struct_fields__, known):
            value = environ.get(variable)
            if value is not None and value != "":
                raw[name] = value
        raw.update(overrides)
        return msgspec.convert(raw, cls, strict=False)
