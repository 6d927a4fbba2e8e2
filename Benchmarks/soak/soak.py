#!/usr/bin/env python3
"""Soak test of a running sessiond: mixed concurrent load for a while, resource series, end checks.

Started by ``Benchmarks/soak/run.sh``, which owns the sessiond process (fresh SQLite data directory,
API token file, short idle timeout) and passes its URL and PID. Standard library plus ``requests``.

The load (all of it at once, for ``--duration`` seconds, on keep-alive connections):

* ``--workers`` threads run user journeys over a pool of ``--users`` usernames: login, validations
  (``GET /v1/session``, some with ``refresh=false``), data writes and reads (the read must return
  what was written), rotations (the old token must then be ``session_unknown``), admin reads of the
  session and of one page of ``/v1/users`` or of a user's sessions; then the journey ends by logout,
  by admin revocation, or by leaving the session to expire by idleness. Some logged-out and rotated
  tokens are tried again (must be 401 ``session_unknown``) and some idle sessions are tried again
  once their deadline has passed (must be 401 ``session_expired``).
* One "keeper" thread holds ``--long-sessions`` sessions with a one-hour idle timeout, validating
  them and replacing some by logout + login: they are what the store must hold when the load stops,
  so that the listing check compares non-trivial numbers.
* ``--subscribers`` threads subscribe to ``GET /v1/events``, read for 2-5 s (checking that event ids
  are consecutive and frames well formed), go away, and come back, some with ``Last-Event-ID``.
* A slow reader subscribes with a tiny receive buffer, reads nothing for 4 s, then a quarter of
  what the stream brings: sessiond should drop it (``sessiond_events_subscribers_disconnected_total``).
* A staller opens connections and stalls: nothing sent, half a request head, or a whole
  ``/v1/events`` request whose answer it does not read for 20 s. sessiond must close each one.
* Before the load, every user of the pool logs in once (sessiond keeps a record of a user for 15
  minutes after their last session, so the user table reaches its size before the baseline).

Every ``--interval`` seconds (and at the baseline time) one row goes to the CSV and to stdout:
sessiond's RSS, descriptors and threads (from /proc), client request counts, 5xx, and the store
gauges and session counters of /metrics.

After the load: wait until the idle sessions are due and gone, then check (PASS/FAIL lines, exit 1
on any FAIL):

* RSS growth from the baseline (minute 2, or 20 % of a shorter run) to the end of the load < 5 %;
* descriptors once the load is over and every client is gone <= the count at the baseline + slack,
  and <= the idle count before the load + slack. The slack (8) is for what is legitimately open
  for a moment at the time of counting: a connection the clients just closed that sessiond has not
  reaped yet (a cut-off slow subscriber is closed "at the latest at --connection-timeout"), the
  previous /metrics scrape's connection, sessiond's own short-lived descriptors (it reads
  /dev/urandom and /proc/self by open/read/close). A descriptor leaked per connection shows well
  above it: a run opens about 50 event-stream and stalled connections per minute;
* threads after the load <= at the baseline + 2 (an extra, not in the brief: a thread leak);
* no 5xx (seen by the client or counted by sessiond), no unexpected status, no request left
  without an answer;
* the store gauges equal the admin listing (``GET /v1/sessions`` and ``GET /v1/users``, all pages),
  and the listed sessions are exactly the long-lived ones the client kept;
* sessions created - ended (every reason, expiries included) = active, from /metrics.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import re
import socket
import string
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

HTTP_TIMEOUT = 10.0
END_REASONS = ("logout", "revoked", "evicted", "idle_timeout", "absolute_timeout")


def mono() -> float:
    return time.monotonic()


# ------------------------------------------------------------------------------------------------
# Shared counters
# ------------------------------------------------------------------------------------------------


class Stats:
    """Thread-safe tallies of what the client saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.status_5xx = 0
        self.unexpected = 0
        self.transport_errors = 0
        self.by_op: collections.Counter = collections.Counter()  # (op, status or "error") -> n
        self.samples: list[str] = []  # first problems, for the report
        self.notes: collections.Counter = collections.Counter()  # named happenings (info)

    def note(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.notes[what] += n

    def wrong(self, what: str, detail: str, transport: bool = False) -> None:
        """An answer (already counted) that was wrong in its content, or a stream that broke."""
        with self.lock:
            self.by_op[(what, "error" if transport else "wrong")] += 1
            if transport:
                self.transport_errors += 1
            else:
                self.unexpected += 1
            if len(self.samples) < 30:
                self.samples.append(f"{what}: {detail}"[:400])

    def record(self, op: str, status: int | None, expected: bool, detail: str = "") -> None:
        with self.lock:
            self.requests += 1
            self.by_op[(op, status if status is not None else "error")] += 1
            if status is None:
                self.transport_errors += 1
            else:
                if status >= 500:
                    self.status_5xx += 1
                if not expected:
                    self.unexpected += 1
            bad = status is None or status >= 500 or not expected
            if bad and len(self.samples) < 30:
                self.samples.append(f"{op}: status {status} {detail}"[:400])


STATS = Stats()


class Api:
    """One keep-alive connection (requests.Session) to sessiond, with the API token."""

    def __init__(self, base: str, api_token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {api_token}"

    def call(self, op: str, method: str, path: str, *,
             expect: dict[int, set[str] | None] | Callable[[float], dict[int, set[str] | None]],
             token: str | None = None, body: Any = ..., params: dict | None = None,
             timeout: float = HTTP_TIMEOUT) -> tuple[int | None, Any]:
        """Send one request and record it. ``expect`` maps each acceptable status to the acceptable
        error codes (None: any body), or is a function of the time the answer arrived that returns
        such a map. Returns (status or None, decoded JSON or None)."""
        headers = {}
        data = None
        if token is not None:
            headers["Session-Token"] = token
        if body is not ...:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            r = self.http.request(method, self.base + path, headers=headers, data=data, params=params,
                                  timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            STATS.record(op, None, False, f"{type(exc).__name__}: {exc}")
            return None, None
        if callable(expect):
            expect = expect(mono())
        status = r.status_code
        decoded: Any = None
        if r.content:
            try:
                decoded = r.json()
            except ValueError:
                decoded = None
        ok = status in expect
        detail = ""
        if ok and expect[status] is not None:
            code = (decoded or {}).get("error", {}).get("code") if isinstance(decoded, dict) else None
            ok = code in expect[status]
            if not ok:
                detail = f"code {code!r}, expected {sorted(expect[status])}"
        if not ok and not detail:
            detail = f"expected {sorted(expect)}; body {r.content[:200]!r}"
        STATS.record(op, status, ok, f"{method} {path} {detail}")
        return status, decoded

    def close(self) -> None:
        self.http.close()


# ------------------------------------------------------------------------------------------------
# Metrics and /proc
# ------------------------------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(base: str) -> dict[str, list[tuple[dict, float]]]:
    """GET /metrics on a fresh connection (closed afterwards): name -> [(labels, value)]."""
    r = requests.get(base + "/metrics", timeout=HTTP_TIMEOUT, headers={"Connection": "close"})
    r.raise_for_status()
    out: dict[str, list[tuple[dict, float]]] = collections.defaultdict(list)
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if m:
            out[m.group(1)].append((dict(_LABEL_RE.findall(m.group(2) or "")), float(m.group(3))))
    return out


def msum(metrics: dict, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(v for l, v in metrics.get(name, []) if all(l.get(k) == x for k, x in labels.items()))


def store_numbers(m: dict) -> dict[str, float]:
    ended = {r: msum(m, "sessiond_sessions_ended_total", reason=r) for r in END_REASONS}
    server_5xx = sum(v for l, v in m.get("sessiond_http_requests_total", []) if l.get("code", "").startswith("5"))
    return {
        "sessions_active": msum(m, "sessiond_sessions_active"),
        "realtime_users": msum(m, "sessiond_realtime_users"),
        "created_total": msum(m, "sessiond_sessions_created_total"),
        "expired_total": msum(m, "sessiond_sessions_expired_total"),
        "ended_total": msum(m, "sessiond_sessions_ended_total"),
        **{f"ended_{r}": v for r, v in ended.items()},
        "server_5xx": server_5xx,
        "http_connections_open": msum(m, "sessiond_http_connections_open"),
        "events_dropped": msum(m, "sessiond_events_dropped_total"),
        "slow_disconnects": msum(m, "sessiond_events_subscribers_disconnected_total"),
        "refused_header_timeout": msum(m, "sessiond_http_connections_refused_total", reason="header_timeout"),
        "refused_per_client": msum(m, "sessiond_http_connections_refused_total", reason="per_client_limit"),
        "storage_file_bytes": msum(m, "sessiond_storage_file_bytes"),
    }


def proc_numbers(pid: int) -> dict[str, int]:
    """VmRSS (and its anonymous / file / shared-memory parts), threads, open descriptors."""
    fields = {"VmRSS:": "rss_kb", "RssAnon:": "rss_anon_kb", "RssFile:": "rss_file_kb",
              "RssShmem:": "rss_shmem_kb", "Threads:": "threads"}
    out = {v: -1 for v in fields.values()}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key = line.split(None, 1)[0] if line.strip() else ""
            if key in fields:
                out[fields[key]] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def fd_targets(pid: int) -> dict[str, str]:
    """fd number -> what it points to (a path, socket:[inode], anon_inode:[eventpoll], ...)."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def describe_sockets(inodes: set[str]) -> dict[str, str]:
    """socket inode -> 'tcp 127.0.0.1:port -> 127.0.0.1:port STATE (send queue, receive queue)'."""
    out: dict[str, str] = {}
    for table in ("tcp", "tcp6", "unix"):
        try:
            with open(f"/proc/net/{table}", encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if table == "unix":
                if len(parts) >= 7 and parts[6] in inodes:
                    out[parts[6]] = "unix " + (parts[7] if len(parts) > 7 else "")
                continue
            if len(parts) < 10 or parts[9] not in inodes:
                continue

            def addr(a: str) -> str:
                host, port = a.split(":")
                if len(host) == 8:
                    host = ".".join(str(int(host[i:i + 2], 16)) for i in (6, 4, 2, 0))
                return f"{host}:{int(port, 16)}"

            tx, rx = parts[4].split(":")
            out[parts[9]] = (f"{table} {addr(parts[1])} -> {addr(parts[2])} {TCP_STATES.get(int(parts[3], 16), parts[3])}"
                             f" (send queue {int(tx, 16)}, receive queue {int(rx, 16)})")
    return out


def extra_descriptors(pid: int, before: dict[str, str]) -> list[str]:
    """The descriptors open now whose targets were not open in ``before``, described."""
    now = fd_targets(pid)
    seen = collections.Counter(before.values())
    extra = []
    for fd, target in sorted(now.items(), key=lambda x: int(x[0])):
        if seen[target] > 0:
            seen[target] -= 1
        else:
            extra.append((fd, target))
    inodes = {t[8:-1] for _, t in extra if t.startswith("socket:[")}
    sockets = describe_sockets(inodes)
    return [f"fd {fd}: {t}" + (f" {sockets.get(t[8:-1], '(not in /proc/net)')}" if t.startswith("socket:[") else "")
            for fd, t in extra]


# ------------------------------------------------------------------------------------------------
# User journeys
# ------------------------------------------------------------------------------------------------


@dataclass
class Sess:
    token: str
    id: str
    user: str
    last_slide_sent: float  # when the last request known to slide (login, GET /v1/session) was sent
    last_recv: float  # when the last answer about this session arrived (any request may slide)
    ops_left: int
    data: Any = None  # what GET /v1/session/data must return
    has_data: bool = False


@dataclass(order=True)
class Due:
    due: float
    kind: str = field(compare=False)  # "expired": must be session_expired; "unknown": session_unknown
    token: str = field(compare=False)


class Load:
    def __init__(self, args: argparse.Namespace, base: str, api_token: str) -> None:
        self.args = args
        self.base = base
        self.api_token = api_token
        self.stop = threading.Event()
        self.users = [f"soak-user-{i:05d}" for i in range(args.users)]
        self.idle = args.idle_timeout
        # sessiond checks deadlines exactly (now < deadline, in ms): a session's idle deadline is at
        # least idle after the sending of its last sliding request (login or GET /v1/session), and
        # at most idle after the last answer about it arrived (any request may slide). So an answer
        # "expired" is wrong if it arrived before the first, and a token is surely expired after the
        # second. The tolerance covers the server's millisecond rounding.
        self.tolerance = 0.05
        self.keeper_lock = threading.Lock()
        self.keeper_sessions: dict[str, Sess] = {}  # id -> session, the long-lived ones
        self.last_id_lock = threading.Lock()
        self.last_event_id: str | None = None
        self.events_received = 0
        self.event_bytes = 0  # what the fast subscribers read, and for how long: the stream's byte rate
        self.event_seconds = 0.0
        self.threads: list[threading.Thread] = []

    # -- helpers --

    def live_expect(self, s: Sess, ok: int, gone_status: int = 401,
                    gone_code: str = "session_expired") -> Callable[[float], dict[int, set[str] | None]]:
        """Expected answers for a request on ``s``, given when its answer arrived: ``ok``; also the
        'gone' answer if the answer came after the earliest possible idle deadline."""
        earliest_deadline = s.last_slide_sent + self.idle - self.tolerance

        def expect(received: float) -> dict[int, set[str] | None]:
            if received < earliest_deadline:
                return {ok: None}
            STATS.note("requests on sessions that may have idled out meanwhile")
            return {ok: None, gone_status: {gone_code}}

        return expect

    def pacer(self, rate: float) -> Callable[[], bool]:
        """Returns a function that sleeps to keep ``rate`` calls per second; False once stopping."""
        interval = 1.0 / rate if rate > 0 else 0.0
        state = {"next": mono() + random.random() * interval}

        def wait() -> bool:
            now = mono()
            if state["next"] > now:
                if self.stop.wait(state["next"] - now):
                    return False
            elif now - state["next"] > 1.0:
                state["next"] = now  # far behind: do not burst to catch up
            state["next"] += interval
            return not self.stop.is_set()

        return wait

    def random_data(self) -> Any:
        n = random.choice((8, 40, 200, 1200))
        return {"v": random.randrange(1 << 30), "cart": ["".join(random.choices(string.ascii_letters, k=n))],
                "theme": random.choice(("dark", "light"))}

    # -- workers --

    def worker(self, index: int) -> None:
        api = Api(self.base, self.api_token)
        rnd = random.Random(index * 7919 + int(time.time()))
        pace = self.pacer(self.args.rate / self.args.workers)
        active: list[Sess] = []
        dues: list[Due] = []  # kept sorted by due
        target_active = self.args.active_per_worker
        try:
            while pace():
                now = mono()
                if dues and dues[0].due <= now:
                    d = dues.pop(0)
                    if d.kind == "expired":
                        late = now - d.due
                        codes = {"session_expired"} if late < self.args.expired_retention - 5 else {
                            "session_expired", "session_unknown"}
                        api.call("check expired token", "GET", "/v1/session", token=d.token, expect={401: codes})
                    else:
                        api.call("check ended token", "GET", "/v1/session", token=d.token,
                                 expect={401: {"session_unknown"}})
                    continue
                if len(active) < target_active and (not active or rnd.random() < 0.35):
                    self.login(api, rnd, active)
                    continue
                s = rnd.choice(active)
                if s.ops_left <= 0:
                    active.remove(s)
                    self.end_journey(api, rnd, s, dues)
                    dues.sort()
                    continue
                s.ops_left -= 1
                self.journey_step(api, rnd, s, active, dues)
                dues.sort()
        finally:
            # Sessions still in a journey are left to idle out (checked by the end-of-run listing).
            api.close()

    def login(self, api: Api, rnd: random.Random, active: list[Sess]) -> None:
        user = rnd.choice(self.users)
        body: dict[str, Any] = {"username": user}
        data = None
        if rnd.random() < 0.5:
            data = self.random_data()
            body["data"] = data
        sent = mono()
        status, created = api.call("login", "POST", "/v1/sessions", body=body, expect={201: None})
        if status == 201 and isinstance(created, dict):
            active.append(Sess(created["token"], created["id"], user, sent, mono(), rnd.randint(2, 14),
                               data, data is not None))

    def journey_step(self, api: Api, rnd: random.Random, s: Sess, active: list[Sess], dues: list[Due]) -> None:
        now = mono()
        p = rnd.random()
        if p < 0.45:
            status, _ = api.call("validate", "GET", "/v1/session", token=s.token, expect=self.live_expect(s, 200))
            if status == 200:
                s.last_slide_sent = now
        elif p < 0.50:
            api.call("validate refresh=false", "GET", "/v1/session", token=s.token, params={"refresh": "false"},
                     expect=self.live_expect(s, 200))
        elif p < 0.68:
            s.data = self.random_data()
            status, got = api.call("put data", "PUT", "/v1/session/data", token=s.token, body={"data": s.data},
                                   expect=self.live_expect(s, 200))
            if status == 200:
                s.has_data = True
                if got != {"data": s.data}:
                    STATS.wrong("put data answer", f"answered {str(got)[:120]}")
        elif p < 0.86:
            status, got = api.call("get data", "GET", "/v1/session/data", token=s.token,
                                   expect=self.live_expect(s, 200))
            if status == 200:
                want = {"data": s.data if s.has_data else None}
                if got != want:
                    STATS.wrong("get data answer", f"answered {str(got)[:120]} want {str(want)[:120]}")
        elif p < 0.91:
            status, got = api.call("rotate", "POST", "/v1/session/rotate", token=s.token,
                                   expect=self.live_expect(s, 200))
            if status == 200 and isinstance(got, dict):
                if rnd.random() < 0.5:
                    dues.append(Due(mono(), "unknown", s.token))
                s.token = got["token"]
        elif p < 0.96:
            api.call("admin get session", "GET", f"/v1/sessions/{s.id}",
                     expect=self.live_expect(s, 200, 404, "session_not_found"))
        elif p < 0.98:
            api.call("admin list user sessions", "GET", "/v1/sessions",
                     params={"username": s.user, "limit": "50"}, expect={200: None})
        else:
            api.call("admin list users (1 page)", "GET", "/v1/users", params={"limit": "50"}, expect={200: None})
        s.last_recv = mono()

    def end_journey(self, api: Api, rnd: random.Random, s: Sess, dues: list[Due]) -> None:
        p = rnd.random()
        if p < 0.42:
            status, _ = api.call("logout", "DELETE", "/v1/session", token=s.token, expect=self.live_expect(s, 204))
            if status == 204 and rnd.random() < 0.25:
                dues.append(Due(mono() + rnd.uniform(0, 2), "unknown", s.token))
        elif p < 0.47:
            status, _ = api.call("admin revoke session", "DELETE", f"/v1/sessions/{s.id}",
                                 expect=self.live_expect(s, 204, 404, "session_not_found"))
            if status == 204 and rnd.random() < 0.25:
                dues.append(Due(mono(), "unknown", s.token))
        else:
            # Left to expire by idleness; some are tried again once surely expired.
            STATS.note("sessions left to idle out")
            if rnd.random() < 0.3:
                dues.append(Due(s.last_recv + self.idle + self.tolerance + rnd.uniform(0, 3), "expired", s.token))

    # -- long-lived sessions --

    def keeper(self) -> None:
        api = Api(self.base, self.api_token)
        rnd = random.Random()
        pace = self.pacer(self.args.keeper_rate)
        try:
            while pace():
                with self.keeper_lock:
                    n = len(self.keeper_sessions)
                if n < self.args.long_sessions:
                    user = rnd.choice(self.users)
                    status, created = api.call("login (long-lived)", "POST", "/v1/sessions",
                                               body={"username": user, "idleTimeout": 3600, "data": {"long": True}},
                                               expect={201: None})
                    if status == 201:
                        with self.keeper_lock:
                            self.keeper_sessions[created["id"]] = Sess(created["token"], created["id"], user,
                                                                       mono(), mono(), 0)
                    continue
                with self.keeper_lock:
                    s = self.keeper_sessions[rnd.choice(list(self.keeper_sessions))]
                if rnd.random() < 0.15:
                    status, _ = api.call("logout (long-lived)", "DELETE", "/v1/session", token=s.token,
                                         expect={204: None})
                    if status is not None:  # 204, or an unexpected answer already counted
                        with self.keeper_lock:
                            self.keeper_sessions.pop(s.id, None)
                else:
                    api.call("validate (long-lived)", "GET", "/v1/session", token=s.token, expect={200: None})
        finally:
            api.close()

    # -- event subscribers --

    def subscriber(self, index: int) -> None:
        rnd = random.Random(index)
        headers = {"Authorization": f"Bearer {self.api_token}", "Accept": "text/event-stream"}
        while not self.stop.is_set():
            h = dict(headers)
            resumed = False
            with self.last_id_lock:
                if self.last_event_id and rnd.random() < 0.5:
                    h["Last-Event-ID"] = self.last_event_id
                    resumed = True
            read_for = rnd.uniform(2, 5)
            try:
                with requests.get(self.base + "/v1/events", headers=h, stream=True, timeout=(5, 5)) as r:
                    ok = r.status_code == 200 and r.headers.get("Content-Type", "").startswith("text/event-stream")
                    STATS.record("events subscribe", r.status_code, ok, f"content-type {r.headers.get('Content-Type')}")
                    if ok:
                        self.read_events(r, read_for, resumed, h.get("Last-Event-ID"))
            except requests.RequestException as exc:
                STATS.record("events subscribe", None, False, f"{type(exc).__name__}: {exc}")
            if self.stop.wait(rnd.uniform(0.2, 1.0)):
                break

    def read_events(self, r: requests.Response, read_for: float, resumed: bool, resumed_from: str | None) -> None:
        started = mono()
        deadline = started + read_for
        nbytes = 0
        prev_num: int | None = None
        if resumed_from is not None:
            prev_num = int(resumed_from.rsplit("-", 1)[1])
        first = True
        event_type = event_id = None
        data_lines: list[str] = []
        n = 0
        try:
            for raw in r.iter_lines(chunk_size=1024):
                nbytes += len(raw) + 1
                line = raw.decode("utf-8", "replace")
                if line == "":
                    if event_type is not None or data_lines:
                        n += 1
                        prev_num = self.check_event(event_type, event_id, data_lines, prev_num, first)
                        first = False
                    event_type = event_id = None
                    data_lines = []
                    if mono() > deadline or self.stop.is_set():
                        break
                    continue
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "event":
                    event_type = v
                elif k == "id":
                    event_id = v
                elif k == "data":
                    data_lines.append(v)
                if mono() > deadline + 2:
                    break
        except requests.RequestException as exc:
            if not self.stop.is_set():
                STATS.wrong("events read", f"{type(exc).__name__}: {exc}", transport=True)
        with self.last_id_lock:
            self.events_received += n
            self.event_bytes += nbytes
            self.event_seconds += mono() - started
        STATS.note("event streams read" + (" (resumed with Last-Event-ID)" if resumed else ""))

    def check_event(self, event_type: str | None, event_id: str | None, data_lines: list[str],
                    prev_num: int | None, first: bool) -> int | None:
        if event_type == "gap":
            STATS.note("gap events (resume point no longer kept)")
            return None
        try:
            data = json.loads("\n".join(data_lines))
            good = (event_type in ("created", "ended") and data.get("type") == event_type
                    and isinstance(data.get("id"), str) and isinstance(data.get("username"), str)
                    and (event_type == "created" or data.get("reason") in END_REASONS))
        except ValueError:
            good = False
        if not good:
            STATS.wrong("event frame", f"bad frame event={event_type} data={data_lines!r}"[:300])
            return prev_num
        num = None
        if event_id and "-" in event_id:
            try:
                num = int(event_id.rsplit("-", 1)[1])
            except ValueError:
                num = None
        if num is None:
            STATS.wrong("event frame", f"event id {event_id!r} not <run>-<number>")
            return prev_num
        if prev_num is not None and num != prev_num + 1:
            STATS.wrong("event order",
                         f"event id {num} after {prev_num}{' (first after Last-Event-ID)' if first else ''}")
        with self.last_id_lock:
            self.last_event_id = event_id
        return num

    # -- slow reader and staller (raw sockets) --

    def raw_socket(self, rcvbuf: int | None = None) -> socket.socket:
        u = urllib.parse.urlsplit(self.base)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(5)
        s.connect((u.hostname, u.port))
        return s

    def events_request(self) -> bytes:
        u = urllib.parse.urlsplit(self.base)
        return (f"GET /v1/events HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nAuthorization: Bearer {self.api_token}\r\n"
                f"Accept: text/event-stream\r\n\r\n").encode()

    def connect_raw(self, what: str) -> socket.socket | None:
        """A raw socket with a 4 KiB receive buffer, or None (recorded, after a second's pause) when it
        cannot connect."""
        try:
            return self.raw_socket(rcvbuf=4096)
        except OSError as exc:
            STATS.record(f"{what} connect", None, False, str(exc))
            self.stop.wait(1)
            return None

    def slow_reader(self) -> None:
        """Subscribes with a 4 KiB receive buffer; reads nothing for 4 s, then every 0.5 s a quarter of
        what the stream brings meanwhile (as the fast subscribers measured it), for up to 40 s: sessiond
        should disconnect it when its buffer is full (counted in
        sessiond_events_subscribers_disconnected_total{reason="slow"}). Then drains fast for 3 s: an
        end of stream means sessiond dropped it. (It reads at all so that the socket wakes sessiond
        up often enough: a subscriber that reads nothing is closed by the connection timeout first,
        which the staller's third kind covers.)"""
        while not self.stop.is_set():
            s = self.connect_raw("slow reader")
            if s is None:
                continue
            outcome = "kept"
            try:
                s.sendall(self.events_request())
                if self.stop.wait(4):
                    break
                slow_until = mono() + 40
                eof = False
                with self.last_id_lock:
                    rate = self.event_bytes / self.event_seconds if self.event_seconds > 1 else 4096
                chunk = max(512, int(rate * 0.5 / 4))
                while mono() < slow_until and not self.stop.is_set():
                    if not s.recv(chunk):
                        eof = True
                        break
                    time.sleep(0.5)
                drain_until = mono() + 3
                s.settimeout(1)
                while not eof and mono() < drain_until and not self.stop.is_set():
                    try:
                        if not s.recv(65536):
                            eof = True
                    except socket.timeout:
                        pass
                if eof:
                    outcome = "dropped by sessiond"
            except (ConnectionResetError, BrokenPipeError):
                outcome = "dropped by sessiond (reset)"
            except OSError as exc:
                outcome = f"error {type(exc).__name__}"
            finally:
                s.close()
            STATS.note(f"slow subscribers: {outcome}")

    def staller(self) -> None:
        """Connects and stalls: sends nothing, or half a request head (waits up to 60 s for sessiond
        to close the connection), or a whole /v1/events request whose answer it does not read for 20 s."""
        kinds = ("nothing sent", "half a request head", "events request, never read")
        i = 0
        while not self.stop.is_set():
            kind = kinds[i % len(kinds)]
            i += 1
            s = self.connect_raw("staller")
            if s is None:
                continue
            started = mono()
            outcome = "still open at stop"
            try:
                if kind == "half a request head":
                    s.sendall(b"GET /v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nSession-")
                elif kind == "events request, never read":
                    s.sendall(self.events_request())
                if kind != "events request, never read":
                    s.settimeout(0.5)
                    while not self.stop.is_set() and mono() - started < 60:
                        try:
                            if not s.recv(65536):
                                outcome = "closed by sessiond"
                                break
                        except socket.timeout:
                            continue
                else:
                    # Reads nothing for 20 s (sessiond's buffers for it fill up), then drains for 3 s:
                    # an end of stream then means sessiond dropped it meanwhile.
                    if not self.stop.wait(20):
                        s.settimeout(1)
                        drain_until = mono() + 3
                        while mono() < drain_until:
                            try:
                                if not s.recv(65536):
                                    outcome = "closed by sessiond"
                                    break
                            except socket.timeout:
                                pass
                        else:
                            outcome = "still open after 20 s"
            except (ConnectionResetError, BrokenPipeError):
                outcome = "closed by sessiond (reset)"
            except OSError as exc:
                outcome = f"error {type(exc).__name__}"
            finally:
                s.close()
            if outcome.startswith("closed"):
                STATS.note(f"stalled connections ({kind}): closed by sessiond")
                with STATS.lock:
                    key = f"stalled connections ({kind}): most seconds until seen closed"
                    STATS.notes[key] = max(STATS.notes[key], int(mono() - started))
            else:
                STATS.note(f"stalled connections ({kind}): {outcome}")

    # -- control --

    def start(self) -> None:
        targets: list[tuple[Callable, tuple]] = [(self.worker, (i,)) for i in range(self.args.workers)]
        targets.append((self.keeper, ()))
        targets += [(self.subscriber, (i,)) for i in range(self.args.subscribers)]
        targets += [(self.slow_reader, ()) for _ in range(self.args.slow_readers)]
        targets += [(self.staller, ()) for _ in range(self.args.stallers)]
        for fn, a in targets:
            t = threading.Thread(target=fn, args=a, name=fn.__name__, daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self, timeout: float = 20.0) -> list[str]:
        self.stop.set()
        deadline = mono() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - mono()))
        return [t.name for t in self.threads if t.is_alive()]


# ------------------------------------------------------------------------------------------------
# Listing
# ------------------------------------------------------------------------------------------------


def walk(api: Api, path: str, key: str) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(100000):
        params = {"limit": "1000"}
        if cursor:
            params["cursor"] = cursor
        status, page = api.call(f"listing {path}", "GET", path, params=params, expect={200: None})
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        items += page[key]
        cursor = page["nextCursor"]
        if cursor is None:
            return items
    raise RuntimeError(f"GET {path}: too many pages")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------

COLUMNS = ["elapsed_s", "phase", "rss_kb", "fds", "threads", "requests", "req_per_s", "status_5xx",
           "unexpected", "transport_errors", "sessions_active", "realtime_users", "created_total",
           "expired_total", "ended_total", "ended_logout", "ended_revoked", "ended_evicted",
           "ended_idle_timeout", "ended_absolute_timeout", "created_minus_ended_minus_active",
           "server_5xx", "http_connections_open", "events_received", "events_dropped", "slow_disconnects",
           "rss_anon_kb", "rss_file_kb", "rss_shmem_kb", "storage_file_bytes"]


class Recorder:
    def __init__(self, path: str, base: str, pid: int, load: Load) -> None:
        self.base = base
        self.pid = pid
        self.load = load
        self.rows: list[dict] = []
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=COLUMNS)
        self.w.writeheader()
        self.f.flush()
        self.prev: tuple[float, int] | None = None

    def sample(self, elapsed: float, phase: str) -> dict:
        proc = proc_numbers(self.pid)  # before the scrape, whose own connection would be counted
        nums = store_numbers(scrape(self.base))
        with STATS.lock:
            req, s5, unexp, terr = STATS.requests, STATS.status_5xx, STATS.unexpected, STATS.transport_errors
        rps = 0.0
        if self.prev is not None and elapsed > self.prev[0]:
            rps = (req - self.prev[1]) / (elapsed - self.prev[0])
        self.prev = (elapsed, req)
        row = {"elapsed_s": round(elapsed, 1), "phase": phase, **proc, "requests": req, "req_per_s": round(rps),
               "status_5xx": s5, "unexpected": unexp, "transport_errors": terr,
               "created_minus_ended_minus_active": int(nums["created_total"] - nums["ended_total"] - nums["sessions_active"]),
               "events_received": self.load.events_received}
        for k in COLUMNS:
            if k not in row:
                row[k] = int(nums[k]) if float(nums[k]).is_integer() else nums[k]
        self.rows.append(row)
        self.w.writerow(row)
        self.f.flush()
        print(f"[{row['elapsed_s']:7.1f}s {phase:>8}] rss={row['rss_kb'] / 1024:6.1f}MiB fds={row['fds']:3d} "
              f"threads={row['threads']:2d} req={req:7d} ({row['req_per_s']:4d}/s) 5xx={s5} unexpected={unexp} "
              f"errors={terr} active={row['sessions_active']} users={row['realtime_users']} "
              f"created={row['created_total']} expired={row['expired_total']} ended={row['ended_total']} "
              f"conns={row['http_connections_open']} events={row['events_received']} "
              f"slow_drops={row['slow_disconnects']}", flush=True)
        return row

    def close(self) -> None:
        self.f.close()


def wait_ready(base: str, pid: int, timeout: float) -> None:
    deadline = mono() + timeout
    last: Any = None
    while mono() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            raise SystemExit(f"sessiond (pid {pid}) is gone")
        try:
            r = requests.get(base + "/readyz", timeout=2)
            if r.status_code == 200:
                return
            last = r.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise SystemExit(f"sessiond not ready after {timeout}s: {last}")


def warm_up(load: Load, base: str, api_token: str) -> None:
    """Touch every path once (SQLite WAL, event ring, listings) so that the idle baseline counts the
    descriptors sessiond keeps for good, then let every connection go."""
    api = Api(base, api_token)
    st, c = api.call("warm-up login", "POST", "/v1/sessions", body={"username": "soak-warmup", "data": {"a": 1}},
                     expect={201: None})
    if st == 201:
        tok = c["token"]
        api.call("warm-up validate", "GET", "/v1/session", token=tok, expect={200: None})
        api.call("warm-up put data", "PUT", "/v1/session/data", token=tok, body={"data": {"b": 2}}, expect={200: None})
        api.call("warm-up get data", "GET", "/v1/session/data", token=tok, expect={200: None})
        api.call("warm-up logout", "DELETE", "/v1/session", token=tok, expect={204: None})
    walk(api, "/v1/users", "users")
    walk(api, "/v1/sessions", "sessions")
    api.close()

    # Every user of the pool logs in once (the sessions idle out): sessiond keeps a record of each user
    # for 15 minutes after their last session (for sessiond_users_seen), so with a random pick the
    # user table would grow until the whole pool had been drawn, long after the baseline.
    def login_all(first: int) -> None:
        a = Api(base, api_token)
        for user in load.users[first::8]:
            a.call("warm-up login (every user)", "POST", "/v1/sessions", body={"username": user}, expect={201: None})
        a.close()

    threads = [threading.Thread(target=login_all, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h = {"Authorization": f"Bearer {api_token}"}
    with requests.get(base + "/v1/events", headers=h, stream=True, timeout=(5, 3)) as r:
        STATS.record("warm-up events", r.status_code, r.status_code == 200)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="sessiond base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--api-token-file", required=True)
    ap.add_argument("--pid", type=int, required=True, help="sessiond's PID (for /proc)")
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--csv", required=True, help="where to write the series")
    ap.add_argument("--idle-timeout", type=float, required=True, help="sessiond's --idle-timeout")
    ap.add_argument("--connection-timeout", type=float, default=30, help="sessiond's --connection-timeout")
    ap.add_argument("--expired-retention", type=float, default=3600, help="sessiond's --expired-token-retention")
    ap.add_argument("--rate", type=float, default=400, help="journey requests per second, all workers (default 400)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--active-per-worker", type=int, default=12, help="journeys in flight per worker")
    ap.add_argument("--users", type=int, default=3000, help="username pool")
    ap.add_argument("--long-sessions", type=int, default=200, help="long-lived sessions held by the keeper")
    ap.add_argument("--keeper-rate", type=float, default=20)
    ap.add_argument("--subscribers", type=int, default=3, help="short-lived event subscribers at a time")
    ap.add_argument("--slow-readers", type=int, default=1, help="slow event readers at a time")
    ap.add_argument("--stallers", type=int, default=1, help="stalled connections at a time")
    ap.add_argument("--interval", type=float, default=15, help="seconds between samples")
    ap.add_argument("--rss-growth-max", type=float, default=5.0, help="percent")
    ap.add_argument("--fd-slack", type=int, default=8, help="descriptors (see the module documentation)")
    ap.add_argument("--ready-timeout", type=float, default=20)
    args = ap.parse_args()

    base = args.url.rstrip("/")
    with open(args.api_token_file, encoding="utf-8") as f:
        api_token = f.read().strip()
    wait_ready(base, args.pid, args.ready_timeout)
    load = Load(args, base, api_token)
    rec = Recorder(args.csv, base, args.pid, load)
    duration = args.duration
    base_t = min(120.0, 0.2 * duration)
    print(f"soak: {base} pid {args.pid}, {duration:.0f} s of load at ~{args.rate:.0f} journey req/s "
          f"({args.workers} workers, {args.users} users, {args.long_sessions} long-lived sessions, "
          f"{args.subscribers} subscribers, {args.slow_readers} slow reader(s), {args.stallers} staller(s)); baseline at {base_t:.0f} s; "
          f"CSV {args.csv}", flush=True)

    warm_up(load, base, api_token)
    time.sleep(1.0)
    idle0_fds = fd_targets(args.pid)
    idle0 = rec.sample(0.0, "idle0")

    t0 = mono()
    load.start()
    times = sorted({round(k * args.interval, 3) for k in range(1, int(duration // args.interval) + 1)}
                   | {round(base_t, 3), round(duration, 3)})
    baseline = end_row = None
    for t in times:
        delay = t0 + t - mono()
        if delay > 0:
            time.sleep(delay)
        if not os.path.exists(f"/proc/{args.pid}"):
            print(f"FAIL sessiond (pid {args.pid}) died during the load", flush=True)
            load.finish(5)
            return 1
        phase = "baseline" if t == round(base_t, 3) else ("end" if t == round(duration, 3) else "load")
        try:
            row = rec.sample(mono() - t0, phase)
        except (OSError, requests.RequestException) as exc:
            print(f"FAIL cannot sample sessiond (pid {args.pid}) at {t:.0f} s: {type(exc).__name__}: {exc}", flush=True)
            load.finish(5)
            return 1
        if phase == "baseline":
            baseline = row
        if phase == "end":
            end_row = row
    stuck = load.finish()
    load_end = mono()
    if stuck:
        print(f"warning: threads still running after stop: {stuck}", flush=True)

    # Let the sessions left idle expire: every journey session is due by idle + slack after the last
    # request; then wait until the store holds just the keeper's sessions (at most 20 s more).
    with load.keeper_lock:
        keeper_ids = set(load.keeper_sessions)
        keeper_users = {s.user for s in load.keeper_sessions.values()}
    settle_deadline = load_end + args.idle_timeout + 1.5
    time.sleep(max(0.0, settle_deadline - mono()))
    give_up = mono() + 20
    while True:
        nums = store_numbers(scrape(base))
        if nums["sessions_active"] == len(keeper_ids) or mono() > give_up:
            break
        time.sleep(0.5)
    # Connections that sessiond cut off (slow subscribers) or that were cut off under it (the
    # staller's) are closed "as soon as libmicrohttpd can touch them, at the latest at
    # --connection-timeout": give it that long to come back to its idle descriptor count.
    time.sleep(1.0)
    fd_deadline = load_end + args.connection_timeout + 1.0
    lingering = extra_descriptors(args.pid, idle0_fds) if proc_numbers(args.pid)["fds"] > idle0["fds"] else []
    fd_wait = mono()
    while proc_numbers(args.pid)["fds"] > idle0["fds"] and mono() < fd_deadline:
        time.sleep(0.5)
    if lingering:
        print(f"waited {mono() - fd_wait:.1f} s for sessiond to close what it still held "
              f"{mono() - load_end:.1f} s after the load:", flush=True)
        for line in lingering:
            print("  " + line, flush=True)
    settled = rec.sample(mono() - t0, "settled")
    extra_fds = extra_descriptors(args.pid, idle0_fds)
    rec.close()

    # Listing through the admin API, between two identical scrapes (else try again).
    api = Api(base, api_token)
    listing_ok = False
    for attempt in range(3):
        before = store_numbers(scrape(base))
        sessions = walk(api, "/v1/sessions", "sessions")
        users = walk(api, "/v1/users", "users")
        after = store_numbers(scrape(base))
        keys = ("sessions_active", "realtime_users", "created_total", "ended_total")
        if all(before[k] == after[k] for k in keys):
            listing_ok = True
            break
        time.sleep(1)
    api.close()
    final = after

    # ---- report ----
    print("\n== requests by operation and status ==")
    with STATS.lock:
        for (op, status), n in sorted(STATS.by_op.items(), key=lambda x: (x[0][0], str(x[0][1]))):
            print(f"  {op:34s} {str(status):>6s} {n:9d}")
        print("== notes ==")
        for k, n in sorted(STATS.notes.items()):
            print(f"  {k}: {n}")
        if STATS.samples:
            print("== first problems ==")
            for s in STATS.samples:
                print("  " + s)
    rows = rec.rows
    during = [r for r in rows if r["phase"] in ("baseline", "load", "end")]
    print("== series (during load) ==")
    for key in ("rss_kb", "rss_anon_kb", "rss_file_kb", "fds", "threads"):
        vals = [r[key] for r in during]
        print(f"  {key}: idle0={idle0[key]} min={min(vals)} max={max(vals)} baseline={baseline[key]} "
              f"end={end_row[key]} settled={settled[key]}")
    total_s = end_row["elapsed_s"]
    anon = end_row["rss_anon_kb"] - baseline["rss_anon_kb"]
    print(f"  anonymous memory (heap) from {base_t:.0f} s to the end: {anon:+d} kB "
          f"({100.0 * anon / max(baseline['rss_anon_kb'], 1):+.1f} % of it, "
          f"{1024.0 * anon / max(total_s - base_t, 1):.0f} B/s); file-backed pages (code): "
          f"{end_row['rss_file_kb'] - baseline['rss_file_kb']:+d} kB")
    load_requests = end_row["requests"] - idle0["requests"]
    print(f"  requests: {load_requests} in {total_s:.0f} s of load ({load_requests / max(total_s, 1):.0f}/s; "
          f"{idle0['requests']} more in the warm-up), "
          f"events received by subscribers: {load.events_received}")
    print(f"  sessiond: slow subscribers disconnected {final['slow_disconnects']:.0f}, events dropped "
          f"{final['events_dropped']:.0f}, connections closed for a slow request head "
          f"{final['refused_header_timeout']:.0f}, refused over the per-client limit {final['refused_per_client']:.0f}")

    checks: list[tuple[str, bool, str]] = []
    growth = 100.0 * (end_row["rss_kb"] - baseline["rss_kb"]) / baseline["rss_kb"]
    checks.append((f"RSS growth from {base_t:.0f} s to the end of the load < {args.rss_growth_max:g} %",
                   growth < args.rss_growth_max,
                   f"{baseline['rss_kb']} kB -> {end_row['rss_kb']} kB ({growth:+.2f} %)"))
    checks.append((f"descriptors after the load <= at {base_t:.0f} s + {args.fd_slack}",
                   settled["fds"] <= baseline["fds"] + args.fd_slack,
                   f"{baseline['fds']} at {base_t:.0f} s (under load), {settled['fds']} settled"))
    checks.append((f"descriptors after the load <= idle before the load + {args.fd_slack}",
                   settled["fds"] <= idle0["fds"] + args.fd_slack,
                   f"{idle0['fds']} idle before, {settled['fds']} idle after"))
    checks.append((f"threads after the load <= at {base_t:.0f} s + 2",
                   settled["threads"] <= baseline["threads"] + 2,
                   f"{baseline['threads']} at {base_t:.0f} s, {settled['threads']} settled"))
    checks.append(("no 5xx", STATS.status_5xx == 0 and final["server_5xx"] == 0,
                   f"client saw {STATS.status_5xx}, sessiond counted {int(final['server_5xx'])}"))
    checks.append(("no unexpected status (and no request without an answer)",
                   STATS.unexpected == 0 and STATS.transport_errors == 0,
                   f"{STATS.unexpected} unexpected, {STATS.transport_errors} without an answer, of {STATS.requests}"))
    listed_users = {s["username"] for s in sessions}
    user_sum = sum(u["sessionCount"] for u in users)
    gauges_ok = (listing_ok and final["sessions_active"] == len(sessions) == user_sum
                 and final["realtime_users"] == len(users) == len(listed_users))
    checks.append(("store gauges = admin listing", gauges_ok,
                   f"sessions_active={final['sessions_active']:.0f} listed sessions={len(sessions)} "
                   f"sum of users' sessionCount={user_sum}; realtime_users={final['realtime_users']:.0f} "
                   f"listed users={len(users)} distinct users of listed sessions={len(listed_users)}"
                   + ("" if listing_ok else "; the store changed during every listing attempt")))
    listed_ids = {s["id"] for s in sessions}
    checks.append(("the store holds exactly the long-lived sessions the client kept",
                   listed_ids == keeper_ids and listed_users == keeper_users,
                   f"{len(keeper_ids)} kept, {len(listed_ids)} listed, {len(listed_ids - keeper_ids)} unknown listed, "
                   f"{len(keeper_ids - listed_ids)} kept but not listed"))
    ended_sum = sum(final[f"ended_{r}"] for r in END_REASONS)
    by_reason = ", ".join(f"{r} {final['ended_' + r]:.0f}" for r in END_REASONS)
    checks.append(("created - ended = active",
                   final["created_total"] - ended_sum == final["sessions_active"],
                   f"{final['created_total']:.0f} - {ended_sum:.0f} "
                   f"({by_reason}) = "
                   f"{final['created_total'] - ended_sum:.0f}, active {final['sessions_active']:.0f}"))
    if settled["fds"] > idle0["fds"] and extra_fds:
        print("== descriptors open after the load that were not open before it ==")
        for line in extra_fds:
            print("  " + line)
    print("== checks ==")
    failed = 0
    for name, ok, detail in checks:
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    print(f"soak: {'FAIL' if failed else 'PASS'} ({failed} of {len(checks)} checks failed)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
