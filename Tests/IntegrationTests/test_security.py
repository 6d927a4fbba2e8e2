"""Binding rules, the API token, and secrets in logs."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest

from openapi_contract import TOKEN_RE, assert_error, validate_response
from redis_servers import free_port
from sessiond_server import sessiond_bin, unique, unknown_token

SERVER_ARGS = ["--log-level", "debug"]


def run_refusal(args: list[str], env_extra: dict | None = None, timeout: float = 10) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_") or k == "SESSIOND_BIN"}
    env.update(env_extra or {})
    # Run in a scratch directory: should sessiond get as far as its storage, the default ./data must not
    # land in the caller's working directory (the repository).
    cwd = tempfile.mkdtemp(prefix="sessiond-refusal-")
    try:
        return subprocess.run([sessiond_bin(), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"sessiond {' '.join(args)} {env_extra or ''} did not exit within {timeout}s "
                             f"(it should refuse to start); stderr: {exc.stderr!r}") from None
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_refuses_non_loopback_without_api_token(host):
    proc = run_refusal(["--host", host, "--port", str(free_port())])
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode != 0, f"exit {proc.returncode}; stderr: {stderr}"
    assert re.search(r"token|loopback", stderr, re.I), f"no clear message on stderr: {stderr!r}"


def test_refuses_non_loopback_without_api_token_env_twin():
    proc = run_refusal([], {"SESSIOND_HOST": "0.0.0.0", "SESSIOND_PORT": str(free_port())})
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode != 0, f"exit {proc.returncode}; stderr: {stderr}"
    assert re.search(r"token|loopback", stderr, re.I), f"no clear message on stderr: {stderr!r}"


@pytest.mark.parametrize("flag", ["--idle-timeout", "--max-lifetime", "--connection-timeout", "--shutdown-grace"])
@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "1e16", "-5"])
def test_out_of_range_seconds_are_refused_not_a_crash(flag, value):
    """Int64(Double) traps on inf, nan and huge values, which ArgumentParser accepts as Doubles: every
    seconds option is checked first and refused with exit 2 and a message naming it."""
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--storage", "memory", f"{flag}={value}"])
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr: {stderr}"
    assert flag in stderr and "seconds" in stderr, stderr


def test_a_connection_timeout_below_a_millisecond_is_refused():
    # Rounded to 0 ms it would turn the connection timeout off.
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--storage", "memory",
                        "--connection-timeout", "0.0004"])
    assert proc.returncode == 2, proc.stderr


def test_a_bad_durability_is_refused_with_memory_storage_too():
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--storage", "memory",
                        "--durability", "sometimes"])
    assert proc.returncode != 0, proc.stderr
    assert "--durability" in proc.stderr.decode("utf-8", "replace"), proc.stderr


def test_startup_line_names_the_metrics_listener(make_server):
    # The port appears once (not http://127.0.0.1:9100:9100/metrics).
    port = free_port()
    srv = make_server(args=["--metrics-address", f"127.0.0.1:{port}"])
    srv.startup_line()
    text = srv.stderr_text()
    assert f"http://127.0.0.1:{port}/metrics" in text, text[-2000:]
    assert f":{port}:{port}" not in text


def test_refuses_to_start_with_an_unreadable_api_token_file(tmp_path):
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--api-token-file",
                        str(tmp_path / "does-not-exist")])
    assert proc.returncode != 0, proc.stderr


def test_starts_on_loopback_with_token_file(server):
    anon = server.client(api_token=None)
    assert_error(anon.get("/v1/config"), 401, "api_token_missing")
    validate_response(server.client().get("/v1/config"), 200)
    validate_response(anon.get("/healthz"), 200)
    validate_response(anon.get("/readyz"), 200)


def test_api_token_file_from_environment_twin(make_server):
    srv = make_server(token_via_env=True)
    assert_error(srv.client(api_token=None).get("/v1/sessions"), 401, "api_token_missing")
    assert_error(srv.client(api_token="nope").get("/v1/sessions"), 403, "api_token_invalid")
    validate_response(srv.client().get("/v1/sessions"), 200)


def test_api_token_from_environment(make_server):
    token = "env-" + secrets.token_urlsafe(24)
    srv = make_server(api_token=None, env={"SESSIOND_API_TOKEN": token})
    assert_error(srv.client(api_token=None).get("/v1/config"), 401, "api_token_missing")
    validate_response(srv.client(api_token=token).get("/v1/config"), 200)
    assert token not in srv.stderr_text()


def test_without_api_token_loopback_is_open(make_server):
    srv = make_server(api_token=None)
    validate_response(srv.client(api_token=None).get("/v1/config"), 200)


def test_default_configuration(client):
    assert client.config() == {"idleTimeout": 3000, "maxLifetime": 86400, "maxSessionsPerUser": None,
                               "sessionLimitPolicy": "evict_oldest", "maxDataBytes": 16384}


def _same_length_variants(token: str) -> list[str]:
    def flip(ch: str) -> str:
        return "A" if ch != "A" else "B"

    return [token[:-1] + flip(token[-1]), flip(token[0]) + token[1:],
            token[: len(token) // 2] + flip(token[len(token) // 2]) + token[len(token) // 2 + 1:],
            "x" * len(token)]


def test_wrong_api_token_of_the_same_length_is_403(server, client):
    for wrong in _same_length_variants(server.api_token):
        assert len(wrong) == len(server.api_token) and wrong != server.api_token
        c = server.client(api_token=wrong)
        for method, path in (("GET", "/v1/sessions"), ("GET", "/v1/config"), ("GET", "/v1/nope"),
                             ("POST", "/v1/sessions")):
            kw = {"json_body": {"username": "intruder"}} if method == "POST" else {}
            assert_error(c.request(method, path, **kw), 403, "api_token_invalid")
    assert [s for s in client.list_sessions() if s["username"] == "intruder"] == []


def test_a_session_token_is_not_an_api_token(server, client):
    s = client.create(unique("not-api"))
    c = server.client(api_token=s["token"])
    assert_error(c.get("/v1/config"), 403, "api_token_invalid")


def test_tokens_never_appear_in_the_log(server, client):
    """Exercise every token-bearing path at debug level, then search the captured stderr and stdout."""
    secrets_seen: list[str] = [server.api_token]
    name = unique("log")
    for _ in range(3):
        s = client.create(name, data={"k": "v"})
        secrets_seen.append(s["token"])
        validate_response(client.validate(s["token"]), 200)
        validate_response(client.validate(s["token"], refresh=False), 200)
        validate_response(client.put("/v1/session/data", session_token=s["token"], json_body={"data": 1}), 200)
        validate_response(client.get("/v1/session/data", session_token=s["token"]), 200)
        rotated = validate_response(client.post("/v1/session/rotate", session_token=s["token"]), 200)
        secrets_seen.append(rotated["token"])
        assert_error(client.validate(s["token"]), 401, "session_unknown")
        validate_response(client.delete("/v1/session", session_token=rotated["token"]), 204)
        assert_error(client.delete("/v1/session", session_token=rotated["token"]), 401, "session_unknown")
    # Bad tokens of every kind are not logged either.
    unknown = unknown_token()
    secrets_seen.append(unknown)
    assert_error(client.validate(unknown), 401, "session_unknown")
    malformed = "usm_" + secrets.token_hex(30)
    secrets_seen.append(malformed)
    assert_error(client.validate(malformed), 401, "session_token_malformed")
    wrong_api = "wrong-" + secrets.token_hex(20)
    secrets_seen.append(wrong_api)
    assert_error(server.client(api_token=wrong_api).get("/v1/config"), 403, "api_token_invalid")
    expiring = client.create(unique("log-exp"), idleTimeout=2)
    secrets_seen.append(expiring["token"])
    time.sleep(2.5)
    assert_error(client.validate(expiring["token"]), 401, ("session_expired", "session_unknown"))
    server.assert_serving()

    logs = server.stderr_text() + server.stdout_path.read_bytes().decode("utf-8", "replace")
    leaked = TOKEN_RE.findall(logs)
    assert not leaked, f"session tokens in the log: {leaked[:3]}"
    for secret in secrets_seen:
        # Any 16-character piece of a secret (beyond the public usm_ prefix) is a leak.
        body = secret[4:] if secret.startswith("usm_") else secret
        for i in range(0, max(1, len(body) - 16), 8):
            piece = body[i:i + 16]
            assert piece not in logs, f"a piece of a secret ({piece!r}) appears in the log"


def test_warns_when_the_api_token_file_is_readable_by_others(make_server, tmp_path):
    token = "file-" + secrets.token_urlsafe(24)
    loose = tmp_path / "loose-token"
    loose.write_text(token)
    os.chmod(loose, 0o644)
    srv = make_server(api_token=None, args=["--api-token-file", str(loose)])
    validate_response(srv.client(api_token=token).get("/v1/config"), 200)
    assert "readable by other users" in srv.stderr_text()
    assert token not in srv.stderr_text()


def test_no_warning_for_a_private_api_token_file(server):
    assert "readable by other users" not in server.stderr_text()


def test_localhost_is_a_loopback_host(make_server):
    srv = make_server(api_token=None, start=False)
    srv.extra_args += ["--host", "localhost"]
    srv.start()
    validate_response(srv.client(api_token=None).get("/healthz"), 200)
    assert "listening on http://localhost:" in srv.stderr_text()
