"""One client cannot make sessiond unreachable: per-client connection limits, request-head and body
deadlines, and requests that are always answered at once.

The attacker connects from 127.0.0.2 (loopback addresses count like any other client address); the
probes (health, readiness, scrape, a validation) come from 127.0.0.1 and must keep being answered
within a second.
"""

from __future__ import annotations

import resource
import select
import socket
import time

import pytest
import requests

from metrics_samples import metric, scrape
from raw_http import raw_request
from redis_servers import free_port
from sessiond_server import unchanged, unique

ATTACKER = "127.0.0.2"
PROBE_TIMEOUT = 1.0  # what each probe must be answered within
REQUEST_TIMEOUT = 5.0  # what a probe waits for, so that a slow answer fails the bound, not the client


def raise_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= needed, "cannot open enough sockets for the test"


def connect_from(address: str, server) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.settimeout(2)
    try:
        sock.connect((server.host, server.port))
    except OSError:
        sock.close()
        return None
    return sock


def is_closed_by_peer(sock: socket.socket, wait: float = 0.0) -> bool:
    """Whether the server closed (or reset) the connection, waiting up to ``wait`` seconds."""
    poller = select.poll()  # select() cannot watch descriptors above 1023
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    if not poller.poll(wait * 1000):
        return False
    try:
        return sock.recv(4096, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def probe(server, token: str, metrics_base: str | None = None) -> float:
    """Health, readiness, a scrape and a validation from 127.0.0.1; returns the slowest answer time."""
    slowest = 0.0
    headers = {"Authorization": f"Bearer {server.api_token}", "Session-Token": token}
    probes = [(server.base, "/healthz", {}), (server.base, "/readyz", {}), (metrics_base or server.base, "/metrics", {}),
              (server.base, "/v1/session", headers)]
    for base, path, extra in probes:
        start = time.monotonic()
        answer = requests.get(base + path, headers=extra, timeout=REQUEST_TIMEOUT)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"
        slowest = max(slowest, time.monotonic() - start)
    return slowest


def refused(server, reason: str, metrics_base: str | None = None) -> float:
    text = requests.get((metrics_base or server.base) + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("sessiond_http_connections_refused_total{") and f'reason="{reason}"' in line:
            return float(line.split()[-1])
    raise AssertionError(f"no refused counter for {reason}")


def test_the_startup_line_says_what_the_limits_are(server):
    line = server.startup_line()
    for field in ("descriptor_limit=", "connection_limit=", "max_connections_per_client=64"):
        assert field in line, line


@pytest.mark.parametrize("separate_metrics", [False, True])
def test_dripping_clients_from_one_address_lock_nobody_else_out(make_server, separate_metrics):
    raise_descriptor_limit(2048)
    args = ["--header-timeout", "3", "--threads", "2"]
    metrics_base = None
    if separate_metrics:
        port = free_port()
        args += ["--metrics-address", f"127.0.0.1:{port}"]
        metrics_base = f"http://127.0.0.1:{port}"
    server = make_server(args=args)
    token = server.client().create(unique())["token"]
    attackers = []
    for _ in range(1100):
        sock = connect_from(ATTACKER, server)
        if sock is None:
            continue
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
        attackers.append(sock)
    assert len(attackers) >= 1000, "the kernel refused the attacker's connections"

    # One more header byte on every connection every second, for six seconds, while the probes run.
    started = time.monotonic()
    slowest = 0.0
    next_drip = started
    while time.monotonic() - started < 6:
        if time.monotonic() >= next_drip:
            next_drip += 1
            for sock in attackers:
                try:
                    sock.send(b"X")
                except OSError:
                    pass
        slowest = max(slowest, probe(server, token, metrics_base))
        time.sleep(0.1)
    assert slowest < PROBE_TIMEOUT

    # Past the header deadline (3 s from the first byte, checked every 250 ms) every attacker
    # connection is closed, however steadily it drips.
    still_open = [sock for sock in attackers if not is_closed_by_peer(sock, wait=0.5)]
    assert not still_open, f"{len(still_open)} dripping connections are still open"
    per_client = refused(server, "per_client_limit", metrics_base)
    cut_off = refused(server, "header_timeout", metrics_base)
    # Each attacker connection was either refused at once or cut off at its deadline.
    assert per_client + cut_off == len(attackers), (per_client, cut_off, len(attackers))
    assert 64 <= cut_off <= 65, f"{cut_off} connections cut off by the header deadline (64 per client, +1 per extra thread)"
    for sock in attackers:
        sock.close()
    assert probe(server, token, metrics_base) < PROBE_TIMEOUT


def test_idle_connections_beyond_the_per_client_limit_are_refused_at_once(make_server):
    raise_descriptor_limit(2048)
    server = make_server(args=["--threads", "2"])
    token = server.client().create(unique())["token"]
    before = refused(server, "per_client_limit")
    idle = [sock for sock in (connect_from(ATTACKER, server) for _ in range(1000)) if sock is not None]
    assert len(idle) == 1000
    # Refused connections are closed as soon as accepted; give a loaded machine time to accept them all.
    deadline = time.monotonic() + 5
    closed = 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now_closed = sum(1 for sock in idle if is_closed_by_peer(sock))
        if now_closed == closed and closed >= 1000 - 65:
            break
        closed = now_closed
    assert 1000 - 65 <= closed <= 1000 - 64, f"{closed} of 1000 idle connections closed (limit 64 per client)"
    assert refused(server, "per_client_limit") - before == closed
    assert probe(server, token) < PROBE_TIMEOUT
    opened = metric(scrape(server), "sessiond_http_connections_open")
    assert opened is not None and opened >= 1000 - closed
    for sock in idle:
        sock.close()


def timed_raw_request(server, payload: bytes):
    start = time.monotonic()
    answer = raw_request(server, payload, timeout=3)
    return answer, time.monotonic() - start


@pytest.mark.parametrize("count,status", [(99, 200), (100, 200), (101, 414), (249, 414), (250, 414), (10000, 414)])
def test_query_parameter_counts_are_answered_at_once(server, count, status):
    query = "&".join(f"p{i}=1" for i in range(count))
    answer, elapsed = timed_raw_request(server, f"GET /healthz?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert answer is not None, f"{count} query parameters: no answer"
    assert elapsed < 1, f"{count} query parameters answered after {elapsed:.1f} s"
    assert answer.status == status, answer
    if status == 414 and count <= 1000:
        # Refused by sessiond itself: the API's error shape.
        assert answer.header("Content-Type") == "application/json; charset=utf-8", answer
        assert answer.json()["error"]["code"] == "too_many_query_parameters", answer


def test_too_many_query_parameters_change_nothing(server, client):
    with unchanged(server, client):
        query = "&".join(f"confirm=true&x{i}=1" for i in range(60))
        auth = f"Authorization: Bearer {server.api_token}\r\n"
        answer = raw_request(server, f"DELETE /v1/sessions?{query} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
        assert answer is not None and answer.status == 414, answer


@pytest.mark.parametrize("lines", [100, 400, 1000, 5000])
def test_many_short_header_lines_are_answered_at_once(server, lines):
    headers = "".join(f"a{i}:b\r\n" for i in range(lines))
    answer, elapsed = timed_raw_request(server, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
    assert answer is not None, f"{lines} header lines: no answer"
    assert elapsed < 1, f"{lines} header lines answered after {elapsed:.1f} s"
    assert answer.status == (200 if lines <= 100 else 431), answer


def test_a_body_that_stalls_is_cut_off_by_the_body_deadline(make_server):
    server = make_server(args=["--body-timeout", "2", "--header-timeout", "2"])
    client = server.client()
    before = refused(server, "body_timeout")
    with unchanged(server, client):
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(
            f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":".encode()
        )
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                sock.send(b" ")
            except OSError:
                closed = True
                break
            closed = is_closed_by_peer(sock, wait=0.5)
        assert closed, "a body that trickles in was not cut off"
        assert 1.9 <= time.monotonic() - started <= 3.5
        sock.close()
    assert refused(server, "body_timeout") == before + 1
