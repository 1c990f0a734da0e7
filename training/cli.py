"""Command line of the trainer: ``python -m training <command> --help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import msgspec
import redis

from artifacts.bundle import Bundle, BundleError
from training.config import TrainConfig
from training.data import DATASETS, DataError, load_dataset

DEFAULT_OUT = Path("artifacts/bundles")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train every model and export a bundle",
        description="Train item-to-item, ALS and popularity models on a dataset, export a "
                    "versioned bundle (made current on success) and write batch profiles to Redis.")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="input adapter (default: synthetic, the seeded demo shop)")
    p.add_argument("--data", type=Path, help="directory with the dataset's files "
                   "(required for every dataset except synthetic)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"bundles root; the bundle goes to OUT/<version>, OUT/current points at "
                        f"it (default: {DEFAULT_OUT})")
    p.add_argument("--config", type=Path, help="JSON or TOML file with TrainConfig fields")
    p.add_argument("--redis-url", default=os.environ.get("RECO_REDIS_URL"),
                   help="Redis to write batch profiles to (default: $RECO_REDIS_URL; "
                        "profiles are always stored in the bundle as well)")
    p.add_argument("--no-redis", action="store_true", help="do not write profiles to Redis")
    p.add_argument("--redis-prefix", default=os.environ.get("RECO_REDIS_PREFIX", "reco"),
                   help="key prefix in Redis (default: $RECO_REDIS_PREFIX or 'reco')")
    p.add_argument("--until", help="train only on purchases before this date (YYYY-MM-DD)")
    p.add_argument("--no-publish", action="store_true",
                   help="commit the bundle but leave 'current' where it is")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic shop (default: 7)")
    for name, help_text in (("factors", "ALS factors"), ("iterations", "ALS iterations"),
                            ("neighbours", "item-item neighbours kept per item"),
                            ("candidates", "precomputed recommendations per customer")):
        p.add_argument(f"--{name}", type=int, help=f"{help_text} (overrides the config)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_train)


def _add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push-profiles", help="(re)load a bundle's batch profiles into Redis",
        description="Write the batch profiles stored in a bundle to Redis, e.g. after Redis "
                    "was restarted empty. Nothing is retrained.")
    p.add_argument("--bundle", type=Path, default=DEFAULT_OUT,
                   help=f"bundle directory or bundles root (its current) (default: {DEFAULT_OUT})")
    p.add_argument("--redis-url", default=os.environ.get("RECO_REDIS_URL",
                                                         "redis://127.0.0.1:6379/0"),
                   help="target Redis (default: $RECO_REDIS_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--redis-prefix", default=os.environ.get("RECO_REDIS_PREFIX", "reco"))
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_push)


def _train(args: argparse.Namespace) -> int:
    from training.pipeline import train

    config = TrainConfig.load(args.config, factors=args.factors, iterations=args.iterations,
                              neighbours=args.neighbours, candidates=args.candidates)
    started = time.perf_counter()
    options = {"seed": args.seed} if args.dataset == "synthetic" else {}
    data = load_dataset(args.dataset, args.data, **options)
    if args.until:
        import datetime as dt
        data = data.before(dt.datetime.fromisoformat(args.until))
    result = train(data, config, args.out,
                   redis_url=None if args.no_redis else args.redis_url,
                   redis_prefix=args.redis_prefix, publish=not args.no_publish,
                   progress=not args.quiet)
    counts = result.manifest.counts
    print(f"bundle {result.version} -> {result.path}"
          f"{' (current)' if result.published else ''}\n"
          f"  {counts['purchases']:,} purchases, {counts['users']:,} customers, "
          f"{counts['items']:,} items ({counts['active_items']:,} active), "
          f"{counts['markets']} markets\n"
          f"  profiles: {counts['profiles']:,} in the bundle, {result.profiles_pushed:,} in Redis"
          f"\n  took {time.perf_counter() - started:.1f} s")
    return 0


def _push(args: argparse.Namespace) -> int:
    from training.redis_push import push_profiles

    bundle = Bundle.open(args.bundle)
    n = push_profiles(bundle.profile_records(), args.redis_url, prefix=args.redis_prefix,
                      total=bundle.manifest.counts.get("profiles"), progress=not args.quiet)
    print(f"wrote {n:,} profiles of bundle {bundle.version} to Redis")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_push(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except (DataError, BundleError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {exc} (use --no-redis to skip writing profiles)", file=sys.stderr)
        return 3
