"""Command line of the service: ``python -m service serve --help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import msgspec

from service.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    if args.bundle:
        os.environ["RECO_BUNDLE_DIR"] = str(args.bundle)
    if args.redis_url is not None:
        os.environ["RECO_REDIS_URL"] = args.redis_url
    Settings.from_env()  # fail here, readably, on bad settings - not inside a worker
    if args.server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian("service.asgi:app_from_env", factory=True, interface=Interfaces.ASGI,
                address=args.host, port=args.port, workers=args.workers, backlog=2048,
                log_access=args.access_log).serve()
    else:
        import uvicorn

        uvicorn.run("service.asgi:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, access_log=args.access_log, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("serve", help="run the HTTP service",
                       description="Serve the API. Settings come from RECO_* environment "
                                   "variables (see README); the options below override some.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--server", choices=("granian", "uvicorn"), default="granian",
                   help="ASGI server (default: granian, measured faster in benchmarks/)")
    p.add_argument("--bundle", help="bundle dir or bundles root (overrides $RECO_BUNDLE_DIR)")
    p.add_argument("--redis-url", help="Redis URL (overrides $RECO_REDIS_URL; '' for the "
                                       "embedded store)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return args.run(args)
    except msgspec.ValidationError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2
