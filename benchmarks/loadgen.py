"""Drive one server on loopback with wrk, and account for where the CPU went meanwhile.

Used by ``benchmarks/load.py``: a :class:`Server` subprocess, :func:`probe` to look at real
answers once, and :func:`measure` for one warmed-up, timed wrk run that returns a
:class:`Measurement` (throughput, latency percentiles, errors, CPU per request and the CPU other
processes took: on a shared 2-core machine that is the noise to report next to the figure).

Two ways to drive a server:

- closed loop (:data:`LUA`): each connection sends its next request as soon as the previous
  answer arrives; the figure is the most requests/s the server manages, and its latency is
  mostly queueing (connections / requests-per-second);
- paced (:data:`LUA_PACED`, ``measure(..., rate=R)``): an offered rate of R requests/s on a
  fixed schedule, whatever the server does, each latency counted from the time its request was
  due, so an answer that holds back the next request on its connection is charged to the server
  (no coordinated omission). wrk has no such mode (wrk2 has, but is not packaged), so its Lua
  hooks do it: one connection per wrk thread (the hooks cannot tell the connections of a thread
  apart), each on its own schedule of one request every ``connections / R`` seconds, the
  connections staggered; ``delay()``, which wrk calls right after an answer has arrived, returns
  the wait until the next request is due, in wrk's whole milliseconds. Three histograms come
  back: latency from the due time less the generator's own lateness in sending (its millisecond
  timers, its threads waiting for a core), the service time from the actual send, and that
  lateness, reported so that a schedule burstier than asked for shows.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import shlex
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

PACED_GRACE_S = 1.0  # paced: wrk runs on this long after the schedule ends, for the last answers
HOST = "127.0.0.1"  # loopback only: nothing here ever loads another machine
FLUSH_WAIT_S = 1.2  # the service's workers move their counts into /metrics once a second
DEGRADED_MARK = b"redis unavailable"  # service/store/redis.py logs it when it starts degrading

# wrk's closing hook: prints the run's figures as one JSON line the scripts parse.
LUA_DONE = """\
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""

LUA = """\
-- Written by benchmarks/loadgen.py: each request takes a random path from the list in args[1].
local paths = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(tonumber(args[2]) * 1000 + thread_no)
end

function request()
  return wrk.format(nil, paths[math.random(#paths)])
end

""" + LUA_DONE

LUA_PACED = """\
-- Written by benchmarks/loadgen.py: requests on a fixed schedule (open loop) on wrk.
-- Run with as many threads as connections: one connection per thread, so that a thread's
-- delay() and request() calls belong to one connection. args: paths file, seed, microseconds
-- between two requests of a connection, connections, start of the measured window and its
-- length. Times in microseconds of CLOCK_MONOTONIC (Python's time.monotonic()).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local paths = {}
local threads = {}
local first, sent, ready
-- per thread, globals so that done() can read them: the schedule, histograms (upper bucket
-- edge in us -> count), counts, the due time of the next request and of the one in flight
interval, stop_at = nil, nil
lat, svc, late = {}, {}, {}
lat_max, svc_max, answered, scheduled = 0, 0, 0, 0
due_next, due = nil, nil

local function add(h, us)
  if us < 0 then us = 0 end
  local w = us < 10000 and 10 or (us < 100000 and 100 or 1000)
  local edge = math.floor(us / w) * w + w
  h[edge] = (h[edge] or 0) + 1
end

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_no", #threads)
end

-- Each thread reads its own slice of the paths (the threads are set up one after the other:
-- reading the whole list in each would delay the last ones), or the whole list if it is short.
local function read_slice(name, part, parts)
  local f = assert(io.open(name))
  local size = f:seek("end")
  local from, to = math.floor(size * (part - 1) / parts), math.floor(size * part / parts)
  if from > 0 then  -- skip to the first line that starts in the slice
    f:seek("set", from - 1)
    f:read("*l")
  else
    f:seek("set", 0)
  end
  while f:seek() < to do
    local line = f:read("*l")
    if line == nil then break end
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then
    f:seek("set", 0)
    for line in f:lines() do
      if #line > 0 then paths[#paths + 1] = line end
    end
  end
  f:close()
end

function init(args)
  local connections = tonumber(args[4])
  read_slice(args[1], thread_no, connections)
  math.randomseed(tonumber(args[2]) * 1000 + thread_no)
  interval = tonumber(args[3])
  first = tonumber(args[5]) + (thread_no - 1) * interval / connections
  stop_at = tonumber(args[5]) + tonumber(args[6])
end

-- wrk calls delay() before the connection's first request and right after each answer.
function delay()
  local now = now_us()
  if due ~= nil then
    -- sent later than due and later than the connection was free: the generator's lateness
    local lag = math.max(sent - math.max(due, ready), 0)
    local latency = now - math.min(sent, due) - lag
    add(lat, latency)
    add(svc, now - sent)
    add(late, lag)
    lat_max = math.max(lat_max, latency)
    svc_max = math.max(svc_max, now - sent)
    if now <= stop_at then answered = answered + 1 end
    due = nil
  end
  ready = now
  if due_next == nil then
    -- a thread that started after its first slots skips them: they are the generator's delay
    due_next = first + math.max(math.ceil((now - first) / interval), 0) * interval
    scheduled = math.max(math.ceil((stop_at - due_next) / interval), 0)
  end
  if due_next >= stop_at then return 600000 end  -- the window is over: send nothing more
  local wait = due_next - now
  if wait < 500 then return 0 end
  return math.floor(wait / 1000 + 0.5)  -- wrk's timers count whole milliseconds
end

function request()
  -- wrk calls it once before the run to check the request (no schedule yet): not counted
  if due_next ~= nil then
    sent = now_us()
    due = due_next
    due_next = due_next + interval
  end
  return wrk.format(nil, paths[math.random(#paths)])
end

local function encode(h)
  local parts = {}
  for edge, count in pairs(h) do parts[#parts + 1] = string.format('"%d": %d', edge, count) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local merged = {lat = {}, svc = {}, late = {}}
  local totals = {answered = 0, scheduled = 0, unfinished = 0}
  local lmax, smax = 0, 0
  local now = now_us()
  for _, t in ipairs(threads) do
    for name, h in pairs(merged) do
      for edge, count in pairs(t:get(name) or {}) do h[edge] = (h[edge] or 0) + count end
    end
    lmax = math.max(lmax, t:get("lat_max") or 0)
    smax = math.max(smax, t:get("svc_max") or 0)
    totals.answered = totals.answered + (t:get("answered") or 0)
    totals.scheduled = totals.scheduled + (t:get("scheduled") or 0)
    -- requests not answered by the end (in flight, or due and never sent because the
    -- connection was still waiting): counted at the least latency they can have
    local pending, stop, step = {t:get("due")}, t:get("stop_at"), t:get("interval")
    local nxt = t:get("due_next")
    while nxt ~= nil and nxt < stop do
      pending[#pending + 1] = nxt
      nxt = nxt + step
    end
    for _, d in ipairs(pending) do
      add(merged.lat, now - d)
      lmax = math.max(lmax, now - d)
      totals.unfinished = totals.unfinished + 1
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "answered": %d, "scheduled": %d, ' ..
    '"unfinished": %d, "lat_max_us": %d, "svc_max_us": %d, "lat": %s, "svc": %s, ' ..
    '"late": %s}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    totals.answered, totals.scheduled, totals.unfinished, lmax, smax, encode(merged.lat),
    encode(merged.svc), encode(merged.late)))
end
"""


@dataclass
class Measurement:
    endpoint: str
    server: str
    workers: int
    rps: float  # achieved: answers per second of the measured run
    p50_ms: float  # paced runs: from the time each request was due
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    degradations: int  # times the service logged that Redis failed and it answers degraded
    server_cpu_us: float  # CPU time of the server (all its processes) per request
    wrk_cpu_share: float  # CPU time / wall time (1.0 = one full core)
    redis_cpu_share: float
    other_cpu_share: float  # every other process, and the kernel outside them: the noise
    runs_rps: list[float] = field(default_factory=list)  # every run's req/s, with --repeat
    asked_rps: float | None = None  # paced runs: the rate asked for; None: closed loop
    offered_rps: float | None = None  # paced: the rate the schedule held (wrk threads up late
    # skip their first requests)
    service_p99_ms: float | None = None  # paced: p99 from the actual send (wrk's own view)
    late_p99_ms: float | None = None  # paced: p99 of the generator's own lateness in sending
    unfinished: int = 0  # paced: requests due in the window but not answered when wrk stopped
    runs_p99: list[float] = field(default_factory=list)  # paced: every run's p99, with --repeat
    near_cache_hits: float | None = None  # share of the run's profile reads answered by the
    # workers' near caches (None: the server reports none, e.g. the bare app or the cache off)

    @property
    def paced(self) -> bool:
        return self.asked_rps is not None

    @property
    def error_count(self) -> int:
        return self.non2xx + self.socket_errors + self.degradations + self.unfinished

    @property
    def errors(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.non2xx, "non-2xx"),
                                               (self.socket_errors, "socket"),
                                               (self.degradations, "Redis degraded"),
                                               (self.unfinished, "unanswered")) if n]
        return ", ".join(parts) or "0"


@dataclass
class Load:
    """How wrk drives a server: the same for every endpoint of a run. Paced runs
    (``measure(..., rate=...)``) use ``paced_lua`` (a file holding :data:`LUA_PACED`) with
    ``paced_connections`` connections, one wrk thread each."""

    lua: Path
    log_dir: Path
    connections: int = 32
    threads: int = 1
    duration_s: int = 15
    warmup_s: int = 3
    seed: int = 7
    idle_wait_s: float = 0.0
    paced_lua: Path | None = None
    paced_connections: int = 64
    wrk_cpus: frozenset[int] | None = None  # CPUs wrk may run on (None: any)


class Server:
    """A server subprocess (``python -m ...``) on a free loopback port, in its own process
    group so that it and its workers are ended together (and a Ctrl-C in the terminal reaches
    the benchmark, which stops them, not the servers themselves). A context manager: leaving
    the ``with`` block stops it, whatever happened."""

    def __init__(self, module_args: list[str], *, python: str, cwd: Path, env: dict[str, str],
                 log_path: Path, cpus: frozenset[int] | None = None):
        """``cpus``: the CPUs the server and the workers it starts may run on (None: any)."""
        self.port = free_port()
        self.log_path = log_path
        with log_path.open("w") as fh:
            self.proc = subprocess.Popen(
                [python, *module_args, "--host", HOST, "--port", str(self.port)], cwd=cwd,
                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=pinned(cpus))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if get(self.port, "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM to the server (it stops its workers), SIGKILL to its group if it lingers,
        or if the wait for it is interrupted."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if _pids(lambda fields, comm: int(fields[2]) == self.pgid):
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_count(self, mark: bytes, since: int) -> int:
        with self.log_path.open("rb") as fh:
            fh.seek(since)
            return fh.read().count(mark)

    def tail(self, lines: int = 25) -> str:
        return tail(self.log_path, lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def probe(port: int, paths_file: Path, count: int,
          fields: tuple[str, ...] = ("source",)) -> str:
    """Fetch the first ``count`` paths of a mix once; summarise statuses, the answers' values of
    ``fields`` (``source``, ``audience``, ``basis``...) and how many said ``degraded``."""
    statuses: Counter[int] = Counter()
    values: dict[str, Counter[str]] = {name: Counter() for name in fields}
    degraded = 0
    lines = paths_file.read_text().split()[:count]
    for path in lines:
        status, body = get(port, path)
        statuses[status] += 1
        if status == 200:
            answer = json.loads(body)
            for name in fields:
                values[name][str(answer.get(name))] += 1
            degraded += bool(answer.get("degraded"))
    status_text = ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
    value_text = "; ".join(f"{name} " + ", ".join(f"{v} {c}" for v, c in counts.most_common())
                           for name, counts in values.items())
    return f"{len(lines)} probes; status {status_text}; {value_text}; degraded {degraded}"


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- CPU accounting (Linux /proc) --------------------------------------------------------------
def _pids(match: Callable[[list[str], str], bool]) -> list[int]:
    """Live processes whose /proc/<pid>/stat fields (after the command) and command match."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            fields = rest.split()
            if fields[0] != "Z" and match(fields, head.split("(", 1)[1]):
                found.append(int(entry.name))
    return found


def _cpu_s(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def cpu_snapshot(server_pgid: int) -> dict[str, float]:
    """CPU seconds so far: the server's process group, redis-server on this machine (a
    redis-server that exits meanwhile takes its seconds along: clamp the difference), this
    process's finished children (wrk) and the whole machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "server": _cpu_s(_pids(lambda fields, comm: int(fields[2]) == server_pgid)),
        "redis": _cpu_s(_pids(lambda fields, comm: comm == "redis-server")),
        "wrk": children.ru_utime + children.ru_stime,
        "machine": _machine_busy_s(),
    }


def wait_for_quiet(limit_s: float, log: Callable[[str], None], busy_cores: float = 0.3) -> None:
    """On a shared machine: wait (at most ``limit_s``) until the other processes use less than
    ``busy_cores`` of CPU over a second, so they do not take the cores from the server."""
    deadline = time.monotonic() + limit_s
    while True:
        before = _machine_busy_s()
        time.sleep(1.0)
        busy = _machine_busy_s() - before
        if busy < busy_cores:
            return
        if time.monotonic() >= deadline:
            log(f"machine still busy ({busy:.1f} cores used by others): measuring anyway")
            return


def pinned(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps a child process (and what it starts) on ``cpus``."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# -- wrk ---------------------------------------------------------------------------------------
def run_wrk(load: Load, port: int, paths_file: Path, seconds: int, tag: str,
            rate: float | None = None) -> dict:
    """One wrk run, closed loop or paced at ``rate`` requests/s; returns the figures its Lua
    ``done`` printed."""
    if rate is None:
        threads, connections, script, extra = load.threads, load.connections, load.lua, []
        wrk_seconds = seconds
    else:
        if load.paced_lua is None:
            raise ValueError("a paced run needs Load.paced_lua (a file holding LUA_PACED)")
        threads = connections = load.paced_connections
        # wrk starts its threads one after the other, each reading the paths: the schedule
        # starts once all are up, and ends PACED_GRACE_S before wrk does, for the last answers
        start_us = (time.monotonic() + paced_start_s(connections)) * 1e6
        extra = [f"{connections / rate * 1e6:.3f}", str(connections), f"{start_us:.0f}",
                 f"{seconds * 1e6:.0f}"]
        script = load.paced_lua
        wrk_seconds = paced_wrk_seconds(seconds, connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{wrk_seconds}s",
           "--latency", "--timeout", "2s", "-s", str(script), f"http://{HOST}:{port}/",
           "--", str(paths_file), str(load.seed), *extra]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          timeout=wrk_seconds + 60, preexec_fn=pinned(load.wrk_cpus))
    (load.log_dir / f"wrk-{tag}.txt").write_text(shlex.join(cmd) + "\n" + done.stdout
                                                 + done.stderr)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")


def paced_start_s(connections: int) -> float:
    """Seconds from starting wrk to the start of the paced schedule: wrk sets up its threads
    one after the other (a Lua state each, reading its slice of the paths), a few ms each on
    a busy machine; a thread that is not up in time skips its first requests (``scheduled``
    falls short of the rate, and the run says so)."""
    return 0.5 + 0.02 * connections


def paced_wrk_seconds(seconds: float, connections: int) -> int:
    """How long wrk runs for a paced window of ``seconds``: start-up, window, grace."""
    return math.ceil(paced_start_s(connections) + seconds + PACED_GRACE_S)


def percentile_ms(histogram: dict[str, int], q: float) -> float:
    """The ``q``-th percentile of a LUA_PACED histogram (upper bucket edge in us -> count), in
    milliseconds. The upper edge: never below the true value, above it by at most 10 us under
    10 ms (1% above)."""
    buckets = sorted((int(edge), count) for edge, count in histogram.items())
    rank, seen = q / 100 * sum(count for _, count in buckets), 0
    for edge, count in buckets:
        seen += count
        if seen >= rank:
            return edge / 1000
    return 0.0


def measure(load: Load, server: Server, paths_file: Path, *, endpoint: str, server_name: str,
            workers: int, tag: str, log: Callable[[str], None],
            rate: float | None = None) -> Measurement:
    """A warm-up, then one measured wrk run: closed loop, or paced at ``rate`` requests/s (the
    warm-up at the same rate). Also counts the service's Redis degradation warnings in its log:
    a degraded answer is a fast 200 that would flatter the figures."""
    if load.idle_wait_s > 0:
        wait_for_quiet(load.idle_wait_s, log)
    if load.warmup_s > 0:
        run_wrk(load, server.port, paths_file, load.warmup_s, tag + "-warmup", rate)
    log_offset = server.log_size()
    cache_before = near_cache_reads(server.port)
    before = cpu_snapshot(server.pgid)
    raw = run_wrk(load, server.port, paths_file, load.duration_s, tag, rate)
    cpu = {k: v - before[k] for k, v in cpu_snapshot(server.pgid).items()}
    cache_after = near_cache_reads(server.port)
    hits = misses = 0
    if cache_before is not None and cache_after is not None:
        hits, misses = (a - b for a, b in zip(cache_after, cache_before))
    seconds = raw["duration_us"] / 1e6
    others = cpu["machine"] - cpu["server"] - cpu["wrk"] - cpu["redis"]
    if rate is None:
        rps = raw["requests"] / seconds
        latency = {"p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000,
                   "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000}
    else:
        rps = raw["answered"] / load.duration_s  # answers within the paced window
        if raw["scheduled"] < 0.99 * rate * load.duration_s:
            log(f"warning: wrk's threads started late and skipped requests: "
                f"{raw['scheduled']:,} offered, {rate * load.duration_s:,.0f} asked")
        due = raw["lat"]
        latency = {"p50_ms": percentile_ms(due, 50), "p90_ms": percentile_ms(due, 90),
                   "p99_ms": percentile_ms(due, 99), "max_ms": raw["lat_max_us"] / 1000,
                   "asked_rps": rate, "offered_rps": raw["scheduled"] / load.duration_s,
                   "unfinished": raw["unfinished"],
                   "service_p99_ms": percentile_ms(raw["svc"], 99),
                   "late_p99_ms": percentile_ms(raw["late"], 99)}
    return Measurement(
        endpoint=endpoint, server=server_name, workers=workers, rps=rps,
        non2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        degradations=server.log_count(DEGRADED_MARK, log_offset),
        server_cpu_us=cpu["server"] / max(raw["requests"], 1) * 1e6,
        wrk_cpu_share=cpu["wrk"] / seconds, redis_cpu_share=max(cpu["redis"], 0.0) / seconds,
        other_cpu_share=max(others, 0.0) / seconds,
        near_cache_hits=hits / (hits + misses) if hits + misses else None, **latency)


def near_cache_reads(port: int) -> tuple[float, float] | None:
    """(hits, misses) of the service's near caches so far, summed over workers, from its
    ``/metrics``; ``None`` when it reports no such counter. Waits out the workers' one-second
    flush first, so the counts are those of the requests answered before the call."""
    time.sleep(FLUSH_WAIT_S)
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    except OSError:
        return None
    finally:
        conn.close()
    if response.status != 200:
        return None
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name == "reco_profile_cache_reads":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels.get("result")] = sample.value
    return (counts.get("hit", 0.0), counts.get("miss", 0.0)) if counts else None
