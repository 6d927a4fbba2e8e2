"""``/metrics`` read as samples: ``scrape`` parses the exposition, ``metric`` picks one sample."""

from __future__ import annotations

import re
import time

import requests

from openapi_contract import describe
from sessiond_server import HTTP_TIMEOUT, Server


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
