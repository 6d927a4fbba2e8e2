"""HTTPS: libmicrohttpd's TLS with the certificate of --tls-cert-file/--tls-key-file, TLS 1.2 minimum, on the
API port and the metrics listener; SIGHUP reloads the pair without dropping established connections; an
address beyond loopback needs TLS or --allow-plain-http. The certificates are self-signed, made here with
the openssl command line tool (scripts/setup.sh installs it), and each is its own trust anchor."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import requests

from openapi_contract import assert_error, validate_response
from redis_servers import free_port
from sessiond_server import unique
from test_security import run_refusal


def make_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and its key."""
    certificate, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(certificate), "-days", "30", "-subj", f"/CN=sessiond-{name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return certificate, key


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    return {name: make_pair(directory, name) for name in ("first", "second")}


def der(certificate: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certificate.read_text())


def tls_context(trust: Path, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust))
    if version is not None:
        context.minimum_version = version
        context.maximum_version = version
    return context


def peer_certificate(port: int, trust: Path) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context(trust).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def served(pairs, directory: Path, name: str = "served") -> tuple[Path, Path]:
    """Copies of the first pair in files the test may overwrite (to rotate them)."""
    certificate, key = directory / f"{name}.crt", directory / f"{name}.key"
    certificate.write_bytes(pairs["first"][0].read_bytes())
    key.write_bytes(pairs["first"][1].read_bytes())
    os.chmod(key, 0o600)
    return certificate, key


def tls_args(certificate: Path, key: Path) -> list[str]:
    return ["--tls-cert-file", str(certificate), "--tls-key-file", str(key)]


def wait_for_log(srv, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in srv.stderr_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.stderr_text()[-2000:]}"
        time.sleep(0.05)


def test_the_api_is_served_over_https_only(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    srv = make_server(args=tls_args(certificate, key))
    assert srv.base.startswith("https://")
    client = srv.client()
    session = client.create(unique("tls"))
    validate_response(client.validate(session["token"]), 200)
    assert_error(srv.client(api_token=None).get("/v1/config"), 401, "api_token_missing")
    # Plain HTTP on the TLS port gets no HTTP answer, and the server keeps serving.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=5)
    line = srv.startup_line()
    assert f"sessiond listening on https://127.0.0.1:{srv.port}" in line, line
    assert "tls=TLS 1.2+, certificate expires 20" in line, line
    validate_response(client.get("/healthz"), 200)


def test_tls_1_2_and_1_3_are_accepted_and_older_versions_refused(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    srv = make_server(args=tls_args(certificate, key))
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with tls_context(certificate, version).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 is the point here
        old = tls_context(certificate, ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            old.wrap_socket(raw, server_hostname="127.0.0.1")
    # The server refused (a protocol alert), not the client (which would say "no protocols available").
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value), refused.value
    validate_response(srv.client().get("/healthz"), 200)


def test_sighup_reloads_the_certificate_without_dropping_connections(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    srv = make_server(args=tls_args(certificate, key))
    first, second = pairs["first"], pairs["second"]
    assert peer_certificate(srv.port, first[0]) == der(first[0])

    # An established keep-alive connection, opened with the first certificate.
    established = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5,
                                              context=tls_context(first[0]))
    headers = {"Authorization": f"Bearer {srv.api_token}"}
    established.request("GET", "/v1/config", headers=headers)
    assert established.getresponse().read() and established.sock is not None
    socket_before = established.sock

    certificate.write_bytes(second[0].read_bytes())
    key.write_bytes(second[1].read_bytes())
    os.kill(srv.pid, signal.SIGHUP)
    wait_for_log(srv, "TLS certificate reloaded")

    # New handshakes get the second certificate; the established connection goes on, on the same socket.
    assert peer_certificate(srv.port, second[0]) == der(second[0])
    for _ in range(3):
        established.request("GET", "/v1/config", headers=headers)
        response = established.getresponse()
        assert response.status == 200 and response.read()
    assert established.sock is socket_before
    assert established.sock.getpeercert(binary_form=True) == der(first[0])
    established.close()

    response = requests.get(f"https://127.0.0.1:{srv.port}/v1/config", headers=headers, timeout=5,
                            verify=str(second[0]))
    validate_response(response, 200)
    assert srv.alive()


def test_a_pair_that_does_not_load_keeps_the_previous_one(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    srv = make_server(args=tls_args(certificate, key))
    # The second certificate with the first key: they do not match.
    certificate.write_bytes(pairs["second"][0].read_bytes())
    os.kill(srv.pid, signal.SIGHUP)
    wait_for_log(srv, "TLS certificate not reloaded")
    assert srv.alive()
    assert peer_certificate(srv.port, pairs["first"][0]) == der(pairs["first"][0])
    # A second SIGHUP, once the files agree again, loads them.
    key.write_bytes(pairs["second"][1].read_bytes())
    os.kill(srv.pid, signal.SIGHUP)
    wait_for_log(srv, "TLS certificate reloaded")
    assert peer_certificate(srv.port, pairs["second"][0]) == der(pairs["second"][0])


def test_the_metrics_listener_is_served_over_https_too(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    port = free_port()
    srv = make_server(args=tls_args(certificate, key) + ["--metrics-address", f"127.0.0.1:{port}"])
    response = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(certificate), timeout=5)
    assert response.status_code == 200 and "sessiond_build_info" in response.text
    assert f"https://127.0.0.1:{port}/metrics" in srv.startup_line()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-token"
    path.write_text("tls-test-" + "x" * 24)
    os.chmod(path, 0o600)
    return path


def test_beyond_loopback_without_tls_is_refused_naming_both_ways_out(tmp_path):
    proc = run_refusal(["--host", "0.0.0.0", "--port", str(free_port()), "--storage", "memory",
                        "--api-token-file", str(token_file(tmp_path))])
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, stderr
    assert "--tls-cert-file" in stderr and "--allow-plain-http" in stderr, stderr


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_allow_plain_http_says_a_proxy_terminates_tls(make_server, tmp_path, how):
    # The last --host wins over the fixture's 127.0.0.1; the test talks to it over loopback only.
    args, env = ["--storage", "memory", "--host", "0.0.0.0"], {}
    if how == "flag":
        args.append("--allow-plain-http")
    else:
        env["SESSIOND_ALLOW_PLAIN_HTTP"] = "1"
    srv = make_server(args=args, env=env)
    assert "sessiond listening on http://0.0.0.0:" in srv.startup_line()
    validate_response(srv.client().get("/v1/config"), 200)


def test_beyond_loopback_with_tls_starts(make_server, pairs, tmp_path):
    certificate, key = served(pairs, tmp_path)
    srv = make_server(args=tls_args(certificate, key) + ["--storage", "memory", "--host", "0.0.0.0"])
    assert "sessiond listening on https://0.0.0.0:" in srv.startup_line()
    validate_response(srv.client().get("/v1/config"), 200)


@pytest.mark.parametrize("problem", ["certificate without key", "key of another certificate", "missing file",
                                     "not a certificate"])
def test_a_bad_tls_configuration_is_refused_at_start(pairs, tmp_path, problem):
    first, second = pairs["first"], pairs["second"]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    args = {
        "certificate without key": ["--tls-cert-file", str(first[0])],
        "key of another certificate": tls_args(first[0], second[1]),
        "missing file": tls_args(tmp_path / "absent.crt", first[1]),
        "not a certificate": tls_args(junk, first[1]),
    }[problem]
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--storage", "memory", *args])
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, stderr
    assert "TLS" in stderr or "--tls-" in stderr, stderr
