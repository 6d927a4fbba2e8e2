"""GET /v1/events: Server-Sent Events of session creations and endings, never tokens."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from openapi_contract import TOKEN_RE, assert_error, assert_time, parse_time, validate_response
from sessiond_server import unique

SERVER_ARGS: list[str] = []


class EventStream:
    """A subscriber: reads the stream in a thread, parses frames into a queue, keeps the raw text."""

    def __init__(self, server, timeout: float = 30, last_event_id: str | None = None):
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {server.api_token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/v1/events", headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.history: list[tuple[str, dict]] = []
        # The `id:` of each frame in history (None for a frame without one).
        self.ids: list[str | None] = []
        self.cond = threading.Condition()
        self.raw = bytearray()
        self.comments: list[str] = []
        self.errors: list[str] = []
        self.closed = threading.Event()
        if self.status == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self) -> None:
        event, data, frame_id = None, [], None
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.raw += line
                text = line.decode("utf-8").rstrip("\r\n")
                if text == "":
                    if event is not None or data:
                        try:
                            payload = json.loads("\n".join(data))
                        except ValueError as exc:
                            self.errors.append(f"data is not JSON: {data!r} ({exc})")
                            payload = None
                        with self.cond:
                            self.history.append((event or "message", payload))
                            self.ids.append(frame_id)
                            self.cond.notify_all()
                    event, data, frame_id = None, [], None
                elif text.startswith(":"):
                    self.comments.append(text)
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].lstrip(" "))
                elif text.startswith("id:"):
                    frame_id = text[3:].lstrip(" ")
                elif text.startswith("retry:"):
                    pass
                else:
                    self.errors.append(f"unexpected line {text!r}")
        except Exception as exc:  # noqa: BLE001 - closed by us, or a timeout
            self.errors.append(f"reader stopped: {exc!r}")
        finally:
            self.closed.set()
            with self.cond:
                self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "event") -> tuple[str, dict]:
        """Return the first (event, data) received so far, or within timeout, that satisfies predicate."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.history:
                    if predicate(*ev):
                        return ev
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {what} within {timeout}s; raw stream so far:\n{bytes(self.raw)[-3000:]!r}")
                self.cond.wait(timeout=min(remaining, 0.5))

    def wait_ended(self, sid: str, timeout: float = 5.0) -> dict:
        return self.wait_for(lambda e, d: e == "ended" and d and d.get("id") == sid, timeout, f"ended {sid}")[1]

    def wait_created(self, sid: str, timeout: float = 5.0) -> dict:
        return self.wait_for(lambda e, d: e == "created" and d and d.get("id") == sid, timeout, f"created {sid}")[1]

    def session_events(self) -> list[tuple[str, dict, str | None]]:
        """The created/ended events received so far, with their ids."""
        with self.cond:
            return [(e, d, i) for (e, d), i in zip(self.history, self.ids) if e in ("created", "ended")]

    def close(self) -> None:
        try:
            self.conn.sock and self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


@pytest.fixture
def subscriber(server, client):
    """A subscriber that is known to be registered: it has seen the creation of a probe session."""
    streams = []

    def make():
        s = EventStream(server)
        assert s.status == 200, s.resp.read()
        assert s.headers.get("Content-Type", "").split(";")[0].strip() == "text/event-stream"
        streams.append(s)
        return s

    def sync(*subs):
        probe = client.create(unique("probe"))
        for s in subs:
            s.wait_created(probe["id"])
        validate_response(client.delete(f"/v1/sessions/{probe['id']}"), 204)
        for s in subs:
            s.wait_ended(probe["id"])

    make.sync = sync
    yield make
    for s in streams:
        s.close()
        # Whatever it received, a stream never carries a token.
        assert TOKEN_RE.search(bytes(s.raw).decode("utf-8", "replace")) is None, "a token appeared in the stream"
        assert not [e for e in s.errors if not e.startswith("reader stopped")], s.errors


def check_event(kind: str, data: dict, session: dict, reason: str | None = None) -> None:
    assert isinstance(data, dict), data
    assert "token" not in data and TOKEN_RE.search(json.dumps(data)) is None, data
    assert data["type"] == kind, data
    assert data["id"] == session["id"], data
    assert data["username"] == session["username"], data
    assert_time(data["createdAt"], "createdAt")
    assert data["createdAt"] == session["createdAt"], data
    assert_time(data["at"], "at")
    assert parse_time(data["at"]) >= parse_time(data["createdAt"]) - 0.0015
    allowed = {"type", "id", "username", "createdAt", "at", "reason", "lifetime"}
    assert set(data) <= allowed, f"unexpected fields {set(data) - allowed}"
    if kind == "ended":
        assert data["reason"] == reason, data
        if "lifetime" in data:
            assert isinstance(data["lifetime"], (int, float)) and data["lifetime"] >= 0
            assert abs(data["lifetime"] - (parse_time(data["at"]) - parse_time(data["createdAt"]))) < 0.01, data
    else:
        assert "reason" not in data, data


def test_created_and_ended_logout_revoked(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    a = client.create(unique("ev-logout"), data={"secret": "not-in-events"})
    check_event("created", sub.wait_created(a["id"]), a)
    validate_response(client.delete("/v1/session", session_token=a["token"]), 204)
    check_event("ended", sub.wait_ended(a["id"]), a, "logout")

    b = client.create(unique("ev-revoke"))
    check_event("created", sub.wait_created(b["id"]), b)
    validate_response(client.delete(f"/v1/sessions/{b['id']}"), 204)
    check_event("ended", sub.wait_ended(b["id"]), b, "revoked")

    name = unique("ev-revoke-user")
    c1, c2 = client.create(name), client.create(name)
    validate_response(client.delete(f"/v1/users/{name}/sessions"), 200)
    check_event("ended", sub.wait_ended(c1["id"]), c1, "revoked")
    check_event("ended", sub.wait_ended(c2["id"]), c2, "revoked")
    assert "not-in-events" not in bytes(sub.raw).decode("utf-8", "replace"), "session data leaked into events"


def test_rotation_is_not_an_ending_and_leaks_no_token(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    a = client.create(unique("ev-rotate"))
    sub.wait_created(a["id"])
    rotated = validate_response(client.post("/v1/session/rotate", session_token=a["token"]), 200)
    validate_response(client.delete("/v1/session", session_token=rotated["token"]), 204)
    data = sub.wait_ended(a["id"])
    assert data["reason"] == "logout", f"the first ending of a rotated session must be its logout: {data}"
    ends = [d for e, d in sub.history if e == "ended" and d.get("id") == a["id"]]
    assert len(ends) == 1, ends
    raw = bytes(sub.raw).decode("utf-8", "replace")
    assert a["token"] not in raw and rotated["token"] not in raw


def test_ended_idle_and_absolute_timeout(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    idle = client.create(unique("ev-idle"), idleTimeout=2)
    absolute = client.create(unique("ev-abs"), maxLifetime=2)
    # Nobody reads these sessions: the reaper ends them, a little after 2 s.
    d = sub.wait_ended(idle["id"], timeout=6)
    check_event("ended", d, idle, "idle_timeout")
    d2 = sub.wait_ended(absolute["id"], timeout=6)
    check_event("ended", d2, absolute, "absolute_timeout")
    # Ended at the deadline (the end time is the deadline), not at some arbitrary later time.
    assert abs(parse_time(d["at"]) - parse_time(idle["idleExpiresAt"])) < 1.0, (d, idle)
    assert abs(parse_time(d2["at"]) - parse_time(absolute["expiresAt"])) < 1.0, (d2, absolute)
    if "lifetime" in d:
        assert 1.9 <= d["lifetime"] <= 3.0, d


def test_ended_evicted(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    before = client.config()
    name = unique("ev-evict")
    try:
        client.patch_config(maxSessionsPerUser=1, sessionLimitPolicy="evict_oldest")
        a = client.create(name)
        b = client.create(name)
        check_event("ended", sub.wait_ended(a["id"]), a, "evicted")
        check_event("created", sub.wait_created(b["id"]), b)
    finally:
        client.patch_config(maxSessionsPerUser=before["maxSessionsPerUser"],
                            sessionLimitPolicy=before["sessionLimitPolicy"])


def test_two_subscribers_both_get_events(server, client, subscriber):
    s1, s2 = subscriber(), subscriber()
    subscriber.sync(s1, s2)
    a = client.create(unique("ev-two"))
    validate_response(client.delete("/v1/session", session_token=a["token"]), 204)
    for s in (s1, s2):
        check_event("created", s.wait_created(a["id"]), a)
        check_event("ended", s.wait_ended(a["id"]), a, "logout")
    # One leaves; the other still gets events.
    s1.close()
    b = client.create(unique("ev-two-b"))
    check_event("created", s2.wait_created(b["id"]), b)


def test_events_in_order_for_a_session(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    ids = [client.create(unique("ev-order"))["id"] for _ in range(20)]
    for sid in ids:
        validate_response(client.delete(f"/v1/sessions/{sid}"), 204)
    sub.wait_ended(ids[-1])
    end = time.monotonic() + 5
    while time.monotonic() < end:
        with sub.cond:
            seen = [(ev, data["id"]) for ev, data in sub.history if data and data.get("id") in ids]
        if len(seen) >= 40:
            break
        time.sleep(0.1)
    assert len(seen) == 40, f"expected 40 events, got {len(seen)}"
    for sid in ids:
        mine = [e for e, i in seen if i == sid]
        assert mine == ["created", "ended"], (sid, mine)


def test_delete_all_ends_with_revoked(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    sessions = [client.create(unique("ev-all")) for _ in range(3)]
    client.delete_all()
    for s in sessions:
        check_event("ended", sub.wait_ended(s["id"]), s, "revoked")


def test_events_need_the_api_token(server):
    anon = server.client(api_token=None)
    r = anon.get("/v1/events", timeout=5)
    assert_error(r, 401, "api_token_missing")
    wrong = server.client(api_token="not-the-token")
    assert_error(wrong.get("/v1/events", timeout=5), 403, "api_token_invalid")
    server.assert_serving()


def test_too_many_subscribers(make_server):
    srv = make_server(args=["--max-event-subscribers", "2"])
    s1, s2 = EventStream(srv, timeout=5), EventStream(srv, timeout=5)
    try:
        assert s1.status == 200 and s2.status == 200
        assert_error(srv.client().get("/v1/events", timeout=5), 429, "too_many_subscribers")
        s1.close()
        # The slot is released once the server notices the subscriber left.
        end = time.monotonic() + 5
        while True:
            r = srv.client().get("/v1/events", timeout=5, stream=True)
            if r.status_code == 200 or time.monotonic() > end:
                break
            assert_error(r, 429, "too_many_subscribers")
            time.sleep(0.2)
        assert r.status_code == 200, "a subscriber slot was not released after a subscriber left"
        r.close()
        srv.assert_serving()
    finally:
        s1.close()
        s2.close()


def test_keep_alive_comment_every_15_seconds(server, subscriber):
    sub = subscriber()
    t0 = time.monotonic()
    end = t0 + 17.5
    while time.monotonic() < end:
        if any(c.startswith(": keep-alive") for c in sub.comments):
            break
        time.sleep(0.2)
    assert any(c.startswith(": keep-alive") for c in sub.comments), (
        f"no ': keep-alive' comment within 17.5 s; comments: {sub.comments}")
    assert not sub.closed.is_set(), "the stream closed"


# --------------------------------------------------------------------------------------------------
# Resuming with Last-Event-ID
# --------------------------------------------------------------------------------------------------


def id_key(event_id: str) -> tuple:
    """A sortable key of an event id, which is opaque to clients: an in-process store numbers its
    events (``<epoch>-<n>``), a Redis store names a position in its partitions' streams
    (``<store>:<ms>-<seq>:<partition>``, docs/api.md). The first element names the feed."""
    if ":" in event_id:
        store, entry, partition = event_id.split(":")
        ms, seq = entry.split("-")
        return (store, int(ms), int(seq), int(partition))
    epoch, _, number = event_id.partition("-")
    return (epoch, int(number))


def future_id(event_id: str) -> str:
    """An id of the same feed far ahead of ``event_id``: no event has it yet."""
    key = id_key(event_id)
    if len(key) == 4:
        return f"{key[0]}:{key[1] + 10**9}-0:{key[3]}"
    return f"{key[0]}-{key[1] + 1_000_000}"


def ids_after(stream: "EventStream", last_id: str, through: str) -> list[str]:
    """The ids ``stream`` received after ``last_id`` up to and including ``through``."""
    ids = [i for _, _, i in stream.session_events()]
    start = ids.index(last_id) + 1 if last_id in ids else 0
    return ids[start:ids.index(through) + 1]


def test_events_carry_increasing_ids(server, client, subscriber):
    sub = subscriber()
    subscriber.sync(sub)
    a = client.create(unique("ids"))
    validate_response(client.delete(f"/v1/sessions/{a['id']}"), 204)
    sub.wait_ended(a["id"])
    ids = [i for _, _, i in sub.session_events()]
    assert all(i is not None for i in ids), ids
    assert len({id_key(i)[0] for i in ids}) == 1, ids
    keys = [id_key(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), ids
    if len(keys[0]) == 2:  # an in-process store numbers its events without holes
        numbers = [k[1] for k in keys]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers


def test_resuming_replays_missed_events_in_order_then_live_ones(server, client, subscriber):
    reference = subscriber()  # connected throughout: sees every event
    first = subscriber()
    subscriber.sync(first, reference)
    last_id = first.session_events()[-1][2]
    first.close()
    missed = [client.create(unique("missed")) for _ in range(3)]
    validate_response(client.delete(f"/v1/sessions/{missed[0]['id']}"), 204)

    resumed = EventStream(server, last_event_id=last_id)
    try:
        assert resumed.status == 200
        live = client.create(unique("live"))
        resumed.wait_created(live["id"])
        reference.wait_created(live["id"])
        events = resumed.session_events()
        assert not any(e == "gap" for e, _ in resumed.history), resumed.history
        # Everything after the last seen event, once, without a hole; nothing seen before comes back.
        live_id = next(i for e, d, i in events if e == "created" and d["id"] == live["id"])
        assert [i for _, _, i in events] == ids_after(reference, last_id, live_id)
        assert all(id_key(i) > id_key(last_id) for _, _, i in events)
        order = [(e, d["id"]) for e, d, _ in events]
        expected = [("created", m["id"]) for m in missed] + [("ended", missed[0]["id"]), ("created", live["id"])]
        assert [x for x in order if x in expected] == expected, order
        check_event("ended", events[order.index(("ended", missed[0]["id"]))][1], missed[0], "revoked")
    finally:
        resumed.close()
        assert TOKEN_RE.search(bytes(resumed.raw).decode("utf-8", "replace")) is None


@pytest.mark.parametrize("bad_id", ["garbage", "0-1", "", "-", "ffffffffffffffff-1"])
def test_an_unknown_last_event_id_gets_a_gap_event_then_live_events(server, client, subscriber, bad_id):
    sub = subscriber()
    subscriber.sync(sub)
    for last_id in [bad_id, future_id(sub.session_events()[-1][2])]:
        stream = EventStream(server, last_event_id=last_id)
        try:
            assert stream.status == 200
            live = client.create(unique("after-gap"))
            stream.wait_created(live["id"])
            kinds = [e for e, _ in stream.history]
            if last_id == "":
                assert "gap" not in kinds, kinds  # an empty id is no id
            else:
                assert kinds[0] == "gap", kinds
                assert stream.history[0][1] == {"type": "gap", "reason": "unknown_id"}
                assert stream.ids[0] is None
        finally:
            stream.close()


def test_resuming_after_more_events_than_are_kept_gets_an_evicted_gap(make_server):
    srv = make_server()
    cl = srv.client()
    reference = EventStream(srv)  # connected throughout: sees every event
    first = EventStream(srv)
    try:
        probe = cl.create(unique("probe"))
        first.wait_created(probe["id"])
        reference.wait_created(probe["id"])
        last_id = first.session_events()[-1][2]
    finally:
        first.close()
    # Half the 256 KiB subscriber buffer is kept: ~600 events of this size. 1,200 do not fit.
    made = [cl.create(unique("flood"))["id"] for _ in range(1200)]
    resumed = EventStream(srv, last_event_id=last_id)
    try:
        assert resumed.status == 200
        resumed.wait_created(made[-1])
        reference.wait_created(made[-1], timeout=15)
        assert resumed.history[0] == ("gap", {"type": "gap", "reason": "evicted"}), resumed.history[:2]
        replayed = [i for _, _, i in resumed.session_events()]
        # What is replayed is the newest events, without a hole, up to the latest.
        assert len(replayed) >= 300, len(replayed)
        everything = [i for _, _, i in reference.session_events()]
        start = everything.index(replayed[0])
        assert replayed == everything[start:start + len(replayed)]
        assert replayed[-1] == everything[-1]
        assert start > everything.index(last_id) + 1
        srv.assert_serving()
    finally:
        resumed.close()
        reference.close()
