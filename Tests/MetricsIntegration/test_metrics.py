"""/metrics against real tools: promtool, the Python prometheus-client parser, and a real
Prometheus 2.42 scraping a running sessiond after traffic with known effects.

Needs: sessiond built ($SESSIOND_BIN, default .build/debug/sessiond), `promtool` and `prometheus`
(Debian package `prometheus`), Python `prometheus-client` and `requests`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SESSIOND_BIN", str(REPO / ".build" / "debug" / "sessiond"))

# name → (type, label names) — the metric catalogue of docs/metrics.md (prometheus-client strips `_total` from
# counter family names).
CATALOGUE = {
    "sessiond_sessions_active": ("gauge", {"store"}),
    "sessiond_realtime_users": ("gauge", {"store"}),
    "sessiond_users_seen": ("gauge", {"store", "window"}),
    "sessiond_sessions_created": ("counter", set()),
    "sessiond_sessions_expired": ("counter", {"reason"}),
    "sessiond_sessions_ended": ("counter", {"reason"}),
    "sessiond_session_validations": ("counter", {"result"}),
    "sessiond_session_duration_seconds": ("histogram", set()),
    "sessiond_http_requests": ("counter", {"method", "route", "code"}),
    "sessiond_http_request_duration_seconds": ("histogram", {"method", "route"}),
    "sessiond_events_dropped": ("counter", set()),
    "sessiond_events_subscribers_disconnected": ("counter", {"reason"}),
    "sessiond_http_connections_open": ("gauge", set()),
    "sessiond_http_connections_max": ("gauge", set()),
    "sessiond_http_connections_refused": ("counter", {"reason"}),
    "sessiond_build_info": ("gauge", {"version", "revision", "swift_version"}),
    "process_cpu_seconds": ("counter", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_virtual_memory_max_bytes": ("gauge", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "promhttp_metric_handler_requests": ("counter", {"code"}),
    "promhttp_metric_handler_requests_in_flight": ("gauge", set()),
}

# The SQLite storage's families (sessiond runs with the default --storage sqlite here).
STORAGE_CATALOGUE = {
    "sessiond_storage_writes": ("counter", {"kind"}),
    "sessiond_storage_commits": ("counter", set()),
    "sessiond_storage_errors": ("counter", {"error"}),
    "sessiond_storage_commit_batch_size": ("histogram", set()),
    "sessiond_storage_commit_duration_seconds": ("histogram", set()),
    "sessiond_storage_pending_changes": ("gauge", set()),
    "sessiond_storage_uncommitted_age_seconds": ("gauge", set()),
    "sessiond_storage_writable": ("gauge", set()),
    "sessiond_storage_file_bytes": ("gauge", set()),
    "sessiond_storage_replay_duration_seconds": ("gauge", set()),
    "sessiond_storage_replayed_sessions": ("gauge", {"outcome"}),
    "sessiond_storage_info": ("gauge", {"durability"}),
}


# The Redis store's families (sessiond --storage redis only).
REDIS_CATALOGUE = {
    "sessiond_redis_up": ("gauge", set()),
    "sessiond_redis_command_duration_seconds": ("histogram", {"operation"}),
    "sessiond_redis_errors": ("counter", {"error"}),
    "sessiond_redis_reconnects": ("counter", set()),
    "sessiond_redis_reaper_runs": ("counter", set()),
    "sessiond_redis_sessions_reaped": ("counter", set()),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def wait_ready(url: str, timeout: float = 15) -> None:
    """Wait for a 200 (``/readyz`` answers 503 until the storage is replayed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200")


@pytest.fixture(scope="module")
def sessiond():
    api, metrics = free_port(), free_port()
    log = tempfile.TemporaryFile()
    # Default SQLite storage, in a temporary directory (never ./data in the working directory).
    data = tempfile.TemporaryDirectory(prefix="sessiond-metrics-")
    process = subprocess.Popen(
        [BIN, "--port", str(api), "--idle-timeout", "2", "--metrics-address", f"127.0.0.1:{metrics}",
         "--data-dir", os.path.join(data.name, "data")],
        stdout=log, stderr=log,
    )
    try:
        wait_ready(f"http://127.0.0.1:{api}/readyz")
        wait_for(f"http://127.0.0.1:{metrics}/metrics")
        yield f"http://127.0.0.1:{api}", f"http://127.0.0.1:{metrics}"
    finally:
        process.terminate()
        process.wait(timeout=15)
        data.cleanup()


def traffic(api: str) -> None:
    """7 created, 3 logged out, 2 idle-expired (2 s idle timeout), 2 kept (600 s) → active 2."""
    tokens = []
    for index in range(7):
        body = {"username": f"user{index}"}
        if index >= 5:
            body["idleTimeout"] = 600
        answer = requests.post(f"{api}/v1/sessions", json=body, timeout=5)
        assert answer.status_code == 201
        tokens.append(answer.json()["token"])
    for token in tokens[:3]:
        assert requests.delete(f"{api}/v1/session", headers={"Session-Token": token}, timeout=5).status_code == 204
    for token in tokens[5:]:
        assert requests.get(f"{api}/v1/session", headers={"Session-Token": token}, timeout=5).status_code == 200
    time.sleep(3)  # tokens[3] and tokens[4] pass their 2 s idle deadline; the reaper runs every 250 ms


def test_scrape_passes_promtool_plain_and_gzipped(sessiond):
    _, metrics = sessiond
    plain = requests.get(f"{metrics}/metrics", timeout=5)
    assert plain.status_code == 200
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert plain.content.endswith(b"\n")
    check = subprocess.run(["promtool", "check", "metrics"], input=plain.content, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr

    raw = requests.get(f"{metrics}/metrics", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5).raw
    body = raw.read(decode_content=False)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in raw.headers.get("Vary", "")
    check = subprocess.run(["promtool", "check", "metrics"], input=gzip.decompress(body), capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr

    identity = requests.get(f"{metrics}/metrics", headers={"Accept-Encoding": "gzip;q=0"}, stream=True, timeout=5).raw
    assert "Content-Encoding" not in identity.headers
    head = requests.head(f"{metrics}/metrics", timeout=5)
    assert head.status_code == 200 and head.content == b""
    post = requests.post(f"{metrics}/metrics", timeout=5)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    assert requests.get(f"{metrics}/other", timeout=5).status_code == 404


def assert_catalogue(families: dict, catalogue: dict) -> None:
    """Every family of ``catalogue`` is in the scrape with its type and exactly its label names."""
    for name, (kind, labels) in catalogue.items():
        assert name in families, name
        assert families[name].type == kind, (name, families[name].type)
        seen = set()
        for sample in families[name].samples:
            seen |= set(sample.labels) - {"le"}
        assert seen == labels, (name, seen)


def test_second_parser_sees_the_whole_catalogue(sessiond):
    _, metrics = sessiond
    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{metrics}/metrics", timeout=5).text)}
    assert_catalogue(families, {**CATALOGUE, **STORAGE_CATALOGUE})
    assert not [name for name in families if name.startswith("sessiond_redis_")]
    reasons = {s.labels["reason"] for s in families["sessiond_sessions_ended"].samples}
    assert reasons == {"logout", "revoked", "evicted", "idle_timeout", "absolute_timeout"}
    kinds = {s.labels["kind"] for s in families["sessiond_storage_writes"].samples}
    assert kinds == {"upsert", "touch", "remove"}, kinds
    errors = {s.labels["error"] for s in families["sessiond_storage_errors"].samples}
    assert "disk_full" in errors, errors
    outcomes = {s.labels["outcome"] for s in families["sessiond_storage_replayed_sessions"].samples}
    assert outcomes == {"restored", "expired", "skipped"}, outcomes
    info = [s for s in families["sessiond_storage_info"].samples]
    assert [(s.labels["durability"], s.value) for s in info] == [("commit", 1.0)], info
    writable = [s.value for s in families["sessiond_storage_writable"].samples]
    assert writable == [1.0], writable


@pytest.fixture
def redis_sessiond():
    """sessiond --storage redis on a redis-server of its own (both on free loopback ports)."""
    redis_port, api = free_port(), free_port()
    directory = tempfile.TemporaryDirectory(prefix="sessiond-metrics-redis-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory.name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log = tempfile.TemporaryFile()
    process = None
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", redis_port)) == 0:
                    break
            time.sleep(0.05)
        process = subprocess.Popen(
            [BIN, "--port", str(api), "--storage", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}"],
            stdout=log, stderr=log,
        )
        wait_ready(f"http://127.0.0.1:{api}/readyz")
        yield f"http://127.0.0.1:{api}"
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        redis.terminate()
        redis.wait(timeout=15)
        directory.cleanup()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server package")
def test_second_parser_sees_the_redis_catalogue(redis_sessiond):
    api = redis_sessiond
    created = requests.post(f"{api}/v1/sessions", json={"username": "ada"}, timeout=5)
    assert created.status_code == 201
    text = requests.get(f"{api}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert_catalogue(families, {**CATALOGUE, **REDIS_CATALOGUE})
    assert not [name for name in families if name.startswith("sessiond_storage_")]
    assert [s.value for s in families["sessiond_redis_up"].samples] == [1.0]
    assert [s.value for s in families["sessiond_sessions_active"].samples] == [1.0]
    operations = {s.labels["operation"] for s in families["sessiond_redis_command_duration_seconds"].samples}
    assert {"create", "validate", "reap", "statistics"} <= operations, operations
    created_count = [s for s in families["sessiond_redis_command_duration_seconds"].samples
                     if s.name.endswith("_count") and s.labels["operation"] == "create"]
    assert [s.value for s in created_count] == [1.0]


def test_scrape_counts_itself(sessiond):
    _, metrics = sessiond

    def scrapes() -> float:
        text = requests.get(f"{metrics}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name == "promhttp_metric_handler_requests":
                return next(s.value for s in family.samples if s.labels.get("code") == "200" and s.name.endswith("_total"))
        raise AssertionError("missing")

    first = scrapes()
    assert scrapes() == first + 1


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the prometheus package")
def test_real_prometheus_sees_what_the_traffic_did(sessiond, tmp_path):
    api, metrics = sessiond
    traffic(api)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: sessiond\n"
        f"    static_configs: [{{targets: ['{metrics.removeprefix('http://')}']}}]\n"
    )
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def query(expr: str):
        answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    try:
        wait_for(f"{url}/-/ready", timeout=30)
        expected = {
            'up{job="sessiond"}': 1,
            "sessiond_sessions_created_total": 7,
            'sessiond_sessions_ended_total{reason="logout"}': 3,
            'sessiond_sessions_ended_total{reason="idle_timeout"}': 2,
            'sessiond_sessions_expired_total{reason="idle_timeout"}': 2,
            'sessiond_sessions_expired_total{reason="absolute_timeout"}': 0,
            "sessiond_sessions_active": 2,
            "sessiond_realtime_users": 2,
            'sessiond_users_seen{window="1m"}': 7,
            "sessiond_session_duration_seconds_count": 5,
            'sessiond_http_requests_total{route="/v1/sessions",method="POST",code="201"}': 7,
            'sessiond_http_requests_total{route="/v1/session",method="DELETE",code="204"}': 3,
            # logouts and validations on one route are separate latency children
            'sessiond_http_request_duration_seconds_count{route="/v1/session",method="DELETE"}': 3,
            'sessiond_http_request_duration_seconds_count{route="/v1/session",method="GET"}': 2,
        }
        deadline = time.time() + 30
        while True:
            got = {expr: [float(r["value"][1]) for r in query(expr)] for expr in expected}
            if all(got[expr] == [value] for expr, value in expected.items()) or time.time() > deadline:
                break
            time.sleep(1)
        for expr, value in expected.items():
            assert got[expr] == [value], (expr, got[expr])
        assert query("sessiond_build_info") and query("process_start_time_seconds > 1.7e9")
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
