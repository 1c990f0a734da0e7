"""A throw-away local Redis Cluster of 3 masters, started from ``redis-server`` processes.

For tests (``redis_cluster_url`` fixture in ``conftest.py``) and for trying the service on a
cluster by hand::

    python -m tests.redis_cluster          # prints the URL; Ctrl-C stops and cleans up

Each node runs in its own directory under a temporary one, bound to 127.0.0.1 on a free port
(client port and cluster bus port both chosen free), with persistence off. ``redis-cli --cluster
create`` assigns the 16384 slots; :meth:`LocalCluster.start` returns once every node reports
``cluster_state:ok`` and knows every other node. Needs Redis >= 7 (``--cluster-port``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

CLUSTER_SCHEME = "redis+cluster"


class ClusterUnavailable(RuntimeError):
    """``redis-server``/``redis-cli`` are missing or the cluster did not form."""


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _info(port: int) -> dict[str, str]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return {str(k): str(v) for k, v in client.cluster("INFO").items()}
    finally:
        client.close()


class LocalCluster:
    """Three cluster-enabled ``redis-server`` masters on loopback, no replicas."""

    def __init__(self, root: Path | None = None, masters: int = 3):
        self.server = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        if self.server is None or self.cli is None:
            raise ClusterUnavailable("redis-server and redis-cli are needed to start a cluster "
                                     "(Debian/Ubuntu: apt-get install redis-server)")
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="redis-cluster-")) if root is None else root
        self.masters = masters
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        """The service's URL for this cluster: any node serves as the seed."""
        return f"{CLUSTER_SCHEME}://127.0.0.1:{self.ports[0]}"

    def start(self, timeout_s: float = 30.0) -> str:
        ports = _free_ports(2 * self.masters)
        self.ports, bus_ports = ports[:self.masters], ports[self.masters:]
        try:
            for port, bus in zip(self.ports, bus_ports):
                workdir = self.root / str(port)
                workdir.mkdir(parents=True, exist_ok=True)
                self.procs.append(subprocess.Popen(
                    [self.server, "--port", str(port), "--cluster-port", str(bus),
                     "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
                     "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + timeout_s
            for port in self.ports:
                self._wait(lambda p=port: _info(p) is not None, deadline, f"node {port} to start")
            created = subprocess.run(
                [self.cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout_s)
            if created.returncode != 0:
                raise ClusterUnavailable(f"redis-cli --cluster create failed: "
                                         f"{created.stdout[-2000:]}{created.stderr[-2000:]}")
            for port in self.ports:
                self._wait(lambda p=port: self._node_ready(p), deadline, f"node {port} to join")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _node_ready(self, port: int) -> bool:
        info = _info(port)
        return (info.get("cluster_state") == "ok"
                and info.get("cluster_slots_ok") == "16384"
                and info.get("cluster_known_nodes") == str(self.masters))

    def _wait(self, ready, deadline: float, what: str) -> None:
        while True:
            exited = [p.args[2] for p in self.procs if p.poll() is not None]
            if exited:
                raise ClusterUnavailable(f"redis-server on port(s) {', '.join(exited)} exited; "
                                         f"see the logs under {self.root}")
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"timed out waiting for {what}")
            time.sleep(0.05)

    def kill_node(self, index: int) -> None:
        """Stop one master abruptly (SIGKILL), as a crash would; its slots become unreachable."""
        self.procs[index].kill()
        self.procs[index].wait()

    def restart_node(self, index: int, timeout_s: float = 30.0) -> None:
        """Start a stopped master again from its ``nodes.conf``: it rejoins with the same slots
        (and no data: persistence is off). Returns once every node reports the cluster ok."""
        self.procs[index] = subprocess.Popen(self.procs[index].args, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            self._wait(lambda p=port: self._node_ready(p), deadline, f"node {port} to rejoin")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def master_clients(url: str) -> list[redis.Redis]:
    """One plain client per master of the cluster at ``url`` (to look at each node directly)."""
    scheme, _, rest = url.partition("://")
    seed = RedisCluster.from_url(f"{scheme.removesuffix('+cluster')}://{rest}")
    try:
        return [redis.Redis(host=n.host, port=n.port) for n in seed.get_primaries()]
    finally:
        seed.close()


def keys_on_nodes(url: str, pattern: str) -> dict[str, list[str]]:
    """Keys matching ``pattern`` on each master (``host:port`` -> keys), by SCAN on every node."""
    found: dict[str, list[str]] = {}
    for client in master_clients(url):
        with client:
            node = f"{client.connection_pool.connection_kwargs['host']}:" \
                   f"{client.connection_pool.connection_kwargs['port']}"
            found[node] = sorted(k.decode() for k in client.scan_iter(match=pattern, count=1000))
    return found


def delete_prefix_on_nodes(url: str, prefix: str) -> int:
    """Delete every ``<prefix>:*`` key on every master; returns how many were deleted."""
    deleted = 0
    for client in master_clients(url):
        with client:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                deleted += client.delete(key)  # one by one: a node's keys span many slots
    return deleted


if __name__ == "__main__":
    with LocalCluster() as cluster:
        print(f"Redis Cluster of {cluster.masters} masters on ports "
              f"{', '.join(map(str, cluster.ports))} (data under {cluster.root})")
        print(f"RECO_REDIS_URL={cluster.url}", flush=True)
        try:
            while all(p.poll() is None for p in cluster.procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
