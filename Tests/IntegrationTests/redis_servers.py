"""Redis for the tests: one ``redis-server`` (``RedisServer``) or a Redis Cluster (``RedisCluster``), each
on free loopback ports, its files in a directory of the test's own."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` on 127.0.0.1:<free port>, its files in ``workdir``. ``args`` are extra
    configuration directives (``["--appendonly", "yes"]``)."""

    def __init__(self, workdir: Path, args: list[str] | None = None, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.chose_port = port is None
        self.args = list(args or [])
        self.proc: subprocess.Popen | None = None
        self.started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def bus_port(self) -> int | None:
        """The cluster bus port (``--cluster-port``), if any."""
        if "--cluster-port" in self.args:
            return int(self.args[self.args.index("--cluster-port") + 1])
        return None

    def start(self, timeout: float = 10.0, attempts: int = 5) -> "RedisServer":
        """Starts the server. A free port is only free until something binds it (any outgoing
        connection may take it as its local port): before the first successful start, a port this
        object chose that is taken by then is replaced by another, with the cluster bus port."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError:
                log = self.workdir / f"redis-{self.port}.log"
                taken = log.exists() and "Address already in use" in log.read_text(errors="replace")
                if self.started or not self.chose_port or not taken or attempt == attempts - 1:
                    raise
                old = self.port
                self.port = free_port()
                self.args = [f"nodes-{self.port}.conf" if arg == f"nodes-{old}.conf" else arg for arg in self.args]
                if self.bus_port is not None:
                    self.args[self.args.index("--cluster-port") + 1] = str(free_port())
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> "RedisServer":
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
               "--save", "", "--appendonly", "no", "--protected-mode", "no",
               "--logfile", str(self.workdir / f"redis-{self.port}.log")] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=str(self.workdir))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {' '.join(cmd)}")
            # A server with --requirepass answers PING with -NOAUTH: it is up all the same.
            if (self.command("PING") or b"").startswith((b"+PONG", b"-NOAUTH")):
                self.started = True
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server not answering after {timeout}s: {' '.join(cmd)}")

    def command(self, *args: str, timeout: float = 2.0) -> bytes | None:
        """Sends one command (RESP) and returns the raw first reply chunk, or None."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(payload)
                return sock.recv(1 << 20)
        except OSError:
            return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)


class RedisCluster:
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each, every node a
    ``RedisServer`` (``--cluster-enabled yes``, ``--cluster-node-timeout`` ``node_timeout_ms``) on a free
    loopback port, created with ``redis-cli --cluster create``. ``url`` names every node (the seeds).
    ``full_coverage`` is ``cluster-require-full-coverage``: off by default, as the README recommends
    (a primary's failover then stops only its own slots)."""

    def __init__(self, workdir: Path, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000,
                 args: list[str] | None = None, full_coverage: bool = False):
        self.workdir = Path(workdir)
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []
        count = primaries * (1 + replicas)
        for index in range(count):
            node = RedisServer(self.workdir / f"node{index}")
            node.args = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{node.port}.conf",
                         "--cluster-node-timeout", str(node_timeout_ms),
                         # The bus on a free port of its own: the default, port + 10000, may be taken.
                         "--cluster-port", str(free_port()),
                         # A replica syncs at once (the default waits 5 s for other replicas to join).
                         "--repl-diskless-sync-delay", "0",
                         "--cluster-require-full-coverage", "yes" if full_coverage else "no"] + list(args or [])
            self.nodes.append(node)
        self.created = False

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> "RedisCluster":
        for node in self.nodes:
            if not node.alive():
                node.start()
        if not self.created and self.replicas == 0:
            # Without replicas, by hand: each primary takes its share of the slots and meets the
            # others (redis-cli --cluster create waits a whole second for the join).
            share = 16384 // self.primaries
            for index, node in enumerate(self.nodes):
                last = 16383 if index == self.primaries - 1 else (index + 1) * share - 1
                node.command("CLUSTER", "ADDSLOTSRANGE", str(index * share), str(last))
                for other in self.nodes:
                    if other is not node:
                        node.command("CLUSTER", "MEET", "127.0.0.1", str(other.port), str(other.bus_port))
            self.created = True
        if not self.created:
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas",
                            str(self.replicas), "--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT, timeout=timeout)
            self.created = True
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and knows the same primaries, and every live
        replica has synced with its primary (a replica that never synced cannot take over) and is
        streaming from it (``replicas_streaming``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [node for node in self.nodes if node.alive()]
            states = [node.command("CLUSTER", "INFO") or b"" for node in live]
            if all(b"cluster_state:ok" in state for state in states):
                views = {tuple(sorted(self.primary_ports(node))) for node in live}
                replication = [self.cli("INFO", "replication", node=node) for node in live]
                synced = all("master_link_status:up" in text for text in replication if "role:slave" in text)
                if len(views) == 1 and synced and self.replicas_streaming(deadline):
                    return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok with its replicas synced")

    def replicas_streaming(self, deadline: float) -> bool:
        """Until every replica a live primary lists has acknowledged the primary's replication offset
        of the moment this started. A replica that has just loaded a full sync sent without disk says
        ``master_link_status:up`` at once, but Redis 7.0 streams it the writes made since the sync
        began only after its first acknowledgement (``REPLCONF ACK``, once a second): a failover
        before that loses them."""
        def fields(node: RedisServer) -> dict[str, str]:
            text = self.cli("INFO", "replication", node=node)
            return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

        first = {node.port: fields(node) for node in self.nodes if node.alive()}
        primaries = [node for node in self.nodes if first.get(node.port, {}).get("role") == "master"]
        targets = {node.port: int(first[node.port].get("master_repl_offset", "0")) for node in primaries}
        while time.monotonic() < deadline:
            behind = []
            for node in primaries:
                for key, value in fields(node).items():
                    if key.startswith("slave") and key[5:].isdigit():
                        offset = int(dict(part.split("=", 1) for part in value.split(",")).get("offset", "0"))
                        if offset < targets[node.port]:
                            behind.append(key)
            if not behind:
                return True
            time.sleep(0.05)
        return False

    def cli(self, *args: str, node: "RedisServer | None" = None, timeout: float = 10.0) -> str:
        """``redis-cli`` against ``node`` (default: the first live one); its output as text."""
        node = node or next(n for n in self.nodes if n.alive())
        out = subprocess.run(["redis-cli", "-p", str(node.port), *args], capture_output=True, text=True,
                             timeout=timeout)
        return out.stdout

    def primary_ports(self, node: "RedisServer | None" = None) -> list[int]:
        """The ports of the primaries serving slots, as ``node`` sees them."""
        ports = set()
        for line in self.cli("CLUSTER", "NODES", node=node).splitlines():
            fields = line.split()
            if len(fields) >= 9 and "master" in fields[2] and "fail" not in fields[2]:
                ports.add(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(ports)

    def replica_ports(self, primary: RedisServer) -> list[int]:
        """The ports of ``primary``'s replicas."""
        nodes = [line.split() for line in self.cli("CLUSTER", "NODES", node=primary).splitlines()]
        me = next(fields[0] for fields in nodes if "myself" in fields[2])
        return [int(fields[1].split("@")[0].rsplit(":", 1)[1]) for fields in nodes
                if "slave" in fields[2] and fields[3] == me]

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def command(self, *args: str, timeout: float = 2.0) -> bytes | None:
        """A command without keys, sent to the first live node."""
        return next(n for n in self.nodes if n.alive()).command(*args, timeout=timeout)

    def keys_per_primary(self) -> dict[int, int]:
        """How many keys each primary holds (``DBSIZE``)."""
        return {port: int(self.cli("DBSIZE", node=self.node(port)).strip()) for port in self.primary_ports()}

    def alive(self) -> bool:
        return all(node.alive() for node in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
