#!/usr/bin/env python3
"""Load for the live monitoring check (prometheus/live_check.sh): drives a real sessiond on
loopback through a scripted day in ~75 s, counts what it caused from the responses, and later
checks that Prometheus saw exactly that.

  load.py run    --url http://127.0.0.1:PORT [--duration 75] [--users 50] --summary FILE
  load.py verify --prometheus http://127.0.0.1:PORT --summary FILE [--job sessiond] [--storage sqlite|memory]

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
two of its writes share a commit), nothing pending, no errors, an empty replay. Standard library only.
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
        ("active sessions = long sessions still live", f"sum(sessiond_sessions_active{{{sel}}})", s["live_sessions_at_end"]),
        ("realtime users = users with a live session", f"sum(sessiond_realtime_users{{{sel}}})", s["realtime_users_at_end"]),
        ("users seen in 5m = every user that logged in", f'sum(sessiond_users_seen{{{sel}, window="5m"}})', s["users"]),
        ("users seen in 15m = every user that logged in", f'sum(sessiond_users_seen{{{sel}, window="15m"}})', s["users"]),
        ("no dropped events", f"sum(sessiond_events_dropped_total{{{sel}}})", 0),
        ("target up", f"min(up{{{sel}}})", 1),
        ("build info present", f"count(sessiond_build_info{{{sel}}})", 1),
        ("realtime users recording rule = raw sum", f"sum(job:sessiond_realtime_users:sum{{{sel}}})", s["realtime_users_at_end"]),
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
    # Prometheus scrapes every second; wait until the last scrape reflects the end state.
    deadline = time.time() + a.wait
    while True:
        results = []
        for what, expr, want in checks:
            try:
                got = query(a.prometheus, expr)
            except Exception as e:  # noqa: BLE001
                got = f"error: {e}"
            results.append((what, expr, want, got))
        bad = [r for r in results if not (isinstance(r[3], float) and abs(r[3] - r[2]) < 1e-9)]
        if not bad or time.time() > deadline:
            break
        time.sleep(1)
    for what, expr, want, got in results:
        ok = isinstance(got, float) and abs(got - want) < 1e-9
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {expr} = {got} (expected {want})")
        failed += not ok
    # something that only the load could have caused: the rates went up during the run
    peak = query(a.prometheus, f"max_over_time(job:sessiond_sessions_created:rate5m{{{sel}}}[10m])")
    ok = peak is not None and peak > 0
    print(f"{'ok  ' if ok else 'FAIL'} the creation-rate recording rule saw the load: peak {peak}/s")
    failed += not ok
    print(f"verify: {len(checks) + 1 + (1 if s['other'] else 0) - failed} passed, {failed} failed")
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
    a = ap.parse_args(argv)
    return cmd_run(a) if a.cmd == "run" else cmd_verify(a)


if __name__ == "__main__":
    sys.exit(main())
