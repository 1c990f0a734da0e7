"""Drive one server on loopback with wrk, and account for where the CPU went meanwhile.

Used by ``benchmarks/load.py``: a :class:`Server` subprocess, :func:`probe` to look at real
answers once, and :func:`measure` for one warmed-up, timed wrk run that returns a
:class:`Measurement` (throughput, latency percentiles, errors, CPU per request and the CPU other
processes took: on a shared 2-core machine that is the noise to report next to the figure).
"""

from __future__ import annotations

import http.client
import json
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

HOST = "127.0.0.1"  # loopback only: nothing here ever loads another machine
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


@dataclass
class Measurement:
    endpoint: str
    server: str
    workers: int
    rps: float
    p50_ms: float
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

    @property
    def errors(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.non2xx, "non-2xx"),
                                               (self.socket_errors, "socket"),
                                               (self.degradations, "Redis degraded")) if n]
        return ", ".join(parts) or "0"


@dataclass
class Load:
    """How wrk drives a server: the same for every endpoint of a run."""

    lua: Path
    log_dir: Path
    connections: int = 32
    threads: int = 1
    duration_s: int = 15
    warmup_s: int = 3
    seed: int = 7
    idle_wait_s: float = 0.0


class Server:
    """A server subprocess (``python -m ...``) on a free loopback port, in its own process
    group so that it and its workers are ended together."""

    def __init__(self, module_args: list[str], *, python: str, cwd: Path, env: dict[str, str],
                 log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        with log_path.open("w") as fh:
            self.proc = subprocess.Popen(
                [python, *module_args, "--host", HOST, "--port", str(self.port)], cwd=cwd,
                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

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
        """SIGTERM to the server (it stops its workers), SIGKILL to its group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
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


def probe(port: int, paths_file: Path, count: int) -> str:
    """Fetch the first ``count`` paths of a mix once; summarise statuses and answer sources."""
    statuses: Counter[int] = Counter()
    sources: Counter[str] = Counter()
    degraded = 0
    lines = paths_file.read_text().split()[:count]
    for path in lines:
        status, body = get(port, path)
        statuses[status] += 1
        if status == 200:
            answer = json.loads(body)
            sources[answer["source"]] += 1
            degraded += bool(answer.get("degraded"))
    status_text = ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
    source_text = ", ".join(f"{s} {c}" for s, c in sources.most_common())
    return f"{len(lines)} probes; status {status_text}; source {source_text}; degraded {degraded}"


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
    """CPU seconds so far: the server's process group, redis-server on this machine, this
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


# -- wrk ---------------------------------------------------------------------------------------
def run_wrk(load: Load, port: int, paths_file: Path, seconds: int, tag: str) -> dict:
    """One wrk run; returns the figures its Lua ``done`` printed."""
    cmd = ["wrk", "-t", str(load.threads), "-c", str(load.connections), "-d", f"{seconds}s",
           "--latency", "--timeout", "2s", "-s", str(load.lua), f"http://{HOST}:{port}/",
           "--", str(paths_file), str(load.seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    (load.log_dir / f"wrk-{tag}.txt").write_text(shlex.join(cmd) + "\n" + done.stdout
                                                 + done.stderr)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")


def measure(load: Load, server: Server, paths_file: Path, *, endpoint: str, server_name: str,
            workers: int, tag: str, log: Callable[[str], None]) -> Measurement:
    """A warm-up, then one measured wrk run. Also counts the service's Redis degradation
    warnings in its log: a degraded answer is a fast 200 that would flatter the figures."""
    if load.idle_wait_s > 0:
        wait_for_quiet(load.idle_wait_s, log)
    if load.warmup_s > 0:
        run_wrk(load, server.port, paths_file, load.warmup_s, tag + "-warmup")
    log_offset = server.log_size()
    before = cpu_snapshot(server.pgid)
    raw = run_wrk(load, server.port, paths_file, load.duration_s, tag)
    cpu = {k: v - before[k] for k, v in cpu_snapshot(server.pgid).items()}
    seconds = raw["duration_us"] / 1e6
    others = cpu["machine"] - cpu["server"] - cpu["wrk"] - cpu["redis"]
    return Measurement(
        endpoint=endpoint, server=server_name, workers=workers, rps=raw["requests"] / seconds,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000, non2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        degradations=server.log_count(DEGRADED_MARK, log_offset),
        server_cpu_us=cpu["server"] / max(raw["requests"], 1) * 1e6,
        wrk_cpu_share=cpu["wrk"] / seconds, redis_cpu_share=cpu["redis"] / seconds,
        other_cpu_share=max(others, 0.0) / seconds)
