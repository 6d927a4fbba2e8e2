"""Black-box integration tests for sessiond: fixtures and helpers.

Every test module gets its own real sessiond process (module-scoped ``server`` fixture), started on a
free loopback port with an API token file in a temporary directory, its stderr captured to a file so
that tests can assert on the log. Tests that need special flags start their own server through the
``make_server`` factory (stopped at the end of the test).

The process runs with its workdir as cwd, so sessiond's default SQLite storage (``--data-dir ./data``)
lands in ``workdir/data`` (``Server.data_dir``). ``Server.start()`` waits for ``/readyz`` 200 (storage
replayed); ``start(wait_ready=False)`` only for ``/healthz``. ``stop()`` (SIGTERM) or ``kill9()`` and
then ``start()`` again restarts the same server: same port, same data directory, a new log file.

The binary comes from ``$SESSIOND_BIN`` (default ``<repo>/.build/debug/sessiond``).

The suite is written against the behaviour of the session backend, not one implementation of it:
``$SESSIOND_TEST_STORAGE`` (default ``sqlite``) is the ``--storage`` every server gets unless a test
passes its own. Tests that need a particular backend (restarts that keep sessions, the SQLite file)
are marked ``@pytest.mark.storage("sqlite")`` and skipped under another one. With ``redis``, every
server gets its own ``redis-server`` (``RedisServer``) on a free loopback port, kept across the
server's restarts and stopped with it. With ``$SESSIOND_TEST_REDIS=cluster`` as well, that Redis is a
Redis Cluster of three primaries (``RedisCluster``) instead, and modules that test one Redis server
(``@pytest.mark.redis_topology("standalone")``) are skipped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OPENAPI_PATH = REPO / "openapi.yaml"


STORAGE = os.environ.get("SESSIOND_TEST_STORAGE", "sqlite")
REDIS_TOPOLOGY = os.environ.get("SESSIOND_TEST_REDIS", "standalone")


def pytest_configure(config):
    config.addinivalue_line("markers", "storage(name): the test needs this --storage backend")
    config.addinivalue_line("markers", "redis_topology(name): the test needs this $SESSIOND_TEST_REDIS")


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("storage")
    if marker is not None and marker.args[0] != STORAGE:
        pytest.skip(f"needs --storage {marker.args[0]} (this run: {STORAGE})")
    topology = item.get_closest_marker("redis_topology")
    if topology is not None and topology.args[0] != REDIS_TOPOLOGY:
        pytest.skip(f"needs SESSIOND_TEST_REDIS={topology.args[0]} (this run: {REDIS_TOPOLOGY})")


def sessiond_bin() -> str:
    """$SESSIOND_BIN, else this checkout's debug build (never another checkout's binary)."""
    return os.environ.get("SESSIOND_BIN") or str(REPO / ".build" / "debug" / "sessiond")


TOKEN_RE = re.compile(r"usm_[A-Za-z0-9_-]{43}")
TOKEN_FULL_RE = re.compile(r"^usm_[A-Za-z0-9_-]{43}$")


def unknown_token() -> str:
    """A well-formed token that no session has. Its first two bytes are 0: a partitioned store
    (Redis) reads its partition from them (docs/api.md), and partition 0 exists in every store."""
    return "usm_AAA" + secrets.token_urlsafe(30)[:40]
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ERROR_CT = "application/json;charset=utf-8"
HTTP_TIMEOUT = 10


# --------------------------------------------------------------------------------------------------
# OpenAPI document and schema validation
# --------------------------------------------------------------------------------------------------

with open(OPENAPI_PATH, "r", encoding="utf-8") as _f:
    SPEC: dict = yaml.safe_load(_f)


def _deref(node: Any, root: dict, depth: int = 0) -> Any:
    """Inline every local ``$ref`` (the document has no recursive schemas)."""
    if depth > 50:
        raise RecursionError("$ref nesting too deep")
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"non-local $ref {ref}"
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _deref(copy.deepcopy(target), root, depth + 1)
        return {k: _deref(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, root, depth + 1) for v in node]
    return node


RESOLVED: dict = _deref(SPEC, SPEC)


def _created_session_schema_is_satisfiable() -> bool:
    sample = {"id": "A" * 22, "username": "u", "createdAt": "2025-01-01T00:00:00.000Z",
              "lastSeenAt": "2025-01-01T00:00:00.000Z", "idleExpiresAt": "2025-01-01T00:00:00.000Z",
              "expiresAt": "2025-01-01T00:00:00.000Z", "idleTimeout": 2, "token": "usm_" + "a" * 43}
    v = OAS30Validator(RESOLVED["components"]["schemas"]["CreatedSession"], format_checker=oas30_format_checker)
    return v.is_valid(sample)


# True when openapi.yaml's CreatedSession can be validated as written (see validate_response).
STRICT_CREATED_SESSION: bool = _created_session_schema_is_satisfiable()


def schema(name: str) -> dict:
    return RESOLVED["components"]["schemas"][name]


def validate_schema(instance: Any, sch: dict, what: str = "") -> None:
    validator = OAS30Validator(sch, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{what} does not match its schema: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
    ) + f"\ninstance: {json.dumps(instance)[:2000]}"


def _match_template(template: str, path: str) -> bool:
    regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
    return re.match(regex, path) is not None


def operation_for(method: str, path: str) -> tuple[str, dict]:
    path = urllib.parse.urlsplit(path).path
    for template, item in RESOLVED["paths"].items():
        if _match_template(template, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"no operation {method} {path} in openapi.yaml")


def validate_response(resp: requests.Response, status: int | None = None) -> Any:
    """Assert that ``resp`` is a documented response of its operation and matches its schema.

    Returns the decoded JSON body (or None for bodiless responses).
    """
    method = resp.request.method
    path = resp.request.path_url
    if status is not None:
        assert resp.status_code == status, describe(resp, f"expected status {status}")
    template, op = operation_for(method, path)
    responses = op["responses"]
    key = str(resp.status_code)
    assert key in responses, describe(
        resp, f"status {key} is not documented for {method} {template} (documented: {sorted(responses)})"
    )
    documented = responses[key]
    content = documented.get("content")
    if not content:
        assert resp.content == b"", describe(resp, "expected an empty body")
        return None
    ctype = resp.headers.get("Content-Type", "")
    media = ctype.split(";")[0].strip().lower()
    assert media in content, describe(resp, f"Content-Type {ctype!r} not documented ({sorted(content)})")
    if media != "application/json":
        return resp.content
    body = json_body(resp)
    sch = content[media]["schema"]
    if sch == schema("CreatedSession") and STRICT_CREATED_SESSION is False:
        # openapi.yaml defect: CreatedSession = allOf[Session, {token}] but Session has
        # additionalProperties: false, so no object with a token can match. Until the document is fixed,
        # validate the token part and the Session part separately (test_api.py::
        # test_openapi_created_session_schema_admits_a_token fails meanwhile, to keep the defect visible).
        assert isinstance(body, dict), describe(resp, "not an object")
        token_part, session_part = sch["allOf"][1], sch["allOf"][0]
        validate_schema({"token": body.get("token")}, token_part, f"{method} {template} -> {key} token")
        validate_schema({k: v for k, v in body.items() if k != "token"}, session_part,
                        f"{method} {template} -> {key} body")
    else:
        validate_schema(body, sch, f"{method} {template} -> {key} body")
    if resp.status_code < 300:
        assert "no-store" in resp.headers.get("Cache-Control", ""), describe(
            resp, "successful JSON response without Cache-Control: no-store"
        )
    return body


def json_body(resp: requests.Response) -> Any:
    try:
        return json.loads(resp.content.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(describe(resp, f"body is not JSON ({exc})")) from exc


def describe(resp: requests.Response, msg: str = "") -> str:
    req = resp.request
    body = req.body
    if isinstance(body, bytes) and len(body) > 300:
        body = body[:300] + b"..."
    elif isinstance(body, str) and len(body) > 300:
        body = body[:300] + "..."
    return (
        f"{msg}\n  request: {req.method} {req.path_url} body={body!r}"
        f"\n  response: {resp.status_code} {dict(resp.headers)} {resp.content[:600]!r}"
    )


def assert_error(resp: requests.Response, status: int, code: str | Iterable[str]) -> dict:
    """Assert an error response: status, Content-Type, the Error schema, and the exact code."""
    codes = {code} if isinstance(code, str) else set(code)
    assert resp.status_code == status, describe(resp, f"expected {status} {sorted(codes)}")
    ctype = resp.headers.get("Content-Type", "").replace(" ", "").lower()
    assert ctype == ERROR_CT, describe(resp, f"error Content-Type should be 'application/json; charset=utf-8'")
    body = json_body(resp)
    validate_schema(body, schema("Error"), "error body")
    assert body["error"]["code"] in codes, describe(resp, f"expected code in {sorted(codes)}")
    assert body["error"]["message"], describe(resp, "empty error message")
    if status == 401 and body["error"]["code"] == "api_token_missing":
        assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), describe(
            resp, "401 api_token_missing without WWW-Authenticate: Bearer"
        )
    if status == 405:
        assert resp.headers.get("Allow"), describe(resp, "405 without Allow header")
    return body


def assert_time(value: str, what: str = "timestamp") -> None:
    assert isinstance(value, str) and TIME_RE.match(value), f"{what} {value!r} is not RFC 3339 UTC with ms"


def parse_time(value: str) -> float:
    """RFC 3339 'YYYY-MM-DDTHH:MM:SS.mmmZ' -> epoch seconds (float)."""
    assert_time(value)
    import datetime as _dt

    dt = _dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


# --------------------------------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------------------------------


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


class Server:
    """One sessiond process on 127.0.0.1:<free port>."""

    def __init__(self, workdir: Path, args: list[str] | None = None, env: dict | None = None,
                 api_token: str | None | bool = True, token_via_env: bool = False, name: str = "sessiond",
                 data_dir: Path | str | None = None, port: int | None = None):
        """``workdir`` is also the process's cwd, so sessiond's default ``--data-dir ./data`` lands in
        ``workdir/data``. ``data_dir`` passes ``--data-dir`` explicitly. ``port`` fixes the port (default:
        a free one, kept across restarts)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_args = list(args or [])
        self.extra_env = dict(env or {})
        self._data_dir = Path(data_dir) if data_dir is not None else None
        if api_token is True:
            api_token = "it-" + secrets.token_urlsafe(32)
        self.api_token: str | None = api_token or None
        self.token_file: Path | None = None
        self.token_via_env = token_via_env
        self.runs = 0  # how many times start() launched the process (restarts get their own log files)
        self.stderr_path = self.workdir / f"{name}-{self.port}.stderr.log"
        self.stdout_path = self.workdir / f"{name}-{self.port}.stdout.log"
        self.proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._stdout: Any = None
        self.redis: RedisServer | RedisCluster | None = None  # the server's own Redis under --storage redis

    @property
    def storage(self) -> str:
        """The --storage this server runs with."""
        for i, arg in enumerate(self.extra_args):
            if arg == "--storage" and i + 1 < len(self.extra_args):
                return self.extra_args[i + 1]
            if arg.startswith("--storage="):
                return arg.split("=", 1)[1]
        return self.extra_env.get("SESSIOND_STORAGE", STORAGE)

    @property
    def data_dir(self) -> Path:
        """The storage directory this server uses: ``--data-dir`` (from ``data_dir=``, the extra args or
        ``SESSIOND_DATA_DIR`` in ``env``), relative paths resolved against the workdir (its cwd);
        otherwise sessiond's default ``./data`` in the workdir."""
        value: str | Path | None = self._data_dir
        if value is None:
            args = self.extra_args
            for i, arg in enumerate(args):
                if arg == "--data-dir" and i + 1 < len(args):
                    value = args[i + 1]
                elif arg.startswith("--data-dir="):
                    value = arg.split("=", 1)[1]
        if value is None:
            value = self.extra_env.get("SESSIOND_DATA_DIR")
        path = Path(value) if value is not None else Path("data")
        return path if path.is_absolute() else self.workdir / path

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def tls_certificate(self) -> str | None:
        """The ``--tls-cert-file`` this server serves HTTPS with (its own trust anchor: the tests'
        certificates are self-signed), or ``None`` for plain HTTP."""
        for i, arg in enumerate(self.extra_args):
            if arg == "--tls-cert-file" and i + 1 < len(self.extra_args):
                return self.extra_args[i + 1]
        return None

    @property
    def verify(self) -> str | bool:
        """What ``requests`` checks the server's certificate against."""
        return self.tls_certificate or True

    @property
    def base(self) -> str:
        return f"{'https' if self.tls_certificate else 'http'}://{self.host}:{self.port}"

    def command(self) -> tuple[list[str], dict]:
        cmd = [sessiond_bin(), "--host", self.host, "--port", str(self.port)]
        env = dict(os.environ)
        # Do not inherit any SESSIOND_* configuration from the caller.
        for key in list(env):
            if key.startswith("SESSIOND_") and key != "SESSIOND_BIN":
                del env[key]
        if self.api_token:
            self.token_file = self.workdir / f"api-token-{self.port}"
            self.token_file.write_text(self.api_token)
            os.chmod(self.token_file, 0o600)
            if self.token_via_env:
                env["SESSIOND_API_TOKEN_FILE"] = str(self.token_file)
            else:
                cmd += ["--api-token-file", str(self.token_file)]
        cmd += self.extra_args
        chooses_storage = any(a == "--storage" or a.startswith("--storage=") for a in self.extra_args)
        if not chooses_storage and "SESSIOND_STORAGE" not in self.extra_env:
            cmd += ["--storage", STORAGE]
        if self._data_dir is not None:
            cmd += ["--data-dir", str(self._data_dir)]
        chooses_redis = any(a == "--redis-url" or a.startswith("--redis-url=") for a in self.extra_args)
        if self.storage == "redis" and not chooses_redis and "SESSIOND_REDIS_URL" not in self.extra_env:
            if self.redis is None:
                self.redis = (RedisCluster(self.workdir / "redis") if REDIS_TOPOLOGY == "cluster"
                              else RedisServer(self.workdir / "redis"))
            if not self.redis.alive():
                self.redis.start()
            cmd += ["--redis-url", self.redis.url]
        env.update(self.extra_env)
        return cmd, env

    def launch(self) -> subprocess.Popen:
        """Start the process (same port, same data directory on every call) without waiting for
        anything. The first run logs to ``stderr_path``; each restart to a file of its own, and
        ``stderr_path``/``stdout_path`` then point at the current run's files."""
        assert not self.alive(), "sessiond is already running"
        self._close_logs()
        self.runs += 1
        suffix = "" if self.runs == 1 else f".run{self.runs}"
        self.stderr_path = self.workdir / f"{self.name}-{self.port}{suffix}.stderr.log"
        self.stdout_path = self.workdir / f"{self.name}-{self.port}{suffix}.stdout.log"
        cmd, env = self.command()
        self.cmd = cmd
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, cwd=str(self.workdir))
        return self.proc

    def start(self, timeout: float = 20.0, wait_ready: bool = True) -> "Server":
        """Start (or restart, after stop() or kill9()) and wait until ``/readyz`` answers 200, i.e. the
        storage replay is done; with ``wait_ready=False`` only until ``/healthz`` answers 200 (the
        process listens, possibly still replaying)."""
        self.launch()
        cmd = self.cmd
        probe = "/readyz" if wait_ready else "/healthz"
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sessiond exited with {self.proc.returncode} before ready: {' '.join(cmd)}\n"
                    f"stderr: {self.stderr_text()[-3000:]}"
                )
            try:
                r = requests.get(self.base + probe, timeout=1, verify=self.verify)
                if r.status_code == 200:
                    return self
                last = r.status_code
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sessiond not ready ({probe}) after {timeout}s (last: {last}): {' '.join(cmd)}\n"
                           f"stderr: {self.stderr_text()[-3000:]}")

    def restart(self, timeout: float = 20.0, wait_ready: bool = True) -> "Server":
        """Stop gracefully (SIGTERM) if running, then start again on the same port and data dir."""
        if self.alive():
            self.stop()
        return self.start(timeout=timeout, wait_ready=wait_ready)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _close_logs(self) -> None:
        for f in (self._stderr, self._stdout):
            if f is not None:
                with contextlib.suppress(Exception):
                    f.close()
        self._stderr = self._stdout = None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout`` s); returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._close_logs()
        return self.proc.returncode

    def close(self) -> None:
        """Stops the server and its own Redis, if any (end of a fixture)."""
        self.stop()
        if self.redis is not None:
            self.redis.stop()

    def kill9(self) -> int | None:
        """SIGKILL (a crash: nothing is flushed or committed by sessiond) and reap the process."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_logs()
        return self.proc.returncode

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def startup_line(self, timeout: float = 5.0) -> str:
        """The "sessiond listening on" line of the current run. It is logged as the listener opens, so it
        may reach the log just after the first request is answered: wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            line = next((line for line in self.stderr_text().splitlines() if "sessiond listening on " in line), None)
            if line is not None:
                return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no 'sessiond listening on' line; stderr:\n{self.stderr_text()[-3000:]}")
            time.sleep(0.02)

    def client(self, api_token: str | None | bool = True) -> "Client":
        return Client(self, api_token)

    def assert_serving(self) -> None:
        """The process is alive and answers both an unauthenticated and an authenticated request."""
        assert self.alive(), f"sessiond died (exit {self.proc.returncode}); stderr tail:\n{self.stderr_text()[-3000:]}"
        r = requests.get(self.base + "/healthz", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, describe(r, "healthz after the bad input")
        c = self.client()
        r = c.get("/v1/config")
        assert r.status_code == 200, describe(r, "GET /v1/config after the bad input")


class Client:
    """A tiny HTTP client bound to one server; sends the API token unless told otherwise."""

    def __init__(self, server: Server, api_token: str | None | bool = True):
        self.server = server
        self.api_token = server.api_token if api_token is True else (api_token or None)
        self.http = requests.Session()

    def headers(self, headers: dict | None, session_token: str | None) -> dict:
        h: dict = {}
        if self.api_token:
            h["Authorization"] = f"Bearer {self.api_token}"
        if session_token is not None:
            h["Session-Token"] = session_token
        if headers:
            h.update(headers)
        return {k: v for k, v in h.items() if v is not None}

    def request(self, method: str, path: str, *, json_body: Any = ..., data: Any = None,
                headers: dict | None = None, session_token: str | None = None, params: Any = None,
                timeout: float = HTTP_TIMEOUT, **kw) -> requests.Response:
        h = self.headers(headers, session_token)
        if json_body is not ...:
            data = json.dumps(json_body).encode("utf-8")
            h.setdefault("Content-Type", "application/json")
        # verify per request: a Session's verify loses to REQUESTS_CA_BUNDLE in the environment.
        kw.setdefault("verify", self.server.verify)
        return self.http.request(method, self.server.base + path, data=data, headers=h, params=params,
                                 timeout=timeout, allow_redirects=False, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw) -> requests.Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)

    # ---- API shortcuts (each validates the documented success response) ----

    def create(self, username: str, **fields) -> dict:
        body = {"username": username, **fields}
        r = self.post("/v1/sessions", json_body=body)
        created = validate_response(r, 201)
        assert TOKEN_FULL_RE.match(created["token"]), created
        assert r.headers.get("Location", "").endswith(f"/v1/sessions/{created['id']}"), describe(
            r, "Location header should be /v1/sessions/{id}")
        return created

    def validate(self, token: str, refresh: bool | None = None) -> requests.Response:
        params = None if refresh is None else {"refresh": "true" if refresh else "false"}
        return self.get("/v1/session", session_token=token, params=params)

    def config(self) -> dict:
        return validate_response(self.get("/v1/config"), 200)

    def patch_config(self, **fields) -> dict:
        return validate_response(self.patch("/v1/config", json_body=fields), 200)

    def list_sessions(self, username: str | None = None, limit: int = 1000) -> list[dict]:
        return list(walk(self, "/v1/sessions", "sessions", limit=limit, username=username))

    def list_users(self, limit: int = 1000) -> list[dict]:
        return list(walk(self, "/v1/users", "users", limit=limit))

    def delete_all(self) -> int:
        return validate_response(self.delete("/v1/sessions", params={"confirm": "true"}), 200)["deleted"]


def walk(client: Client, path: str, key: str, limit: int = 1000, username: str | None = None,
         max_pages: int = 10000):
    """Yield every item of a paginated listing, following nextCursor."""
    cursor = None
    for _ in range(max_pages):
        params: dict = {"limit": str(limit)}
        if username is not None:
            params["username"] = username
        if cursor is not None:
            params["cursor"] = cursor
        page = validate_response(client.get(path, params=params), 200)
        assert len(page[key]) <= limit, f"page of {len(page[key])} items with limit={limit}"
        yield from page[key]
        cursor = page["nextCursor"]
        if cursor is None:
            return
    raise AssertionError(f"{path}: more than {max_pages} pages")


def snapshot_state(client: Client) -> dict:
    """Everything the API exposes about stored state: all sessions (with data), all users, config."""
    # Session data is part of the session view ("data" is absent when a session has none).
    sessions = sorted(client.list_sessions(), key=lambda s: s["id"])
    users = sorted(client.list_users(), key=lambda u: u["username"])
    return {"sessions": sessions, "users": users, "config": client.config()}


@contextlib.contextmanager
def unchanged(server: Server, client: Client | None = None):
    """Assert that the body changes no stored state and that the server still serves afterwards."""
    client = client or server.client()
    before = snapshot_state(client)
    yield before
    server.assert_serving()
    after = snapshot_state(client)
    assert after == before, f"stored state changed:\nbefore={json.dumps(before)[:3000]}\nafter={json.dumps(after)[:3000]}"


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------------------------------
# Raw HTTP over a socket
# --------------------------------------------------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"RawResponse({self.status} {self.reason} {self.headers} {self.body[:500]!r})"


def raw_connect(server: Server, timeout: float = HTTP_TIMEOUT) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    return s


def raw_read_response(sock: socket.socket) -> RawResponse | None:
    """Read one HTTP/1.1 response (Content-Length or chunked or until close). None if closed/reset
    before a status line arrived."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None if not buf else _parse_head_only(buf)
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None if not buf else _parse_head_only(buf)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    hd = {k.lower(): v for k, v in headers}
    body = rest
    try:
        if "content-length" in hd:
            n = int(hd["content-length"])
            while len(body) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            body = body[:n]
        elif "chunked" in hd.get("transfer-encoding", "").lower():
            while not body.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            body = _dechunk(body)
        elif status not in (204, 304) and not (100 <= status < 200):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    return RawResponse(status, reason, headers, body)


def _parse_head_only(buf: bytes) -> RawResponse | None:
    try:
        first = buf.split(b"\r\n", 1)[0].decode("latin-1")
        return RawResponse(int(first.split(" ")[1]), "", [], b"")
    except Exception:  # noqa: BLE001
        return None


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def raw_request(server: Server, payload: bytes, timeout: float = HTTP_TIMEOUT) -> RawResponse | None:
    """Send raw bytes on a fresh connection and read one response (None if the server closed it)."""
    with raw_connect(server, timeout) as s:
        try:
            s.sendall(payload)
        except (ConnectionResetError, BrokenPipeError):
            pass
        try:
            return raw_read_response(s)
        except (ConnectionResetError, socket.timeout):
            return None


def http_head(method: str, path: str, headers: list[tuple[str, str]] | None = None,
              body: bytes = b"", server: Server | None = None, api_token: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    if api_token:
        lines.append(f"Authorization: Bearer {api_token}".encode())
    for k, v in headers or []:
        lines.append(k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")))
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(srv: Server) -> list[tuple[str, dict, float]]:
    r = requests.get(srv.base + "/metrics", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, describe(r, "GET /metrics")
    samples = []
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        assert m, f"unparsable metrics line {line!r}"
        labels = dict(_LABEL_RE.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric(samples: list[tuple[str, dict, float]], name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` whose labels include ``labels`` (None if absent)."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items())]
    assert len(found) <= 1, f"{len(found)} samples of {name}{labels}"
    return found[0] if found else None


def wait_metric(srv: Server, name: str, want: float, timeout: float = 5.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = metric(scrape(srv), name, **labels)
        if got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} = {got}, expected {want}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """One sessiond per test module. A module may set ``SERVER_ARGS`` (list of flags)."""
    args = getattr(request.module, "SERVER_ARGS", [])
    srv = Server(tmp_path_factory.mktemp("sessiond"), args=args, name=request.module.__name__)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return server.client()


@pytest.fixture
def make_server(tmp_path):
    """Factory for a test's own server: ``make_server(args=[...], env={...}, api_token=...)``."""
    started: list[Server] = []

    def factory(args: list[str] | None = None, start: bool = True, wait_ready: bool = True, **kw) -> Server:
        srv = Server(tmp_path / f"srv{len(started)}", args=args, **kw)
        started.append(srv)
        if start:
            srv.start(wait_ready=wait_ready)
        return srv

    yield factory
    for srv in started:
        srv.close()
