#!/usr/bin/env python3
"""Load for the live monitoring check (prometheus/live_check.sh): drives a real sessiond on
loopback through a scripted day in ~75 s, counts what it caused from the responses, and later
checks that Prometheus saw exactly that. A second, short load drives two sessiond instances that
share one Redis store and checks that the store gauges count that store once.

  load.py run    --url http://127.0.0.1:PORT [--duration 75] [--users 50] --summary FILE
  load.py verify --prometheus http://127.0.0.1:PORT --summary FILE [--job sessiond] [--storage sqlite|memory]
  load.py shared-run    --url A_URL --url B_URL [--users 12] [--sessions 36] --summary FILE
  load.py shared-verify --prometheus URL --summary FILE [--job sessiond]
  load.py redis-down    --url A_URL --url B_URL --prometheus URL [--job sessiond]   (after Redis was stopped)

Phases of `run` (fractions of --duration):
  0.00-0.25 ramp-up     users log in one after another; live sessions are validated (which slides
                        their idle deadline) so that they stay alive
  0.25-0.55 steady      logins, validations, logouts, revocations, a few bad tokens
  0.55-0.70 attack      a login spike and a burst of unknown / malformed tokens
  0.70-0.80 mass logout most short sessions log out or are revoked; the rest are abandoned
  0.80-1.00 tail        only the long sessions (users 0-9) are validated
then it waits until every abandoned session has passed its idle timeout.
Session kinds: "short" (server default idle timeout, 2 s under live_check.sh), "medium"
(idleTimeout 5 s), "long" (idleTimeout 3600 s, users 0-9 only: alive at the end), "capped"
(maxLifetime 3 s: ends by absolute timeout).

Every count comes from the server's answers (201/204/200/401 + error code), so the
verification is exact even where the client races the reaper. With SQLite storage (the default,
sessiond started with a fresh --data-dir and --durability commit) `verify` also checks the storage
metrics: one upsert row per login (the load writes no data and rotates nothing), one remove row per
ended session, a batch-size and a latency observation per commit whose sizes add up to the rows
written, at least one commit per acknowledged write (the client is sequential, so in commit mode no
two of its writes share a commit), nothing pending, no errors, an empty replay. The store gauges
(sessions, realtime users, users seen) are read as the max per store, then the sum over stores, as
the recording rules and the dashboard read them.

`shared-run` (both instances with --storage redis on one fresh Redis): logins on A, validations on
B (and the tokens A created are valid there), unknown and malformed tokens on both, logouts on B
(after which A answers session_unknown for those tokens), revocations on A; sessions have a 1 h idle
timeout, so nothing expires. `shared-verify` checks the per-store form counts the shared store once
(a plain sum shows it twice), the per-instance counters add up to what each instance answered, the
sessiond_redis_* metrics (up, one command per operation answered, no errors, reapers running) and
that no sessiond_storage_* series exists. `redis-down` checks what an instance does while Redis is
unreachable: /readyz and /v1 answer 503 storage_unavailable, /metrics is served with
sessiond_redis_up 0 and without the store gauges, and the job-level store rules become absent.
Standard library only.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter

TOKEN_HEADER = "Session-Token"


class Client:
    def __init__(self, url: str):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None
        self.requests = 0

    def call(self, method: str, path: str, body=None, headers=None):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                self.requests += 1
                try:
                    payload = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    payload = None
                return r.status, payload
            except (http.client.HTTPException, ConnectionError, OSError):
                # a closed keep-alive connection: reconnect once. A request that the server may
                # have handled is never retried blindly: the second attempt only follows a
                # failure to send/receive on a stale connection before any response.
                self.conn = None
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


class Load:
    def __init__(self, url: str, users: int, duration: float, seed: int):
        self.c = Client(url)
        self.users = [f"loaduser{i:03d}" for i in range(users)]
        self.duration = duration
        self.rng = random.Random(seed)
        self.live: dict[str, dict] = {}      # id -> session
        self.dead_tokens: list[str] = []     # tokens of sessions that ended (replayed later)
        self.n = Counter()                   # what the server answered
        self.http = Counter()                # (method, route, code)
        self.users_logged_in: set[str] = set()

    # ------------------------------------------------------------------ API calls
    def login(self, user: str, kind: str, now: float):
        body = {"username": user}
        if kind == "medium":
            body["idleTimeout"] = 5
        elif kind == "long":
            body["idleTimeout"] = 3600
        elif kind == "capped":
            body.update(idleTimeout=3600, maxLifetime=3)
        status, p = self.c.call("POST", "/v1/sessions", body)
        self.http[("POST", "/v1/sessions", status)] += 1
        if status != 201:
            self.n[f"login_{status}"] += 1
            return
        self.n["created"] += 1
        self.users_logged_in.add(user)
        idle = {"short": 2, "medium": 5, "long": 3600, "capped": 3600}[kind]
        self.live[p["id"]] = {"id": p["id"], "token": p["token"], "user": user, "kind": kind, "idle": idle,
                              "created": now, "touched": now, "abandoned": False}

    def validate(self, token: str, refresh: bool = True):
        path = "/v1/session" if refresh else "/v1/session?refresh=false"
        status, p = self.c.call("GET", path, headers={TOKEN_HEADER: token})
        self.http[("GET", "/v1/session", status)] += 1
        if status == 200:
            self.n["valid"] += 1
            return True
        code = (p or {}).get("error", {}).get("code", f"http_{status}")
        result = {"session_unknown": "unknown", "session_expired": "expired",
                  "session_token_malformed": "malformed"}.get(code, f"other:{code}")
        self.n[result] += 1
        return False

    def logout(self, s: dict):
        status, _ = self.c.call("DELETE", "/v1/session", headers={TOKEN_HEADER: s["token"]})
        self.http[("DELETE", "/v1/session", status)] += 1
        self.n["logout" if status == 204 else f"logout_{status}"] += 1
        self.forget(s)

    def revoke(self, s: dict):
        status, _ = self.c.call("DELETE", f"/v1/sessions/{s['id']}")
        self.http[("DELETE", "/v1/sessions/{id}", status)] += 1
        self.n["revoked" if status == 204 else f"revoke_{status}"] += 1
        self.forget(s)

    def forget(self, s: dict):
        self.live.pop(s["id"], None)
        self.dead_tokens.append(s["token"])

    def bad_token(self):
        r = self.rng.random()
        if r < 0.4:
            token = "usm_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")   # well-formed, unknown
        elif r < 0.7 and self.dead_tokens:
            token = self.rng.choice(self.dead_tokens)                                          # replay of an ended session
        else:
            token = self.rng.choice(["garbage", "usm_short", "Bearer abc", "usm_" + "!" * 43])  # malformed
        self.validate(token)

    # ------------------------------------------------------------------ the day
    def pick_kind(self, user: str, phase: str) -> str:
        if self.users.index(user) < 10 and not any(s["user"] == user and s["kind"] == "long" for s in self.live.values()):
            return "long"
        r = self.rng.random()
        if r < 0.08:
            return "capped"
        if r < 0.35:
            return "medium"
        return "short"

    def tick(self, t: float, now: float):
        d = self.duration
        phase = ("ramp" if t < 0.25 * d else "steady" if t < 0.55 * d else "attack" if t < 0.70 * d
                 else "mass_logout" if t < 0.80 * d else "tail")
        # logins
        if phase == "ramp":
            k = int(len(self.users) * t / (0.25 * d))
            for user in self.users[:k + 1]:
                if user not in self.users_logged_in:
                    self.login(user, self.pick_kind(user, phase), now)
        elif phase in ("steady", "attack"):
            for _ in range(self.rng.randint(1, 2) if phase == "steady" else self.rng.randint(3, 6)):
                user = self.rng.choice(self.users)
                self.login(user, self.pick_kind(user, phase), now)
        # keep sessions alive, end some
        for s in list(self.live.values()):
            if s["abandoned"]:
                continue
            if phase in ("mass_logout", "tail") and s["kind"] != "long":
                if phase == "mass_logout" and self.rng.random() < 0.5:
                    r = self.rng.random()
                    if r < 0.6:
                        self.logout(s)
                    elif r < 0.8:
                        self.revoke(s)
                    else:
                        s["abandoned"] = True
                elif phase == "tail":
                    s["abandoned"] = True
                continue
            if phase in ("steady", "attack") and s["kind"] != "long" and self.rng.random() < 0.03:
                r = self.rng.random()
                if r < 0.5:
                    self.logout(s)
                elif r < 0.7:
                    self.revoke(s)
                else:
                    s["abandoned"] = True   # left to idle-expire
                continue
            if s["kind"] == "capped" and now - s["created"] > 3.5:
                # past its absolute lifetime: the server ended it (or ends it on this read)
                self.validate(s["token"])
                self.forget(s)
                continue
            if now - s["touched"] >= min(0.8, s["idle"] * 0.4) and self.rng.random() < 0.9:
                ok = self.validate(s["token"], refresh=self.rng.random() < 0.95)
                s["touched"] = now
                if not ok:                  # lost a race with the reaper: it is gone
                    self.forget(s)
        # bad tokens: a trickle, and a burst during the attack
        for _ in range(self.rng.randint(8, 15) if phase == "attack" else (1 if self.rng.random() < 0.3 else 0)):
            self.bad_token()

    def run(self):
        t0 = time.monotonic()
        wall0 = time.time()
        next_report = 10.0
        while True:
            t = time.monotonic() - t0
            if t >= self.duration:
                break
            self.tick(t, time.monotonic())
            if t >= next_report:
                print(f"load: t={t:4.0f}s live={len(self.live):3d} requests={self.c.requests} "
                      f"created={self.n['created']} valid={self.n['valid']}", flush=True)
                next_report += 10
            time.sleep(max(0.0, 0.25 - ((time.monotonic() - t0) - t)))
        # everything but the long sessions is abandoned now: wait past the longest idle timeout
        # (5 s) and the capped lifetime (3 s), plus the reaper's 250 ms granularity.
        still = [s for s in self.live.values() if s["kind"] != "long"]
        if still:
            time.sleep(6.5)
        for s in still:
            self.live.pop(s["id"], None)
        wall1 = time.time()
        long_live = [s for s in self.live.values() if s["kind"] == "long"]
        return {
            "start": wall0, "end": wall1, "duration": self.duration,
            "requests": self.c.requests,
            "created": self.n["created"], "logout": self.n["logout"], "revoked": self.n["revoked"],
            "valid": self.n["valid"], "unknown": self.n["unknown"], "expired": self.n["expired"],
            "malformed": self.n["malformed"],
            # lost races with the reaper (the session had just timed out): expected, not errors
            "races": {k: v for k, v in self.n.items() if k in ("logout_401", "revoke_404")},
            "other": {k: v for k, v in self.n.items()
                      if k.startswith(("other:", "login_", "logout_", "revoke_")) and k not in ("logout_401", "revoke_404")},
            "live_sessions_at_end": len(long_live),
            "realtime_users_at_end": len({s["user"] for s in long_live}),
            "users": len(self.users_logged_in),
            "http": [[m, r, c, n] for (m, r, c), n in sorted(self.http.items())],
        }


def cmd_run(a):
    summary = Load(a.url, a.users, a.duration, a.seed).run()
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=1)
    print("load: done: " + json.dumps({k: v for k, v in summary.items() if k != "http"}))
    return 0


# ---------------------------------------------------------------------------------------------------
def query(prom: str, expr: str):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.load(r)
    if data.get("status") != "success":
        raise RuntimeError(f"{expr}: {data}")
    res = data["data"]["result"]
    return None if not res else float(res[0]["value"][1])


def matches(got, want) -> bool:
    """`want` None: the query must return nothing (the series are absent)."""
    if want is None:
        return got is None
    return isinstance(got, float) and abs(got - want) < 1e-9


def run_checks(prom: str, checks, wait: float) -> int:
    """Runs (what, PromQL, expected) checks until all pass or `wait` seconds are over (Prometheus
    scrapes every second: wait until the last scrape reflects the end state); prints each; -> the
    number that failed."""
    deadline = time.time() + wait
    while True:
        results = []
        for what, expr, want in checks:
            try:
                got = query(prom, expr)
            except Exception as e:  # noqa: BLE001
                got = f"error: {e}"
            results.append((what, expr, want, got))
        if all(matches(got, want) for _, _, want, got in results) or time.time() > deadline:
            break
        time.sleep(1)
    failed = 0
    for what, expr, want, got in results:
        ok = matches(got, want)
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {expr} = {got} (expected {'nothing' if want is None else want})")
        failed += not ok
    return failed


def cmd_verify(a):
    s = json.load(open(a.summary))
    sel = f'job="{a.job}"'
    ended_by_timeout = s["created"] - s["logout"] - s["revoked"] - s["live_sessions_at_end"]
    checks = [
        # (what, PromQL, expected)
        ("sessions created = logins answered 201", f"sum(sessiond_sessions_created_total{{{sel}}})", s["created"]),
        ("POST /v1/sessions 201 = logins", f'sum(sessiond_http_requests_total{{{sel}, method="POST", route="/v1/sessions", code="201"}})', s["created"]),
        ("ended by logout = DELETE /v1/session answered 204", f'sum(sessiond_sessions_ended_total{{{sel}, reason="logout"}})', s["logout"]),
        ("ended by revocation = DELETE /v1/sessions/{id} answered 204", f'sum(sessiond_sessions_ended_total{{{sel}, reason="revoked"}})', s["revoked"]),
        ("DELETE /v1/sessions/{id} 204 in the request counter", f'sum(sessiond_http_requests_total{{{sel}, method="DELETE", route="/v1/sessions/{{id}}", code="204"}})', s["revoked"]),
        ("nothing evicted (no per-user cap)", f'sum(sessiond_sessions_ended_total{{{sel}, reason="evicted"}})', 0),
        ("ended by timeout = created - logout - revoked - live", f'sum(sessiond_sessions_ended_total{{{sel}, reason=~"idle_timeout|absolute_timeout"}})', ended_by_timeout),
        ("expired counter = timeout endings", f"sum(sessiond_sessions_expired_total{{{sel}}})", ended_by_timeout),
        ("lifetime histogram counts every ending", f"sum(sessiond_session_duration_seconds_count{{{sel}}})", s["created"] - s["live_sessions_at_end"]),
        ("validations valid", f'sum(sessiond_session_validations_total{{{sel}, result="valid"}})', s["valid"]),
        ("validations unknown", f'sum(sessiond_session_validations_total{{{sel}, result="unknown"}})', s["unknown"]),
        ("validations expired", f'sum(sessiond_session_validations_total{{{sel}, result="expired"}})', s["expired"]),
        ("validations malformed", f'sum(sessiond_session_validations_total{{{sel}, result="malformed"}})', s["malformed"]),
        ("GET /v1/session 200 = valid validations", f'sum(sessiond_http_requests_total{{{sel}, method="GET", route="/v1/session", code="200"}})', s["valid"]),
        ("GET /v1/session 401 = failed validations", f'sum(sessiond_http_requests_total{{{sel}, method="GET", route="/v1/session", code="401"}})', s["unknown"] + s["expired"] + s["malformed"]),
        # store gauges: the max per store, then the sum over stores (one instance: one store)
        ("one store behind the store gauges", f"count(count by (store) (sessiond_sessions_active{{{sel}}}))", 1),
        ("active sessions = long sessions still live", f"sum(max by (store) (sessiond_sessions_active{{{sel}}}))", s["live_sessions_at_end"]),
        ("realtime users = users with a live session", f"sum(max by (store) (sessiond_realtime_users{{{sel}}}))", s["realtime_users_at_end"]),
        ("users seen in 5m = every user that logged in", f'sum(max by (store) (sessiond_users_seen{{{sel}, window="5m"}}))', s["users"]),
        ("users seen in 15m = every user that logged in", f'sum(max by (store) (sessiond_users_seen{{{sel}, window="15m"}}))', s["users"]),
        ("no dropped events", f"sum(sessiond_events_dropped_total{{{sel}}})", 0),
        ("target up", f"min(up{{{sel}}})", 1),
        ("build info present", f"count(sessiond_build_info{{{sel}}})", 1),
        ("realtime users recording rule = users with a live session", f"sum(job:sessiond_realtime_users:sum{{{sel}}})", s["realtime_users_at_end"]),
        ("active sessions recording rule = long sessions still live", f"sum(job:sessiond_sessions_active:sum{{{sel}}})", s["live_sessions_at_end"]),
        ("users seen recording rule (5m) = every user that logged in", f'sum(job_window:sessiond_users_seen:sum{{{sel}, window="5m"}})', s["users"]),
        ("no sessiond_redis_* series without --storage redis", f'count({{__name__=~"sessiond_redis_.+", {sel}}})', None),
    ]
    # The latency histogram has one child per (route, method): validations and logouts apart.
    answered = Counter()
    for method, route, _, n in s["http"]:
        answered[(method, route)] += n
    for method, route in (("GET", "/v1/session"), ("DELETE", "/v1/session")):
        checks.append((f"latency histogram {method} {route} = requests answered",
                       f'sum(sessiond_http_request_duration_seconds_count{{{sel}, method="{method}", route="{route}"}})',
                       answered[(method, route)]))
    if a.storage == "sqlite":
        acknowledged_writes = s["created"] + s["logout"] + s["revoked"]
        checks += [
            ("storage: durability is commit", f'count(sessiond_storage_info{{{sel}, durability="commit"}})', 1),
            ("storage: upsert rows = logins (no data or rotate in the load)", f'sum(sessiond_storage_writes_total{{{sel}, kind="upsert"}})', s["created"]),
            ("storage: remove rows = sessions ended", f'sum(sessiond_storage_writes_total{{{sel}, kind="remove"}})', s["created"] - s["live_sessions_at_end"]),
            ("storage: idle-deadline slides written (touch)", f'sum(sessiond_storage_writes_total{{{sel}, kind="touch"}}) > bool 0', 1),
            ("storage: changes in committed batches = rows written",
             f"sum(sessiond_storage_commit_batch_size_sum{{{sel}}}) - sum(sessiond_storage_writes_total{{{sel}}})", 0),
            ("storage: one batch-size observation per commit",
             f"sum(sessiond_storage_commit_batch_size_count{{{sel}}}) - sum(sessiond_storage_commits_total{{{sel}}})", 0),
            ("storage: one latency observation per commit",
             f"sum(sessiond_storage_commit_duration_seconds_count{{{sel}}}) - sum(sessiond_storage_commits_total{{{sel}}})", 0),
            (f"storage: commits >= acknowledged writes ({acknowledged_writes}, commit mode, sequential client)",
             f"sum(sessiond_storage_commits_total{{{sel}}}) >= bool {acknowledged_writes}", 1),
            ("storage: no failed commit", f"sum(sessiond_storage_errors_total{{{sel}}})", 0),
            ("storage: writable", f"min(sessiond_storage_writable{{{sel}}})", 1),
            ("storage: nothing pending at the end", f"sum(sessiond_storage_pending_changes{{{sel}}})", 0),
            ("storage: the file exists", f"sum(sessiond_storage_file_bytes{{{sel}}}) > bool 0", 1),
            ("storage: empty replay at start (fresh data dir)", f"sum(sessiond_storage_replayed_sessions{{{sel}}})", 0),
            ("storage: commits recording rule saw the load",
             f"max(max_over_time(instance:sessiond_storage_commits:rate5m{{{sel}}}[10m])) > bool 0", 1),
        ]
    failed = 0
    if s["other"]:
        print(f"FAIL unexpected answers during the load: {s['other']}")
        failed += 1
    failed += run_checks(a.prometheus, checks, a.wait)
    # something that only the load could have caused: the rates went up during the run
    peak = query(a.prometheus, f"max_over_time(job:sessiond_sessions_created:rate5m{{{sel}}}[10m])")
    ok = peak is not None and peak > 0
    print(f"{'ok  ' if ok else 'FAIL'} the creation-rate recording rule saw the load: peak {peak}/s")
    failed += not ok
    print(f"verify: {len(checks) + 1 + (1 if s['other'] else 0) - failed} passed, {failed} failed")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------
# Two instances sharing one Redis store (live_check.sh's second stage).
def instance_of(url: str) -> str:
    """The Prometheus `instance` label of a sessiond URL (host:port)."""
    u = urllib.parse.urlparse(url)
    return f"{u.hostname}:{u.port}"


class Shared:
    """What each instance answered, counted per instance (A and B)."""

    def __init__(self, urls: list[str], seed: int):
        self.clients = {name: Client(url) for name, url in zip("AB", urls)}
        self.instances = {name: instance_of(url) for name, url in zip("AB", urls)}
        self.rng = random.Random(seed)
        self.n = {name: Counter() for name in "AB"}
        self.problems: list[str] = []

    def expect(self, name, what, status, want, payload=None):
        if status != want:
            self.problems.append(f"{what} on {name}: {status} {payload} (expected {want})")

    def login(self, name, user):
        status, p = self.clients[name].call("POST", "/v1/sessions", {"username": user, "idleTimeout": 3600})
        self.expect(name, "login", status, 201, p)
        if status == 201:
            self.n[name]["created"] += 1
            return {"id": p["id"], "token": p["token"], "user": user}
        return None

    def validate(self, name, token, want):
        status, p = self.clients[name].call("GET", "/v1/session", headers={TOKEN_HEADER: token})
        code = (p or {}).get("error", {}).get("code")
        result = "valid" if status == 200 else {"session_unknown": "unknown", "session_expired": "expired",
                                                "session_token_malformed": "malformed"}.get(code, f"other:{code}")
        if result != want:
            self.problems.append(f"validation on {name}: {result} (expected {want})")
        self.n[name][result] += 1

    def logout(self, name, s):
        status, p = self.clients[name].call("DELETE", "/v1/session", headers={TOKEN_HEADER: s["token"]})
        self.expect(name, "logout", status, 204, p)
        self.n[name]["logout"] += status == 204

    def revoke(self, name, s):
        status, p = self.clients[name].call("DELETE", f"/v1/sessions/{s['id']}")
        self.expect(name, "revoke", status, 204, p)
        self.n[name]["revoked"] += status == 204

    def run(self, users: int, sessions: int):
        names = [f"shareduser{i:02d}" for i in range(users)]
        wall0 = time.time()
        # logins on A (every user at least once), spread over a few seconds so that the rates have points
        live = []
        for i in range(sessions):
            s = self.login("A", names[i % users] if i < users else self.rng.choice(names))
            if s:
                live.append(s)
            time.sleep(0.05)
        # every token A created is valid on B; some also on A
        for s in live:
            self.validate("B", s["token"], "valid")
            if self.rng.random() < 0.5:
                self.validate("A", s["token"], "valid")
        for name in "AB":
            for _ in range(3):
                # well-formed and unknown: a Redis store's token starts with its partition (2 bytes)
                unknown = "usm_" + base64.urlsafe_b64encode(bytes(2) + os.urandom(30)).decode().rstrip("=")
                self.validate(name, unknown, "unknown")
            self.validate(name, "garbage", "malformed")
        # logouts on B: A no longer knows those tokens either
        ended = []
        for s in list(live):
            if self.rng.random() < 0.3:
                self.logout("B", s)
                live.remove(s)
                ended.append(s)
        for s in ended:
            self.validate("A", s["token"], "unknown")
        # revocations by id on A
        for s in self.rng.sample(live, 2):
            self.revoke("A", s)
            live.remove(s)
            self.validate("B", s["token"], "unknown")
        time.sleep(2)
        return {
            "start": wall0, "end": time.time(), "instances": self.instances,
            "per_instance": {name: dict(c) for name, c in self.n.items()},
            "created": sum(c["created"] for c in self.n.values()),
            "logout": sum(c["logout"] for c in self.n.values()),
            "revoked": sum(c["revoked"] for c in self.n.values()),
            "live_sessions_at_end": len(live),
            "realtime_users_at_end": len({s["user"] for s in live}),
            "users": len({n for n in names}),
            "problems": self.problems,
        }


def cmd_shared_run(a):
    if len(a.url) != 2:
        print("shared-run: give --url twice (instance A, then B)", file=sys.stderr)
        return 2
    summary = Shared(a.url, a.seed).run(a.users, a.sessions)
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=1)
    print("shared load: done: " + json.dumps(summary))
    return 1 if summary["problems"] else 0


def cmd_shared_verify(a):
    s = json.load(open(a.summary))
    sel = f'job="{a.job}"'
    A, B = s["instances"]["A"], s["instances"]["B"]
    n = {name: Counter(c) for name, c in s["per_instance"].items()}
    live, users_live = s["live_sessions_at_end"], s["realtime_users_at_end"]
    checks = [
        ("both targets up", f"count(up{{{sel}}} == 1)", 2),
        ("both instances reach Redis", f"count(sessiond_redis_up{{{sel}}} == 1)", 2),
        ("one store behind both instances", f"count(count by (store) (sessiond_sessions_active{{{sel}}}))", 1),
        ("both instances report the store", f"count(sessiond_sessions_active{{{sel}}})", 2),
        # the store gauges, counted once (not doubled)
        ("realtime users recording rule = users with a live session (not doubled)", f"sum(job:sessiond_realtime_users:sum{{{sel}}})", users_live),
        ("active sessions recording rule = live sessions (not doubled)", f"sum(job:sessiond_sessions_active:sum{{{sel}}})", live),
        ("active sessions, max per store then sum = live sessions", f"sum(max by (store) (sessiond_sessions_active{{{sel}}}))", live),
        ("realtime users, max per store then sum = users with a live session", f"sum(max by (store) (sessiond_realtime_users{{{sel}}}))", users_live),
        ("users seen recording rule (5m) = every user that logged in", f'sum(job_window:sessiond_users_seen:sum{{{sel}, window="5m"}})', s["users"]),
        ("each instance reports the whole store: the plain sum is twice the sessions", f"sum(sessiond_sessions_active{{{sel}}})", 2 * live),
        # per-instance counters: each event counted once, by the instance that handled it
        ("sessions created = logins answered 201", f"sum(sessiond_sessions_created_total{{{sel}}})", s["created"]),
        ("sessions created on A", f'sum(sessiond_sessions_created_total{{{sel}, instance="{A}"}})', n["A"]["created"]),
        ("sessions created on B", f'sum(sessiond_sessions_created_total{{{sel}, instance="{B}"}})', n["B"]["created"]),
        ("ended by logout (on B)", f'sum(sessiond_sessions_ended_total{{{sel}, instance="{B}", reason="logout"}})', n["B"]["logout"]),
        ("ended by logout (all)", f'sum(sessiond_sessions_ended_total{{{sel}, reason="logout"}})', s["logout"]),
        ("ended by revocation (on A)", f'sum(sessiond_sessions_ended_total{{{sel}, instance="{A}", reason="revoked"}})', n["A"]["revoked"]),
        ("nothing ended by timeout or eviction", f'sum(sessiond_sessions_ended_total{{{sel}, reason=~"idle_timeout|absolute_timeout|evicted"}})', 0),
        ("creation-rate recording rule = sum over instances (peak > 0)",
         f"max_over_time(job:sessiond_sessions_created:rate5m{{{sel}}}[5m]) > bool 0", 1),
        # Redis, per instance
        ("no Redis errors", f"sum(sessiond_redis_errors_total{{{sel}}})", 0),
        ("no reconnects", f"sum(sessiond_redis_reconnects_total{{{sel}}})", 0),
        ("every instance's reaper runs", f"count(sessiond_redis_reaper_runs_total{{{sel}}} > 0)", 2),
        ("nothing reaped (1 h idle timeout)", f"sum(sessiond_redis_sessions_reaped_total{{{sel}}})", 0),
        ("Redis create commands = logins", f'sum(sessiond_redis_command_duration_seconds_count{{{sel}, operation="create"}})', s["created"]),
        ("Redis logout commands (on B) = logouts", f'sum(sessiond_redis_command_duration_seconds_count{{{sel}, instance="{B}", operation="logout"}})', n["B"]["logout"]),
        ("Redis revoke commands (on A) = revocations", f'sum(sessiond_redis_command_duration_seconds_count{{{sel}, instance="{A}", operation="revoke"}})', n["A"]["revoked"]),
        ("Redis p99 recording rule per instance", f"count(instance:sessiond_redis_command_duration_seconds:p99_rate5m{{{sel}}})", 2),
        ("Redis command-rate recording rule saw both instances", f"count(instance:sessiond_redis_commands:rate5m{{{sel}}} > 0)", 2),
        ("no sessiond_storage_* series with --storage redis", f'count({{__name__=~"sessiond_storage_.+", {sel}}})', None),
    ]
    for name, inst in (("A", A), ("B", B)):
        for result in ("valid", "unknown", "malformed"):
            checks.append((f"validations {result} on {name}",
                           f'sum(sessiond_session_validations_total{{{sel}, instance="{inst}", result="{result}"}})', n[name][result]))
        # A malformed token is refused before Redis. Every valid or unknown token is read once
        # (validate_read), or sent straight to the validate function while the instance has not yet
        # measured Redis's clock; a read may be followed by the function when a slide is due.
        reached = n[name]["valid"] + n[name]["unknown"]
        count = f'sessiond_redis_command_duration_seconds_count{{{sel}, instance="{inst}", operation=~"%s"}}'
        checks.append((f"Redis validation reads on {name} <= valid + unknown validations ({reached})",
                       f'sum({count % "validate_read"}) <= bool {reached}', 1))
        checks.append((f"Redis validation reads + functions on {name} >= valid + unknown validations ({reached})",
                       f'sum({count % "validate_read|validate"}) >= bool {reached}', 1))
    failed = 0
    if s["problems"]:
        print(f"FAIL unexpected answers during the shared load: {s['problems']}")
        failed += 1
    failed += run_checks(a.prometheus, checks, a.wait)
    print(f"shared-verify: {len(checks) + (1 if s['problems'] else 0) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_redis_down(a):
    """Redis has been stopped: each instance answers 503, keeps serving /metrics with
    sessiond_redis_up 0 and without the store gauges; the job-level store rules become absent."""
    failed = passed = 0

    def report(ok, what):
        nonlocal failed, passed
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        failed += not ok
        passed += ok

    store_gauges = ("sessiond_sessions_active", "sessiond_realtime_users", "sessiond_users_seen")
    for url in a.url:
        c = Client(url)
        deadline = time.time() + a.wait
        while True:   # the instance notices at its next command (a scrape, the reaper)
            status, _ = c.call("GET", "/readyz")
            if status == 503 or time.time() > deadline:
                break
            time.sleep(0.2)
        report(status == 503, f"{url}/readyz answers 503 while Redis is unreachable (got {status})")
        started = time.monotonic()
        status, p = c.call("POST", "/v1/sessions", {"username": "nobody"})
        took = time.monotonic() - started
        code = (p or {}).get("error", {}).get("code")
        report(status == 503 and code == "storage_unavailable",
               f"{url} POST /v1/sessions answers 503 storage_unavailable (got {status} {code}) in {took * 1000:.1f} ms")
        status, p = c.call("GET", "/v1/session", headers={TOKEN_HEADER: "usm_" + "A" * 43})
        code = (p or {}).get("error", {}).get("code")
        report(status == 503 and code == "storage_unavailable",
               f"{url} GET /v1/session (validation) answers 503 storage_unavailable (got {status} {code})")
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            body = r.read().decode()
        lines = [l for l in body.splitlines() if l and not l.startswith("#")]
        report("sessiond_redis_up 0.0" in lines or "sessiond_redis_up 0" in lines, f"{url}/metrics is served with sessiond_redis_up 0")
        present = sorted({l.split("{")[0].split(" ")[0] for l in lines if l.startswith(store_gauges)})
        report(not present, f"{url}/metrics has no store gauge (found {present})")
    sel = f'job="{a.job}"'
    checks = [
        ("targets still up (/metrics served)", f"count(up{{{sel}}} == 1)", len(a.url)),
        ("sessiond_redis_up is 0 on every instance", f"count(sessiond_redis_up{{{sel}}} == 0)", len(a.url)),
        ("store gauges absent (not stale values)", f'count({{__name__=~"sessiond_sessions_active|sessiond_realtime_users|sessiond_users_seen", {sel}}})', None),
        ("job:sessiond_realtime_users:sum absent", f"count(job:sessiond_realtime_users:sum{{{sel}}})", None),
        ("Redis errors counted", f"sum(sessiond_redis_errors_total{{{sel}}}) > bool 0", 1),
    ]
    check_failures = run_checks(a.prometheus, checks, a.wait)
    failed += check_failures
    passed += len(checks) - check_failures
    print(f"redis-down: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--url", required=True)
    r.add_argument("--duration", type=float, default=75.0)
    r.add_argument("--users", type=int, default=50)
    r.add_argument("--seed", type=int, default=20261129)
    r.add_argument("--summary", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--prometheus", required=True)
    v.add_argument("--summary", required=True)
    v.add_argument("--job", default="sessiond")
    v.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite",
                   help="sessiond's --storage: sqlite (with a fresh --data-dir, --durability commit) adds the storage checks")
    v.add_argument("--wait", type=float, default=15.0, help="seconds to wait for Prometheus to catch up")
    sr = sub.add_parser("shared-run", help="two instances sharing one Redis store: a short load")
    sr.add_argument("--url", action="append", required=True, help="instance A, then instance B")
    sr.add_argument("--users", type=int, default=12)
    sr.add_argument("--sessions", type=int, default=36)
    sr.add_argument("--seed", type=int, default=20261207)
    sr.add_argument("--summary", required=True)
    sv = sub.add_parser("shared-verify", help="what Prometheus saw of shared-run")
    sv.add_argument("--prometheus", required=True)
    sv.add_argument("--summary", required=True)
    sv.add_argument("--job", default="sessiond")
    sv.add_argument("--wait", type=float, default=15.0)
    rd = sub.add_parser("redis-down", help="the instances and Prometheus after Redis was stopped")
    rd.add_argument("--url", action="append", required=True)
    rd.add_argument("--prometheus", required=True)
    rd.add_argument("--job", default="sessiond")
    rd.add_argument("--wait", type=float, default=15.0)
    a = ap.parse_args(argv)
    return {"run": cmd_run, "verify": cmd_verify, "shared-run": cmd_shared_run,
            "shared-verify": cmd_shared_verify, "redis-down": cmd_redis_down}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
