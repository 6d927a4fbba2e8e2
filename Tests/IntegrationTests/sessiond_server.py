"""sessiond as a process (``Server``: started, restarted, killed, its log read) and a client of its API
(``Client``), with the helpers that walk its listings and check that stored state is unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from openapi_contract import REPO, TOKEN_FULL_RE, describe, validate_response
from redis_servers import RedisCluster, RedisServer, free_port

STORAGE = os.environ.get("SESSIOND_TEST_STORAGE", "sqlite")
REDIS_TOPOLOGY = os.environ.get("SESSIOND_TEST_REDIS", "standalone")
HTTP_TIMEOUT = 10


def sessiond_bin() -> str:
    """$SESSIOND_BIN, else this checkout's debug build (never another checkout's binary)."""
    return os.environ.get("SESSIOND_BIN") or str(REPO / ".build" / "debug" / "sessiond")


def unknown_token() -> str:
    """A well-formed token that no session has. Its first two bytes are 0: a partitioned store
    (Redis) reads its partition from them (docs/api.md), and partition 0 exists in every store."""
    return "usm_AAA" + secrets.token_urlsafe(30)[:40]


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
