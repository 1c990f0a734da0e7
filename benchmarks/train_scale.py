"""Training at scale: the full trainer on a generated power-law purchase log, next to a bare
implicit ALS fit of the same matrix in the same run, with time and peak memory per stage.

One invocation does, in order:

1. **generate** (skipped when ``OUT/data`` already holds a log of the same parameters): a
   seeded, vectorised power-law shop in the trainer's canonical tables, written as Parquet
   (``purchases``, ``items``, ``customers``; :func:`generate`). Customer activity and item
   popularity are Zipf-like, items belong to style clusters that customers prefer (so
   co-purchases have structure), orders group several items under one timestamp, dates span
   ``--days`` with growth towards the end, and the catalogue has departments, categories with
   size systems and sizes, list and sale prices, launch dates and market restrictions.
2. **bare ALS** in a fresh subprocess: the user x item weight matrix the trainer fits on
   (``training.interactions.build_interactions``, not timed), then only
   ``implicit.cpu.als.AlternatingLeastSquares(...).fit`` with the trainer config's factors,
   iterations, regularisation, alpha and seed.
3. **full trainer** in a fresh subprocess: ``training.data.canonical.load`` (stage ``load``) and
   ``training.pipeline.train`` exactly as ``python -m training train --dataset canonical
   --no-evaluate`` runs it: every stage, the bundle written and published under ``OUT/bundles``,
   and the batch profiles pushed to Redis (``--redis-url``) under a dedicated prefix
   ``bench-scale-<pid>`` whose keys are deleted (SCAN + UNLINK) at the end, whatever happened.
   ``--no-redis`` leaves the push out.

Memory: the peak resident set (RSS high-water mark) of each stage, measured by resetting the
process's high-water mark (``echo 5 > /proc/self/clear_refs``) when a stage starts and reading
``VmHWM`` from ``/proc/self/status`` when it ends: exact, no sampling thread, no overhead. It
includes everything the process holds (Python, libraries, the loaded tables), so the table also
shows the RSS when the stage started. The bare fit is measured the same way. Linux only.

The memory reference is the interaction matrix as CSR (data + indices + indptr bytes) plus the
user and item factors (float32). Targets (issue 7): the trainer's time within 1.2x the bare ALS
fit, its peak memory within 2x that reference.

    .venv/bin/python benchmarks/train_scale.py                 # 20M rows, 1M customers, 100k items
    .venv/bin/python benchmarks/train_scale.py --rows 2000000 --customers 100000 --items 20000
    .venv/bin/python benchmarks/train_scale.py --record        # also append to RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.data.synthetic import CATEGORIES, MARKET_SHARE, MARKETS, SIZE_SYSTEMS  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "out" / "train_scale"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
GIB = 1024 ** 3
CLUSTERS = 64


# -- memory -----------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PeakMeter:
    """Per stage: wall and CPU seconds, RSS at the start and the RSS high-water mark during
    the stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False

    @contextmanager
    def watch(self, name: str):
        if self.resettable:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        start_rss = _status_kb("VmRSS") * 1024
        started, cpu = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            self.stages[name] = {
                "seconds": round(time.perf_counter() - started, 3),
                "cpu_seconds": round(_cpu_seconds() - cpu, 3),
                "peak_bytes": _status_kb("VmHWM") * 1024,
                "start_bytes": start_rss,
                "end_bytes": _status_kb("VmRSS") * 1024,
            }


# -- the generated shop -----------------------------------------------------------------------

def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights proportional to rank^-exponent, ranks assigned in a random order."""
    return (np.arange(1, n + 1, dtype=np.float64) ** -exponent)[rng.permutation(n)]


def generate(rows: int, customers: int, items: int, *, seed: int = 42, days: int = 730,
             end: dt.date = dt.date(2026, 6, 30), customer_exponent: float = 0.5,
             item_exponent: float = 1.0, cluster_share: float = 0.6
             ) -> dict[str, pl.DataFrame]:
    """The power-law shop as canonical tables ``purchases``, ``items``, ``customers``.

    Deterministic for given arguments. Every customer buys at least once; the other
    ``rows - customers`` purchases go to customers with Zipf weights (``customer_exponent``),
    to items with Zipf weights (``item_exponent``), ``cluster_share`` of them within the
    customer's style cluster. Consecutive purchases of a customer share an order (one ts)
    about 45% of the time.
    """
    if rows < customers:
        raise ValueError(f"rows ({rows}) must be at least customers ({customers})")
    rng = np.random.default_rng(seed)
    end_dt = dt.datetime.combine(end, dt.time(23, 59))
    start_dt = end_dt - dt.timedelta(days=days)

    # catalogue: products (1-4 variants sharing a name and category) of categories
    new_product = rng.random(items) < 0.45
    new_product[0] = True
    product = np.cumsum(new_product) - 1
    n_products = int(product[-1]) + 1
    shares = np.array([c.share * {"women": 0.55, "men": 0.30, "kids": 0.15}[c.department]
                       for c in CATEGORIES])
    cat = rng.choice(len(CATEGORIES), n_products, p=shares / shares.sum())[product]
    systems = list(SIZE_SYSTEMS)
    cat_system = np.array([systems.index(c.size_system) for c in CATEGORIES])
    base_price = np.array([c.base_price for c in CATEGORIES])[cat]
    list_price = np.maximum(np.round(base_price * rng.lognormal(0.0, 0.25, items)) - 0.01, 2.99)
    marked = rng.random(items) < 0.2
    price = np.where(marked, np.round(list_price * 0.7, 2), list_price)
    cluster = rng.integers(0, CLUSTERS, items)
    popularity = _zipf_weights(items, item_exponent, rng)
    restricted = rng.random(items) < 0.1
    cat_names = pl.Series([f"{c.department}_{c.name}" for c in CATEGORIES])
    sys_sizes = pl.DataFrame({"size_system": systems,
                              "sizes": [list(SIZE_SYSTEMS[s]) for s in systems]})
    item_ids = pl.Series("item_id", np.arange(items)).cast(pl.String).str.zfill(7)
    item_ids = ("i" + item_ids).alias("item_id")

    # customers: market, size quantile, favourite cluster, Zipf activity
    country = rng.choice(len(MARKETS), customers, p=np.asarray(MARKET_SHARE))
    size_q = rng.beta(2.0, 2.0, customers)
    favourite = rng.integers(0, CLUSTERS, customers)
    activity = _zipf_weights(customers, customer_exponent, rng)
    per_customer = 1 + rng.multinomial(rows - customers, activity / activity.sum())
    user = np.repeat(np.arange(customers, dtype=np.int32), per_customer)
    user_ids = ("c" + pl.Series(np.arange(customers)).cast(pl.String).str.zfill(8)).alias(
        "user_id")

    # items of each purchase: within the favourite cluster, else anywhere, by popularity
    by_cluster = np.argsort(cluster, kind="stable")
    cum = np.cumsum(popularity[by_cluster])
    starts = np.searchsorted(cluster[by_cluster], np.arange(CLUSTERS + 1))
    bounds = np.concatenate([[0.0], cum])[starts]  # cumulative weight before each cluster
    fav = favourite[user]
    local = rng.random(rows) < cluster_share
    lo = np.where(local, bounds[fav], 0.0)
    hi = np.where(local, bounds[fav + 1], cum[-1])
    del fav
    pick = lo + rng.random(rows) * (hi - lo)
    del lo, hi
    item = by_cluster[np.minimum(np.searchsorted(cum, pick, side="right"), items - 1)]
    item = item.astype(np.int32)
    del pick, local

    # orders and dates: growth towards the end (density rising linearly)
    new_order = np.ones(rows, dtype=bool)
    new_order[1:] = (user[1:] != user[:-1]) | (rng.random(rows - 1) > 0.45)
    order = np.cumsum(new_order) - 1
    n_orders = int(order[-1]) + 1
    order_minute = (np.sqrt(rng.random(n_orders)) * days * 1440).astype(np.int64)
    ts = (np.datetime64(start_dt, "us")
          + (order_minute[order] * 60_000_000).astype("timedelta64[us]"))
    del order, new_order, order_minute

    # sizes, prices, returns, fit feedback, channel
    item_system = cat_system[cat[item]]
    lengths = np.array([len(SIZE_SYSTEMS[s]) for s in systems])[item_system]
    pos = np.clip(np.rint(size_q[user] * (lengths - 1) + rng.normal(0, 0.5, rows)), 0,
                  lengths - 1).astype(np.int64)
    labels = pl.Series([label for s in systems for label in SIZE_SYSTEMS[s]])
    offsets = np.concatenate([[0], np.cumsum([len(SIZE_SYSTEMS[s]) for s in systems])[:-1]])
    size_code = offsets[item_system] + pos
    del item_system, lengths, pos
    returned = rng.random(rows) < 0.06
    fit_draw = rng.random(rows)
    fit_code = np.where(fit_draw < 0.5, -1, np.where(fit_draw < 0.9, 1,
                                                    np.where(fit_draw < 0.95, 0, 2)))
    del fit_draw
    fit_names = pl.Series(["small", "fit", "large"])
    purchases = pl.DataFrame({
        "user_id": user_ids.gather(user),
        "item_id": item_ids.gather(item),
        "ts": ts,
        "quantity": np.ones(rows, np.int32),
        "price": np.where(rng.random(rows) < 0.5, price[item], list_price[item]),
        "size": labels.gather(size_code),
        "country": pl.Series(MARKETS).gather(country[user]),
        "channel": pl.Series(["online", "store"]).gather((rng.random(rows) < 0.3).astype(
            np.int64)),
        "returned": returned,
        "fit": fit_names.gather(np.maximum(fit_code, 0)),
    }).with_columns(
        pl.when(pl.Series(fit_code) >= 0).then(pl.col("fit")).otherwise(None).alias("fit"),
    )
    del ts, size_code, returned, fit_code

    first_sale = (purchases.select(pl.col("item_id"), pl.col("ts"))
                  .group_by("item_id").agg(first=pl.col("ts").min()))
    launch = (np.datetime64(start_dt, "us")
              + (rng.integers(-365, days, items) * 86_400_000_000).astype("timedelta64[us]"))
    catalogue = pl.DataFrame({
        "item_id": item_ids,
        "name": pl.Series([f"{c.noun}" for c in CATEGORIES]).gather(cat) + " "
        + pl.Series(product).cast(pl.String),
        "category": cat_names.gather(cat),
        "department": pl.Series([c.department for c in CATEGORIES]).gather(cat),
        "size_system": pl.Series(systems).gather(cat_system[cat]),
        "list_price": list_price,
        "price": price,
        "launch": launch,
        "market": pl.Series(MARKETS).gather(rng.integers(0, len(MARKETS), items)),
        "restricted": restricted,
        "sensitive": np.array([c.sensitive for c in CATEGORIES])[cat],
        "in_stock": rng.random(items) > 0.03,
    }).join(first_sale, on="item_id", how="left").join(sys_sizes, on="size_system", how="left")
    catalogue = catalogue.select(
        "item_id", "name", "category", "department", "size_system", "sizes", "list_price",
        "price",
        first_seen=pl.min_horizontal("launch", "first"),
        markets=pl.when(pl.col("restricted")).then(pl.concat_list("market")).otherwise(None),
        sensitive="sensitive", in_stock="in_stock",
    )
    signup = (np.datetime64(start_dt, "us") - np.timedelta64(365, "D")
              + (rng.integers(0, days + 365, customers) * 86_400_000_000)
              .astype("timedelta64[us]"))
    customers_table = pl.DataFrame({
        "user_id": user_ids,
        "country": pl.Series(MARKETS).gather(country),
        "signup": signup,
        "consent_personalisation": rng.random(customers) > 0.05,
        "consent_sensitive": rng.random(customers) < 0.1,
    })
    return {"purchases": purchases, "items": catalogue, "customers": customers_table}


def _write_data(data_dir: Path, params: dict) -> dict:
    """Generate and write the Parquet tables unless ``data_dir`` already holds these."""
    meta_path = data_dir / "params.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) == params:
        print(f"reusing the log in {data_dir}", file=sys.stderr)
        return {"seconds": None, "reused": True}
    data_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    started = time.perf_counter()
    tables = generate(params["rows"], params["customers"], params["items"], seed=params["seed"],
                      days=params["days"])
    generated = time.perf_counter() - started
    for name, df in tables.items():
        df.write_parquet(data_dir / f"{name}.parquet")
    meta_path.write_text(json.dumps(params))
    print(f"generated {params['rows']:,} purchases in {generated:.1f} s, written in "
          f"{time.perf_counter() - started - generated:.1f} s", file=sys.stderr)
    return {"seconds": round(time.perf_counter() - started, 3), "reused": False}


# -- workers (each in its own process, so each peak is its own) -------------------------------

def _config(args):
    from training.config import TrainConfig
    return TrainConfig.load(args.config, factors=args.factors, iterations=args.iterations)


def _worker_bare(args) -> dict:
    """The bare fit: implicit's CPU ALS on the trainer's matrix, nothing else."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from training.data import canonical
    from training.interactions import build_interactions

    config = _config(args)
    data = canonical.load(args.data)
    matrix = build_interactions(data, config).matrix
    del data
    meter = PeakMeter()
    with meter.watch("bare_als"), threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=config.factors, regularization=config.regularization, alpha=config.alpha,
            iterations=config.iterations, random_state=config.seed,
            calculate_training_loss=False)
        model.fit(matrix, show_progress=False)
    csr = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    factor_bytes = model.user_factors.nbytes + model.item_factors.nbytes
    return {"stage": meter.stages["bare_als"], "users": matrix.shape[0],
            "items": matrix.shape[1], "nnz": int(matrix.nnz), "csr_bytes": int(csr),
            "factor_bytes": int(factor_bytes), "factor_dtype": str(model.user_factors.dtype),
            "threads": getattr(model, "num_threads", None)}


def _worker_trainer(args) -> dict:
    """The full trainer as ``python -m training train --no-evaluate`` runs it."""
    from training.data import canonical
    from training.pipeline import train
    from training.stages import Stages

    config = _config(args)
    meter = PeakMeter()
    with meter.watch("load"):
        data = canonical.load(args.data)
    result = train(data, config, args.bundles,
                   redis_url=None if args.no_redis else args.redis_url,
                   redis_prefix=args.redis_prefix, publish=True, progress=False,
                   stages=Stages(watch=meter.watch), consume=True)
    return {"stages": meter.stages, "version": result.version,
            "profiles": result.manifest.counts["profiles"],
            "profiles_pushed": result.profiles_pushed, "counts": result.manifest.counts,
            "bundle_bytes": sum(p.stat().st_size for p in Path(result.path).rglob("*")
                                if p.is_file())}


def _run_worker(kind: str, args, out_json: Path) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--data", str(args.data),
               "--bundles", str(args.bundles), "--factors", str(args.factors),
               "--iterations", str(args.iterations), "--result", str(out_json)]
    if args.config:
        command += ["--config", str(args.config)]
    if kind == "trainer":  # the worker's own --redis-url default must not apply
        command += (["--redis-url", args.redis_url, "--redis-prefix", args.redis_prefix]
                    if args.redis_url else ["--no-redis"])
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    result = json.loads(out_json.read_text())
    result["process_seconds"] = round(time.perf_counter() - started, 3)
    return result


def _delete_prefix(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted


# -- report -----------------------------------------------------------------------------------

def _machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except OSError:
        mem_kb = 0
    import implicit
    return {"nproc": os.cpu_count(), "ram_gib": round(mem_kb / 1024 ** 2, 1), "cpu": model,
            "python": platform.python_version(), "implicit": implicit.__version__}


def summarise(bare: dict, trainer: dict) -> dict:
    """Totals and the two ratios the targets are about (wall and CPU time)."""
    stages = trainer["stages"]
    train_stages = {k: v for k, v in stages.items() if k != "load"}
    push = stages.get("profiles_to_redis", {"seconds": 0.0, "cpu_seconds": 0.0})

    def total(key: str) -> float:
        return round(sum(v[key] for v in train_stages.values()), 3)
    peak = max(v["peak_bytes"] for v in train_stages.values())
    reference = bare["csr_bytes"] + bare["factor_bytes"]
    bare_s, bare_cpu = bare["stage"]["seconds"], bare["stage"]["cpu_seconds"]
    return {
        "bare_als_seconds": bare_s,
        "bare_als_cpu_seconds": bare_cpu,
        "train_seconds": total("seconds"),
        "train_cpu_seconds": total("cpu_seconds"),
        "train_seconds_without_push": round(total("seconds") - push["seconds"], 3),
        "load_seconds": stages.get("load", {}).get("seconds"),
        "time_ratio": round(total("seconds") / bare_s, 3),
        "cpu_ratio": round(total("cpu_seconds") / bare_cpu, 3),
        "time_ratio_without_push": round((total("seconds") - push["seconds"]) / bare_s, 3),
        "cpu_ratio_without_push": round((total("cpu_seconds") - push["cpu_seconds"]) / bare_cpu,
                                        3),
        "memory_reference_bytes": reference,
        "train_peak_bytes": peak,
        "train_peak_with_load_bytes": max(v["peak_bytes"] for v in stages.values()),
        "memory_ratio": round(peak / reference, 3),
        "loaded_bytes": stages["load"]["end_bytes"],
        "memory_ratio_above_load": round((peak - stages["load"]["end_bytes"]) / reference, 3),
        "bare_als_peak_bytes": bare["stage"]["peak_bytes"],
        "bare_als_memory_ratio": round(bare["stage"]["peak_bytes"] / reference, 3),
    }


def format_table(report: dict) -> str:
    bare, trainer, s = report["bare"], report["trainer"], report["summary"]
    bare_s, bare_cpu = s["bare_als_seconds"], s["bare_als_cpu_seconds"]
    lines = ["| stage | seconds | x bare ALS | CPU seconds | x bare ALS CPU | peak RSS GiB "
             "| RSS at start GiB |", "|---|---|---|---|---|---|---|"]

    def row(name: str, st: dict) -> str:
        return (f"| {name} | {st['seconds']:.1f} | {st['seconds'] / bare_s:.2f} | "
                f"{st['cpu_seconds']:.1f} | {st['cpu_seconds'] / bare_cpu:.2f} | "
                f"{st['peak_bytes'] / GIB:.2f} | {st['start_bytes'] / GIB:.2f} |")
    for name, st in trainer["stages"].items():
        lines.append(row(name, st))
    lines.append(f"| **trainer total** (without load) | **{s['train_seconds']:.1f}** | "
                 f"**{s['time_ratio']:.2f}** | **{s['train_cpu_seconds']:.1f}** | "
                 f"**{s['cpu_ratio']:.2f}** | **{s['train_peak_bytes'] / GIB:.2f}** | |")
    lines.append(f"| trainer total without the Redis push | {s['train_seconds_without_push']:.1f}"
                 f" | {s['time_ratio_without_push']:.2f} | | {s['cpu_ratio_without_push']:.2f} "
                 f"| | |")
    lines.append(row("bare implicit ALS fit (own process)", bare["stage"]))
    ref = s["memory_reference_bytes"]
    load = report.get("load_average")
    lines += [
        "",
        f"- matrix: {bare['users']:,} users x {bare['items']:,} items, {bare['nnz']:,} non-zeros;"
        f" CSR {bare['csr_bytes'] / GIB:.3f} GiB + factors {bare['factor_bytes'] / GIB:.3f} GiB"
        f" = reference {ref / GIB:.3f} GiB",
        f"- time: trainer {s['train_seconds']:.1f} s = {s['time_ratio']:.2f}x bare ALS "
        f"{bare_s:.1f} s (CPU time {s['cpu_ratio']:.2f}x; target <= 1.2x: "
        f"{'met' if s['time_ratio'] <= 1.2 else 'NOT met'}); without the Redis push "
        f"{s['time_ratio_without_push']:.2f}x (CPU {s['cpu_ratio_without_push']:.2f}x); "
        f"loading the Parquet tables {s['load_seconds']:.1f} s on top",
        f"- memory: trainer peak {s['train_peak_bytes'] / GIB:.2f} GiB = "
        f"{s['memory_ratio']:.2f}x the reference (target <= 2x: "
        f"{'met' if s['memory_ratio'] <= 2 else 'NOT met'}); above the RSS with the input "
        f"tables loaded ({s['loaded_bytes'] / GIB:.2f} GiB) "
        f"{s['memory_ratio_above_load']:.2f}x; the bare fit's own process peaks "
        f"at {s['bare_als_peak_bytes'] / GIB:.2f} GiB = {s['bare_als_memory_ratio']:.2f}x",
        f"- profiles: {trainer['profiles']:,} in the bundle "
        f"({trainer['bundle_bytes'] / GIB:.2f} GiB on disk), {trainer['profiles_pushed']:,} "
        f"pushed to Redis",
    ]
    if load:
        lines.append(f"- machine load (1-min average) before / after the run: {load[0]:.1f} / "
                     f"{load[1]:.1f} on {report['machine']['nproc']} cores (others' work "
                     "slows the wall times; CPU seconds are this process's own)")
    return "\n".join(lines)


def _record(report: dict, command: str) -> None:
    m = report["machine"]
    p = report["params"]
    text = (f"\n## Training at scale: {report['date']}\n\n"
            f"- machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
            f"Python {m['python']}, implicit {m['implicit']} on CPU\n"
            f"- log: {p['rows']:,} purchases, {p['customers']:,} customers, {p['items']:,} "
            f"items, {p['days']} days, seed {p['seed']}; factors {p['factors']}, iterations "
            f"{p['iterations']}\n\n```sh\n{command}\n```\n\n{format_table(report)}\n")
    with RESULTS.open("a") as fh:
        fh.write(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000_000, help="purchases (default 20M)")
    p.add_argument("--customers", type=int, default=1_000_000, help="customers (default 1M)")
    p.add_argument("--items", type=int, default=100_000, help="catalogue items (default 100k)")
    p.add_argument("--days", type=int, default=730, help="span of the log (default 730)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument("--factors", type=int, default=None,
                   help="ALS factors for both fits (default: the trainer config's)")
    p.add_argument("--iterations", type=int, default=None,
                   help="ALS iterations for both fits (default: the trainer config's)")
    p.add_argument("--config", type=Path, help="JSON or TOML TrainConfig file for both fits")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"working directory: data/, bundles/, train_scale.json "
                        f"(default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                   help="Redis the profiles are pushed to (default redis://127.0.0.1:6379/0)")
    p.add_argument("--no-redis", action="store_true", help="leave the Redis push out")
    p.add_argument("--keep-bundles", action="store_true",
                   help="keep older bundles under OUT/bundles (default: only the newest)")
    p.add_argument("--record", action="store_true", help=f"append the figures to {RESULTS.name}")
    # internal: one measured part in its own process
    p.add_argument("--worker", choices=("bare", "trainer"), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--bundles", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--redis-prefix", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s: %(message)s")
        result = (_worker_bare if args.worker == "bare" else _worker_trainer)(args)
        args.result.write_text(json.dumps(result))
        return 0

    config = _config(args)
    args.factors, args.iterations = config.factors, config.iterations
    args.out.mkdir(parents=True, exist_ok=True)
    args.data = args.out / "data"
    args.bundles = args.out / "bundles"
    params = {"rows": args.rows, "customers": args.customers, "items": args.items,
              "days": args.days, "seed": args.seed, "generator": 1}
    generated = _write_data(args.data, params)
    params.update(factors=config.factors, iterations=config.iterations)
    args.redis_url = None if args.no_redis else args.redis_url
    args.redis_prefix = f"bench-scale-{os.getpid()}"
    load_before = os.getloadavg()[0]
    bare = _run_worker("bare", args, args.out / "bare.json")
    try:
        trainer = _run_worker("trainer", args, args.out / "trainer.json")
    finally:
        if args.redis_url:
            deleted = _delete_prefix(args.redis_url, args.redis_prefix)
            print(f"deleted {deleted:,} Redis keys under {args.redis_prefix}:", file=sys.stderr)
    if not args.keep_bundles:
        import shutil
        for old in args.bundles.iterdir():
            if old.is_dir() and not old.is_symlink() and old.name != trainer["version"]:
                shutil.rmtree(old, ignore_errors=True)
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": _machine(), "params": params, "generate": generated, "bare": bare,
              "trainer": trainer, "load_average": [load_before, os.getloadavg()[0]]}
    report["summary"] = summarise(bare, trainer)
    (args.out / "train_scale.json").write_text(json.dumps(report, indent=2))
    print(format_table(report))
    print(f"figures -> {args.out / 'train_scale.json'}")
    if args.record:
        command = ".venv/bin/python benchmarks/train_scale.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--record")
        _record(report, command.strip())
        print(f"recorded in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
