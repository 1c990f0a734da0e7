"""Command line of the service: ``python -m service serve --help``."""

from __future__ import annotations

import argparse
import logging.config
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec

from artifacts.bundle import BundleError
from service.errors import ServiceError
from service.logs import logging_config
from service.settings import Settings

log = logging.getLogger("service")
#: prometheus-client's multiprocess directory (see service.metrics); read once, at its import.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The files prometheus-client's multiprocess mode writes; only these are ever cleared.
METRIC_FILE = re.compile(r"(counter|gauge_\w+|histogram|summary)_\d+\.db")


def metrics_dir(workers: int) -> tuple[str | None, bool]:
    """Set up prometheus-client's multiprocess mode before any worker starts.

    ``$PROMETHEUS_MULTIPROC_DIR`` when given (created if missing, metric files of an earlier run
    removed); else, for several workers, a fresh temporary directory exported in that variable.
    One worker without it keeps its metrics in memory. Returns (directory or None, whether it
    was created here and so is removed when serving ends).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        stale = [f for f in Path(given).iterdir() if METRIC_FILE.fullmatch(f.name)]
        for f in stale:
            f.unlink()
        if stale:
            log.info("metrics: removed %d metric files of an earlier run from %s", len(stale),
                     given)
        return given, False
    if workers <= 1:
        return None, False
    path = tempfile.mkdtemp(prefix="reco-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path, True


def _serve(args: argparse.Namespace) -> int:
    if args.bundle:
        os.environ["RECO_BUNDLE_DIR"] = str(args.bundle)
    if args.redis_url is not None:
        os.environ["RECO_REDIS_URL"] = args.redis_url
    if args.access_log:
        os.environ["RECO_ACCESS_LOG"] = "true"  # workers read their settings from the environment
    settings = Settings.from_env()  # fail here, readably, on bad settings - not in a worker
    if not settings.redis_url and args.workers > 1:
        print("error: the embedded profile store lives inside one process; with --workers "
              f"{args.workers} each worker would hold its own. Set RECO_REDIS_URL (or "
              "--redis-url) or use --workers 1.", file=sys.stderr)
        return 2
    if args.server == "uvicorn" and args.workers > 1:
        print("error: uvicorn with several workers holds back small responses for ~40 ms "
              "(delayed acknowledgements on its shared socket; measured in benchmarks/). Use "
              "--server granian (the default) for several workers.", file=sys.stderr)
        return 2
    shared, created = metrics_dir(args.workers) if settings.metrics else (None, False)
    if shared:
        log.info("metrics: the workers share %s (%s)", shared, MULTIPROC_ENV)
    # Every process logs in one format. The servers' own access logs stay off: they print
    # paths, which hold customer ids; ours (RECO_ACCESS_LOG) prints route templates.
    log_config = logging_config(settings.log_format, settings.log_level)
    try:
        if args.server == "granian":
            from granian import Granian
            from granian.constants import Interfaces

            Granian("service.asgi:app_from_env", factory=True, interface=Interfaces.ASGI,
                    address=args.host, port=args.port, workers=args.workers, backlog=2048,
                    log_access=False, log_dictconfig=log_config,
                    log_level=settings.log_level).serve()
        else:
            import uvicorn

            uvicorn.run("service.asgi:app_from_env", factory=True, host=args.host,
                        port=args.port, workers=args.workers, access_log=False,
                        log_config=log_config, log_level=settings.log_level)
    finally:
        if created:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


def _picks(args: argparse.Namespace) -> int:
    from service.batch_picks import run_picks

    settings = Settings.from_env(**({"bundle_dir": str(args.bundle)} if args.bundle else {}),
                                 **({"redis_url": args.redis_url} if args.redis_url else {}))
    stats = run_picks(settings, users_path=args.users, out_path=args.out, n=args.n,
                      market=args.market, campaign=args.campaign, record=args.record,
                      chunk=args.chunk, workers=args.workers, progress=not args.quiet)
    print(f"{stats.users:,} customers -> {args.out}: {stats.picked:,} with picks, "
          f"{stats.capped:,} capped, {stats.invalid:,} invalid ids; "
          f"{stats.seconds:.1f} s ({stats.users / max(stats.seconds, 1e-9):,.0f} customers/s)"
          f"{'; recorded in the sent log' if args.record else ''}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("serve", help="run the HTTP service",
                       description="Serve the API. Settings come from RECO_* environment "
                                   "variables (see README; an unknown one stops it); the "
                                   "options below override some.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--server", choices=("granian", "uvicorn"), default="granian",
                   help="ASGI server (default: granian, measured faster in benchmarks/)")
    p.add_argument("--bundle", help="bundle dir or bundles root (overrides $RECO_BUNDLE_DIR)")
    p.add_argument("--redis-url", help="Redis URL (overrides $RECO_REDIS_URL; '' for the "
                                       "embedded store)")
    p.add_argument("--access-log", action="store_true",
                   help="log one line per request: method, route template, status, duration "
                        "(same as RECO_ACCESS_LOG=true)")
    p.set_defaults(run=_serve)

    p = sub.add_parser("picks", help="batch picks for an email campaign, file to file",
                       description="Compute picks for every customer id in --users (one per "
                                   "line) and write one JSON line per customer to --out. Uses "
                                   "the bundle and Redis from RECO_* settings, like serve.")
    p.add_argument("--users", type=Path, required=True, help="file with one customer id per line")
    p.add_argument("--out", type=Path, required=True,
                   help="NDJSON output; written aside and renamed when complete")
    p.add_argument("--campaign", default="default",
                   help="campaign family: repeats and caps count per family (default: default)")
    p.add_argument("--n", type=int, default=6, help="items per customer, 1-50 (default: 6)")
    p.add_argument("--market", help="pick for this market (default: each customer's own)")
    p.add_argument("--record", action="store_true",
                   help="append the picks to the sent log (do this for the run that is mailed)")
    p.add_argument("--chunk", type=int, default=1000,
                   help="customers per Redis round trip and FAISS batch (default: 1000)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help=f"worker processes (default: {os.cpu_count() or 1}, the CPU count)")
    p.add_argument("--bundle", help="bundle dir or bundles root (overrides $RECO_BUNDLE_DIR)")
    p.add_argument("--redis-url", help="Redis URL (overrides $RECO_REDIS_URL)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_picks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.config.dictConfig(logging_config(settings.log_format, settings.log_level))
        return args.run(args)
    except msgspec.ValidationError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2
    except (BundleError, ServiceError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
