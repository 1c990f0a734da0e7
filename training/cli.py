"""Command line of the trainer: ``python -m training <command> --help``."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import msgspec
import redis

from artifacts.bundle import Bundle, BundleError
from training.config import ConfigError, TrainConfig
from training.data import DATASETS, DataError, load_dataset
from training.erasures import drop_erased, read_erasures
from training.redis_push import RedisUrlError, check_url
from training.stages import install_stop_handlers, stop_signal

DEFAULT_OUT = Path("artifacts/bundles")
EVAL_DATASETS = ("hm", "online_retail", "canonical")
MODELS = ("served", "popular_7d", "popular_market", "als", "bm25", "buy_again")


def _add_split(p: argparse.ArgumentParser, datasets: tuple[str, ...]) -> None:
    """The arguments every evaluation command takes: what to read and where to split it."""
    p.add_argument("--dataset", choices=datasets, required=True,
                   help="input adapter: " + ", ".join(datasets))
    p.add_argument("--data", type=Path, required=True,
                   help="directory with the dataset's files (layout of ../shared/data/<dataset>)")
    p.add_argument("--split-at", required=True, metavar="YYYY-MM-DD",
                   help="first day of the test period; training uses only earlier purchases")
    p.add_argument("--test-days", type=int, metavar="N",
                   help="length of the test period in days (default: to the end of the data)")


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
    p.add_argument("--no-redis", action="store_true",
                   help="do not write profiles to Redis (nor read its erasure list)")
    p.add_argument("--erasures", type=Path,
                   help="file of customer ids to leave out (one per line), on top of the "
                        "erasure list the service keeps in Redis")
    p.add_argument("--redis-prefix", default=os.environ.get("RECO_REDIS_PREFIX", "reco"),
                   help="key prefix in Redis (default: $RECO_REDIS_PREFIX or 'reco')")
    p.add_argument("--until", help="train only on purchases before this date (YYYY-MM-DD)")
    p.add_argument("--no-publish", action="store_true",
                   help="commit the bundle but leave 'current' where it is")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the held-out evaluation (the manifest then carries no figures)")
    p.add_argument("--holdout-days", type=int, metavar="N",
                   help="days at the end of the data held out to measure the run (default: "
                        "the config's holdout_days); at most a fifth of the data's span: a "
                        "larger value is capped, and the log says so")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="write the held-out evaluation as DIR/report.md with PNG plots")
    p.add_argument("--gate", action="store_true",
                   help="publish only if the new bundle's held-out MAP@12 (all customers and "
                        "those with history) is not worse than the serving bundle's by more "
                        "than the config's gate_tolerance; otherwise say why, leave 'current' "
                        "and Redis untouched and exit with status 4")
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
    p.add_argument("--redis-prefix", default=os.environ.get("RECO_REDIS_PREFIX", "reco"),
                   help="key prefix in Redis (default: $RECO_REDIS_PREFIX or 'reco')")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_push)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="measure the served recommendations against baselines on a time split",
        description="Train on every purchase before --split-at, test on the purchases from "
                    "that date (for --test-days days, default: to the end of the data) and print "
                    "one table: the served recommendations (a real bundle answered by the "
                    "service's selection code) and the baselines (popularity over the last 7 "
                    "days, per market where there are markets, implicit ALS and BM25 item-item "
                    "with default parameters, buy again where the data has repeats), each for "
                    "all test customers, those with history and those without. Item fields the "
                    "adapters derive from purchases are recomputed from the training rows only.")
    _add_split(p, EVAL_DATASETS)
    p.add_argument("--k", type=int, default=12,
                   help="cut-off of recall, NDCG and coverage (default 12; MAP is always @12)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write DIR/report.md with PNG plots beside it")
    p.add_argument("--config", type=Path,
                   help="JSON or TOML file with TrainConfig fields for the served model "
                        "(default: the tuned defaults)")
    p.add_argument("--models", help="comma-separated subset of models to run "
                   f"(default: all that apply: {', '.join(MODELS)})")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluation.harness import evaluate
    from training.evaluation.report import format_table, write_json, write_report
    from training.evaluation.split import parse_date, time_split

    if args.k < 1 or args.k > 1000:
        raise DataError(f"--k must be between 1 and 1000, got {args.k}")
    include = None
    if args.models:
        include = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = sorted(set(include) - set(MODELS))
        if unknown:
            raise DataError(f"unknown model(s) {', '.join(unknown)} in --models; "
                            f"expected some of {', '.join(MODELS)}")
    split_at = parse_date(args.split_at, "--split-at")
    config = TrainConfig.load(args.config)
    started = time.perf_counter()
    data = load_dataset(args.dataset, args.data)
    split = time_split(data, split_at, args.test_days)
    with_history = sum(1 for u in split.users if split.with_history(u))
    if not args.quiet:
        print(f"{data.name}: {len(split.users):,} test customers ({with_history:,} with history)",
              file=sys.stderr)
    ev = evaluate(split, config, k=args.k, include=include, progress=not args.quiet)
    print(format_table(ev))
    if args.json:
        print(f"figures -> {write_json(ev, args.json)}")
    if args.report:
        print(f"report -> {write_report(ev, args.report, _command(args))}")
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


SIZE_DATASETS = ("renttherunway", "canonical")


def _add_evaluate_sizes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-sizes", help="measure the preselected size against baselines on a time split",
        description="Train on every purchase before --split-at and, for each later sized row "
                    "of a customer with history in the item's size system, ask the size "
                    "decision the service runs (artifacts.sizing.choose_size, batch profile "
                    "from a real bundle). Prints one table: on rows with fit feedback 'fit', "
                    "coverage and exact accuracy at the served threshold and precision at "
                    "every coverage level (ranked by confidence); on 'small'/'large' rows, how "
                    "often the answer moved the right way; beside it, in the same run, the "
                    "baselines 'last size' and 'most frequent size'.")
    _add_split(p, SIZE_DATASETS)
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write DIR/sizes.md with the precision-coverage curves as a PNG")
    p.add_argument("--size-config", type=Path, metavar="FILE",
                   help="JSON or TOML file with SizeConfig fields (training/models/sizes.py; "
                        "default: the validated defaults)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=_evaluate_sizes)


def _evaluate_sizes(args: argparse.Namespace) -> int:
    from training.evaluation.sizes import evaluate_sizes
    from training.evaluation.sizes_report import format_table, write_json, write_report
    from training.evaluation.split import parse_date
    from training.models.sizes import SizeConfig

    if args.test_days is not None and args.test_days < 1:
        raise DataError(f"--test-days must be at least 1, got {args.test_days}")
    split_at = parse_date(args.split_at, "--split-at")
    if args.size_config is not None and not args.size_config.is_file():
        raise DataError(f"--size-config {args.size_config}: no such file")
    config = SizeConfig.load(args.size_config)
    started = time.perf_counter()
    data = load_dataset(args.dataset, args.data)
    ev = evaluate_sizes(data, split_at, test_days=args.test_days, config=config,
                        progress=not args.quiet)
    print(format_table(ev))
    if args.json:
        print(f"figures -> {write_json(ev, args.json)}")
    if args.report:
        print(f"report -> {write_report(ev, args.report, _command(args))}")
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


def _command(args: argparse.Namespace) -> str | None:
    """The command line of this run as a report records it (None when it is not known)."""
    return "python -m training " + shlex.join(args.argv) if args.argv else None


def _writable(root: Path) -> None:
    """Stop now when bundles cannot be written under ``root``."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {root}: cannot create the bundles folder: {exc.strerror}"
                        ) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise DataError(f"--out {root}: the bundles folder is not writable")


def _train(args: argparse.Namespace) -> int:
    from training.models.segments import describe as describe_segments
    from training.stages import Stopped

    config = TrainConfig.load(args.config, factors=args.factors, iterations=args.iterations,
                              neighbours=args.neighbours, candidates=args.candidates)
    if args.report and args.no_evaluate:
        raise DataError("--report describes the held-out evaluation: it cannot be combined "
                        "with --no-evaluate")
    if args.gate and args.no_evaluate:
        raise DataError("--gate compares held-out figures: it cannot be combined with "
                        "--no-evaluate")
    if args.holdout_days is not None and args.holdout_days < 1:
        raise DataError(f"--holdout-days must be at least 1, got {args.holdout_days}")
    if args.redis_url and not args.no_redis:
        check_url(args.redis_url)
    _writable(args.out)  # before hours of training, not after
    started = time.perf_counter()
    args.phase = "data loading"
    try:
        result = _train_run(args, config)
    except Stopped:
        raise
    except KeyboardInterrupt as exc:  # before the pipeline began: no bundle written yet
        raise KeyboardInterrupt(f"during {args.phase}: no bundle written to {args.out}; "
                                f"'current' unchanged") from exc
    counts = result.manifest.counts
    if result.refused:
        print(f"bundle {result.version} -> {result.path} NOT published: {result.refused}\n"
              f"  'current' and the profiles in Redis are unchanged")
        return 4
    erased = (f" ({result.profiles_erased:,} left out: on the erasure list)"
              if result.profiles_erased else "")
    print(f"bundle {result.version} -> {result.path}"
          f"{' (current)' if result.published else ''}\n"
          f"  {counts['purchases']:,} purchases, {counts['users']:,} customers, "
          f"{counts['items']:,} items ({counts['active_items']:,} active), "
          f"{counts['markets']} markets\n"
          f"  profiles: {counts['profiles']:,} in the bundle, {result.profiles_pushed:,} in Redis"
          f"{erased}\n  segments: {describe_segments(result.manifest.segments)}"
          f"\n  took {time.perf_counter() - started:.1f} s")
    return 0


def _train_run(args: argparse.Namespace, config: TrainConfig):
    """Load, evaluate and train; ``args.phase`` names the step running, for a message when
    the run is stopped before :func:`training.pipeline.train` takes over."""
    from training.pipeline import train

    options = {"seed": args.seed} if args.dataset == "synthetic" else {}
    data = load_dataset(args.dataset, args.data, **options)
    data = drop_erased(data, read_erasures(None if args.no_redis else args.redis_url,
                                           args.redis_prefix, args.erasures))
    if args.until:  # as if trained on that day: prices and dates derived before it only
        from training.evaluation.split import mask_future, parse_date
        cut = parse_date(args.until, "--until")
        data = mask_future(data.before(cut), cut)
    metrics = None
    if not args.no_evaluate:
        from training.evaluation.holdout import holdout_evaluation, manifest_metrics
        from training.evaluation.report import write_report
        args.phase = "held-out evaluation"
        ev = holdout_evaluation(data, config, days=args.holdout_days, progress=not args.quiet)
        metrics = manifest_metrics(ev)
        _print_holdout(metrics)
        if args.report:
            print(f"report of the held-out run -> "
                  f"{write_report(ev, args.report, _command(args))}")
    gate = _gate(args.out, config) if args.gate else None
    args.phase = "training"
    return train(data, config, args.out, redis_url=None if args.no_redis else args.redis_url,
                 redis_prefix=args.redis_prefix, publish=not args.no_publish,
                 progress=not args.quiet, metrics=metrics, gate=gate, consume=True)


def _print_holdout(metrics: dict) -> None:
    window = metrics["holdout"]
    print(f"held out {window['days']} day(s) from {window['split_at'][:10]}: "
          f"{metrics['customers']['all']:,} test customers "
          f"({metrics['customers']['with_history']:,} with history); MAP@12:")
    for name, groups in metrics["models"].items():
        print(f"  {name:16s} all {groups['all']['map12']:.5f}  "
              f"with history {groups['with_history']['map12']:.5f}")


def _gate(out: Path, config: TrainConfig):
    """The gate against the bundle currently serving under ``out`` (None when there is none)."""
    from artifacts.bundle import read_manifest, resolve
    from training.evaluation.holdout import gate_reason

    try:
        serving = read_manifest(resolve(out))
    except BundleError as exc:
        print(f"gate: nothing serving to compare with ({exc})", file=sys.stderr)
        return None
    if not serving.metrics:
        print(f"gate: the serving bundle {serving.version} carries no figures; not gating",
              file=sys.stderr)
        return None

    def check(manifest) -> str | None:
        return gate_reason(manifest.metrics, serving.metrics, config.gate_tolerance)
    return check


def _push(args: argparse.Namespace) -> int:
    from training.redis_push import PushCounts, push_profiles

    check_url(args.redis_url)
    bundle = Bundle.open(args.bundle)
    counts = PushCounts()
    try:
        push_profiles(bundle.profile_records(), args.redis_url, prefix=args.redis_prefix,
                      total=bundle.manifest.counts.get("profiles"), progress=not args.quiet,
                      counts=counts)
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt(
            f"during push-profiles: {counts.written:,} profiles of bundle {bundle.version} had "
            f"been written to Redis (run it again to write them all)") from exc
    print(f"wrote {counts.written:,} profiles of bundle {bundle.version} to Redis; left out "
          f"{counts.erased:,} on the erasure list")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_evaluate_sizes(sub)
    _add_push(sub)
    return parser


#: What to try after a Redis error, per command (the others do not use Redis).
REDIS_HINTS = {
    "train": "use --no-redis to skip writing profiles",
    "push-profiles": "check that Redis runs at --redis-url or $RECO_REDIS_URL",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    restore = install_stop_handlers()
    try:
        status = args.run(args)
        if stop_signal() is not None:  # came once the run could no longer stop
            print(f"{signal.Signals(stop_signal()).name} received after the run had published "
                  "its bundle: the run completed", file=sys.stderr)
        return status
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what was stopped, what is left
        signum = stop_signal() or signal.SIGINT
        what = str(exc) or f"during {args.command}"
        print(f"stopped by {signal.Signals(signum).name} {what}", file=sys.stderr)
        return 128 + signum
    except (DataError, BundleError, ConfigError, RedisUrlError, msgspec.ValidationError,
            msgspec.DecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the output folder: not writable, a file, the disk full
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        hint = REDIS_HINTS.get(args.command)
        print(f"error: Redis: {exc}{f' ({hint})' if hint else ''}", file=sys.stderr)
        return 3
    finally:
        restore()
