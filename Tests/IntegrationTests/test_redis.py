"""Several sessiond instances on one Redis (--storage redis): one truth for every instance, each
session ended exactly once, events that cross instances, and failing closed when Redis is away.

Every test starts its own redis-server (redis_servers.RedisServer) on a free loopback port and its own
sessiond instances on it. The module runs only under SESSIOND_TEST_STORAGE=redis; with
SESSIOND_TEST_REDIS=cluster every test's Redis is a cluster of three primaries (redis_servers.RedisCluster)
instead, and the tests of one server's particulars (its keys, its password, kill -9 with an AOF) are
skipped.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import threading
import time

import pytest
import requests

from metrics_samples import metric, scrape
from openapi_contract import assert_error, validate_response
from redis_servers import RedisCluster, RedisServer, free_port
from sessiond_server import REDIS_TOPOLOGY, unique, unknown_token
from test_events import EventStream, id_key

pytestmark = pytest.mark.storage("redis")


@pytest.fixture
def redis(tmp_path):
    """Starts Redis servers for a test (``redis(args)``), stopped at its end: one server, or a cluster
    of three primaries under SESSIOND_TEST_REDIS=cluster."""
    started: list[RedisServer | RedisCluster] = []

    def factory(args: list[str] | None = None, port: int | None = None) -> RedisServer | RedisCluster:
        if REDIS_TOPOLOGY == "cluster":
            server = RedisCluster(tmp_path / f"redis{len(started)}", args=args)
        else:
            server = RedisServer(tmp_path / f"redis{len(started)}", args=args, port=port)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


def instances(make_server, store: RedisServer, count: int, args: list[str] | None = None) -> list:
    return [make_server(args=["--storage", "redis", "--redis-url", store.url] + (args or [])) for _ in range(count)]


# --------------------------------------------------------------------------------------------------
# One truth
# --------------------------------------------------------------------------------------------------


def test_every_instance_sees_every_change_at_once(make_server, redis):
    a, b, c = instances(make_server, redis(), 3)
    ca, cb, cc = a.client(), b.client(), c.client()
    name = unique("shared")
    created = ca.create(name, data={"cart": [1]})
    token = created["token"]
    # Validate and data on B, the same session.
    view = validate_response(cb.validate(token), 200)
    assert view["id"] == created["id"] and view["data"] == {"cart": [1]}
    validate_response(cb.put("/v1/session/data", session_token=token, json_body={"data": {"cart": [2]}}), 200)
    assert validate_response(cc.get("/v1/session/data", session_token=token), 200) == {"data": {"cart": [2]}}
    assert validate_response(ca.get(f"/v1/sessions/{created['id']}"), 200)["data"] == {"cart": [2]}
    # Rotation on C: the old token stops working everywhere, the new one works everywhere.
    rotated = validate_response(cc.post("/v1/session/rotate", session_token=token), 200)
    for client in (ca, cb, cc):
        assert_error(client.validate(token), 401, "session_unknown")
        validate_response(client.validate(rotated["token"]), 200)
    # Logout on C: unknown on A and B at the next request.
    assert cc.delete("/v1/session", session_token=rotated["token"]).status_code == 204
    for client in (ca, cb):
        assert_error(client.validate(rotated["token"]), 401, "session_unknown")
    # Revoke-all on A ends the user's sessions created on B and C.
    others = [cb.create(name)["token"], cc.create(name)["token"]]
    assert validate_response(ca.delete(f"/v1/users/{name}/sessions"), 200) == {"deleted": 2}
    for token in others:
        assert_error(cb.validate(token), 401, "session_unknown")
    # Configuration changed on B applies to creations on A at once.
    cb.patch_config(maxSessionsPerUser=1, sessionLimitPolicy="reject")
    assert ca.config()["maxSessionsPerUser"] == 1
    capped = unique("capped")
    ca.create(capped)
    assert_error(cc.post("/v1/sessions", json_body={"username": capped}), 409, "session_limit_reached")


def test_a_second_instance_starts_at_once_on_the_same_store(make_server, redis):
    store = redis()
    first = instances(make_server, store, 1)[0]
    tokens = [first.client().create(unique("early"))["token"] for _ in range(50)]
    started = time.monotonic()
    second = instances(make_server, store, 1)[0]
    assert time.monotonic() - started < 5, "the second instance took long to start"
    line = second.startup_line()
    assert "store_created=false" in line and "storage=redis" in line, line
    assert re.search(r"store=([0-9a-f]{12})", line).group(1) == re.search(r"store=([0-9a-f]{12})", first.startup_line()).group(1)
    assert "sessions=50" in line, line
    for token in tokens:
        validate_response(second.client().validate(token), 200)


@pytest.mark.parametrize("policy", ["reject", "evict_oldest"])
def test_the_per_user_cap_holds_under_concurrent_logins_on_every_instance(make_server, redis, policy):
    servers = instances(make_server, redis(), 3, ["--max-sessions-per-user", "3", "--session-limit-policy", policy])
    name = unique("cap")

    def login(index: int) -> int:
        return servers[index % 3].client().post("/v1/sessions", json_body={"username": name}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(login, range(60)))
    assert set(statuses) <= {201, 409}, statuses
    if policy == "reject":
        assert statuses.count(201) == 3, statuses
    else:
        assert statuses.count(201) == 60, statuses
    for server in servers:
        live = server.client().list_sessions(username=name)
        assert len(live) == 3, live
        users = {u["username"]: u["sessionCount"] for u in server.client().list_users()}
        assert users[name] == 3


# --------------------------------------------------------------------------------------------------
# Exactly-once expiry and events across instances
# --------------------------------------------------------------------------------------------------


def test_ten_thousand_expiries_end_once_each_seen_once_by_every_instance(make_server, redis):
    servers = instances(make_server, redis(), 3)
    streams = [EventStream(server, timeout=60) for server in servers]
    try:
        for stream in streams:
            assert stream.status == 200
        names = [unique(f"exp{index % 100}") for index in range(100)]
        local = threading.local()

        def create(index: int) -> str:
            if not hasattr(local, "clients"):
                local.clients = [server.client() for server in servers]
            client = local.clients[index % 3]
            response = client.post("/v1/sessions", json_body={"username": names[index % 100], "idleTimeout": 2})
            assert response.status_code == 201, response.text
            return response.json()["id"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            ids = set(pool.map(create, range(10_000)))
        assert len(ids) == 10_000

        def ended(stream) -> list[str]:
            return [d["id"] for e, d, _ in stream.session_events() if e == "ended" and d["id"] in ids]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(len(ended(s)) < 10_000 for s in streams):
            time.sleep(0.5)
        orders = [ended(s) for s in streams]
        for order in orders:
            assert len(order) == 10_000 and set(order) == ids, (len(order), len(set(order)))
        assert orders[0] == orders[1] == orders[2], "instances delivered the endings in different orders"
        for stream in streams:
            reasons = {d["reason"] for e, d, _ in stream.session_events() if e == "ended" and d["id"] in ids}
            assert reasons == {"idle_timeout"}, reasons
            keys = [id_key(i) for _, _, i in stream.session_events()]
            assert keys == sorted(keys) and len(set(keys)) == len(keys)

        expired = [metric(scrape(s), "sessiond_sessions_expired_total", reason="idle_timeout") for s in servers]
        assert sum(expired) == 10_000, expired
        created = [metric(scrape(s), "sessiond_sessions_created_total") for s in servers]
        assert sum(created) == 10_000, created
        # Every instance reports the whole store; a listing agrees.
        for server in servers:
            samples = scrape(server)
            assert metric(samples, "sessiond_sessions_active") == len(server.client().list_sessions()) == 0
            assert metric(samples, "sessiond_realtime_users") == 0
    finally:
        for stream in streams:
            stream.close()


def test_store_gauges_agree_with_a_listing_on_every_instance(make_server, redis):
    servers = instances(make_server, redis(), 2)
    client = servers[0].client()
    names = [unique("gauge") for _ in range(7)]
    tokens = [client.create(names[index % 7])["token"] for index in range(20)]
    assert servers[1].client().delete("/v1/session", session_token=tokens[0]).status_code == 204
    for server in servers:
        samples = scrape(server)
        sessions = server.client().list_sessions()
        users = server.client().list_users()
        assert metric(samples, "sessiond_sessions_active") == len(sessions) == 19
        assert metric(samples, "sessiond_realtime_users") == len(users) == 7
        assert metric(samples, "sessiond_users_seen", window="1m") == 7
        stores = {labels.get("store") for name, labels, _ in samples if name == "sessiond_sessions_active"}
        assert len(stores) == 1 and re.fullmatch(r"[0-9a-f]{12}", stores.pop())


def test_a_subscriber_resumes_on_another_instance_without_loss_or_repeat(make_server, redis):
    a, b = instances(make_server, redis(), 2)
    reference = EventStream(b)
    first = EventStream(a)
    try:
        probe = a.client().create(unique("probe"))
        first.wait_created(probe["id"])
        reference.wait_created(probe["id"])
        last_id = first.session_events()[-1][2]
        first.close()
        missed = [a.client().create(unique("missed"))["id"] for _ in range(5)]
        validate_response(b.client().delete(f"/v1/sessions/{missed[0]}"), 204)
        resumed = EventStream(b, last_event_id=last_id)
        try:
            live = a.client().create(unique("live"))["id"]
            resumed.wait_created(live)
            reference.wait_created(live)
            got = [i for _, _, i in resumed.session_events()]
            everything = [i for _, _, i in reference.session_events()]
            start = everything.index(last_id) + 1
            assert got == everything[start:everything.index(got[-1]) + 1], (got, everything)
            assert not any(e == "gap" for e, _ in resumed.history)
        finally:
            resumed.close()
        # An id of another store gets a gap (one older than what is kept: test_events.py).
        foreign = EventStream(b, last_event_id="000000000000:1-0:0")
        try:
            live = a.client().create(unique("after-foreign"))["id"]
            foreign.wait_created(live)
            assert foreign.history[0] == ("gap", {"type": "gap", "reason": "unknown_id"})
        finally:
            foreign.close()
    finally:
        first.close()
        reference.close()


# --------------------------------------------------------------------------------------------------
# Failing closed, recovering, losing nothing acknowledged
# --------------------------------------------------------------------------------------------------


def test_redis_down_answers_503_at_once_and_recovers_without_a_restart(make_server, redis):
    store = redis(["--appendonly", "yes", "--appendfsync", "always"])
    server = instances(make_server, store, 1)[0]
    client = server.client()
    token = client.create(unique("before"))["token"]
    # Logins and validations go on while Redis stops: each is answered, 2xx or 503, within a second.
    stop = threading.Event()
    answers: list[tuple[int, float, str]] = []

    def traffic():
        session = server.client()
        while not stop.is_set():
            started = time.monotonic()
            response = session.post("/v1/sessions", json_body={"username": unique("load")}, timeout=5)
            code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
            answers.append((response.status_code, time.monotonic() - started, code))
            session.validate(token, refresh=False)

    worker = threading.Thread(target=traffic)
    worker.start()
    time.sleep(0.3)
    store.stop()
    time.sleep(1.0)
    stop.set()
    worker.join()
    assert {status for status, _, _ in answers} <= {201, 503}, answers
    assert {code for status, _, code in answers if status == 503} <= {"storage_unavailable"}, answers
    assert max(elapsed for _, elapsed, _ in answers) < 1.0, max(answers, key=lambda a: a[1])
    assert any(status == 503 for status, _, _ in answers) and any(status == 201 for status, _, _ in answers)
    deadline = time.monotonic() + 5
    while requests.get(server.base + "/readyz", timeout=2).status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = requests.get(server.base + "/readyz", timeout=2)
    assert_error(ready, 503, "storage_unavailable")
    for call in (lambda: client.validate(token), lambda: client.post("/v1/sessions", json_body={"username": "x"}),
                 lambda: client.get("/v1/sessions"), lambda: client.get("/v1/config")):
        started = time.monotonic()
        response = call()
        assert time.monotonic() - started < 1.0, "a call waited for the unreachable Redis"
        body = assert_error(response, 503, "storage_unavailable")
        assert response.headers.get("Retry-After") == "1", body
    samples = scrape(server)
    assert metric(samples, "sessiond_redis_up") == 0
    assert metric(samples, "sessiond_sessions_active") is None, "a store gauge was served while Redis is away"
    assert (metric(samples, "sessiond_redis_errors_total", error="connect") or 0) > 0

    store.start()
    deadline = time.monotonic() + 10
    while requests.get(server.base + "/readyz", timeout=2).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    validate_response(client.validate(token), 200)
    client.create(unique("after"))
    samples = scrape(server)
    assert metric(samples, "sessiond_redis_up") == 1
    # The login before, the one after, every acknowledged load login; a 503 whose command was already
    # written when Redis went away may or may not have been carried out.
    acknowledged = sum(1 for status, _, _ in answers if status == 201)
    assert 2 + acknowledged <= metric(samples, "sessiond_sessions_active") <= 2 + len(answers)
    assert (metric(samples, "sessiond_redis_reconnects_total") or 0) >= 1


@pytest.mark.redis_topology("standalone")
def test_kill_9_of_redis_with_appendfsync_always_loses_nothing_acknowledged(make_server, redis):
    store = redis(["--appendonly", "yes", "--appendfsync", "always"])
    server = instances(make_server, store, 1)[0]
    client = server.client()
    live: dict[str, str] = {}  # token -> id of acknowledged logins not logged out
    ended: list[str] = []  # tokens of acknowledged logouts
    acknowledged = [0]  # logins answered 201, all rounds
    for round_number in range(10):
        stop = threading.Event()
        lock = threading.Lock()

        def traffic():
            session = server.client()
            logins = 0
            while not stop.is_set():
                try:
                    response = session.post("/v1/sessions", json_body={"username": unique("crash")}, timeout=2)
                    if response.status_code == 201:
                        logins += 1
                        with lock:
                            live[response.json()["token"]] = response.json()["id"]
                            acknowledged[0] += 1
                    # Every third login, the oldest live session logs out.
                    with lock:
                        victim = next(iter(live), None) if response.status_code == 201 and logins % 3 == 0 else None
                    if victim:
                        # A logout not answered 204 may still have been carried out (Redis was killed
                        # after its write): that session is no longer known to be live either way.
                        with lock:
                            live.pop(victim, None)
                        answer = session.delete("/v1/session", session_token=victim, timeout=2)
                        if answer.status_code == 204:
                            with lock:
                                ended.append(victim)
                except requests.RequestException:
                    pass
                time.sleep(0.05)  # about 20 logins a second

        # Each round kills Redis after at least 9 more acknowledged logins (however slow its fsync is
        # on this disk), at a moment that differs from round to round.
        with lock:
            wanted = acknowledged[0] + 9
        worker = threading.Thread(target=traffic)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if acknowledged[0] >= wanted:
                    break
            time.sleep(0.01)
        time.sleep(0.07 * round_number)
        store.kill9()
        time.sleep(0.2)
        stop.set()
        worker.join()
        store.start()
        deadline = time.monotonic() + 10
        while requests.get(server.base + "/readyz", timeout=2).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(live) > 50 and len(ended) > 5, (len(live), len(ended))
    for token in live:
        validate_response(client.validate(token, refresh=False), 200)
    for token in ended:
        assert_error(client.validate(token), 401, "session_unknown")


def test_a_rolling_restart_loses_no_acknowledged_change(make_server, redis):
    servers = instances(make_server, redis(), 3)
    acknowledged: dict[str, str] = {}  # token -> "live" or "ended"
    lock = threading.Lock()
    stop = threading.Event()

    def traffic(seed: int):
        clients = [server.client() for server in servers]
        index = seed
        while not stop.is_set():
            index += 1
            client = clients[index % 3]
            try:
                response = client.post("/v1/sessions", json_body={"username": unique("roll")}, timeout=2)
                if response.status_code == 201:
                    token = response.json()["token"]
                    with lock:
                        acknowledged[token] = "live"
                    if index % 4 == 0:
                        # Until its logout is answered 204, the session may or may not have ended.
                        with lock:
                            acknowledged[token] = "uncertain"
                        answer = clients[(index + 1) % 3].delete("/v1/session", session_token=token, timeout=2)
                        if answer.status_code == 204:
                            with lock:
                                acknowledged[token] = "ended"
            except requests.RequestException:
                pass  # the instance is restarting: nothing was acknowledged
            time.sleep(0.01)

    workers = [threading.Thread(target=traffic, args=(seed,)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for server in servers:  # one instance at a time, as a deploy does
        time.sleep(0.5)
        assert server.stop() == 0
        server.start()
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join()
    assert len(acknowledged) > 100, len(acknowledged)
    for server in servers:
        client = server.client()
        for token, state in acknowledged.items():
            if state == "live":
                validate_response(client.validate(token, refresh=False), 200)
            elif state == "ended":
                assert_error(client.validate(token, refresh=False), 401, "session_unknown")
    assert sum(1 for state in acknowledged.values() if state == "ended") > 10


@pytest.mark.redis_topology("standalone")
def test_writes_wait_for_the_replica_and_reads_never_wait_behind_them(make_server, redis, tmp_path):
    """--redis-wait-replicas 1 on one server and its replica: a login is acknowledged once the replica
    has it. While the replica does not answer, a login waits out one WAIT (--redis-wait-timeout) and
    is refused 503 storage_unavailable (counted as unconfirmed), the next ones at once for a second,
    and a validation sent while that WAIT runs is answered before it (writes that wait for replicas
    have a connection of their own); once the replica answers again, logins are acknowledged again."""
    primary = redis(["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"])
    replica = RedisServer(tmp_path / "replica", args=["--replicaof", "127.0.0.1", str(primary.port),
                                                      "--repl-diskless-load", "on-empty-db"]).start()
    try:
        server = instances(make_server, primary, 1, ["--redis-wait-replicas", "1", "--redis-timeout", "2",
                                                     "--redis-wait-timeout", "1"])[0]
        assert "redis_wait_timeout_ms=1000" in server.startup_line(), server.startup_line()
        client = server.client()

        def login_when_confirmed(within: float) -> str:
            # Redis streams writes to a new replica once it has acknowledged its full sync (a second).
            deadline = time.monotonic() + within
            while True:
                response = client.post("/v1/sessions", json_body={"username": unique("confirmed")})
                if response.status_code == 201:
                    return response.json()["token"]
                assert_error(response, 503, "storage_unavailable")
                assert time.monotonic() < deadline, "logins were not confirmed by the replica"
                time.sleep(0.1)

        token = login_when_confirmed(10)
        assert primary.command("DBSIZE") == replica.command("DBSIZE"), "an acknowledged login is not on the replica"

        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            finished: list[tuple[str, float, int]] = []
            started = time.monotonic()

            def login():
                response = server.client().post("/v1/sessions", json_body={"username": unique("unconfirmed")})
                finished.append(("login", time.monotonic() - started, response.status_code))

            writer = threading.Thread(target=login)
            writer.start()
            time.sleep(0.02)
            response = server.client().validate(token, refresh=False)
            finished.append(("validation", time.monotonic() - started, response.status_code))
            writer.join()
            assert [(what, status) for what, _, status in finished] == [("validation", 200), ("login", 503)], finished
            assert finished[1][1] >= 0.95, f"the login did not wait out the WAIT (1 s): {finished}"
            began = time.monotonic()
            assert_error(client.post("/v1/sessions", json_body={"username": unique("held")}), 503,
                         "storage_unavailable")
            assert time.monotonic() - began < 0.6, "a login waited while writes are held back"
            assert (metric(scrape(server), "sessiond_redis_errors_total", error="unconfirmed") or 0) >= 2
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        login_when_confirmed(5)
    finally:
        replica.stop()


@pytest.mark.parametrize("wait_timeout", ["0.25", "0.5", "0", "-1", "nan", "61"])
def test_a_wait_timeout_out_of_range_is_refused(make_server, wait_timeout):
    """--redis-wait-timeout must be a positive number of seconds below --redis-timeout (0.25 s here); it
    is refused before sessiond connects to Redis."""
    url = f"redis://127.0.0.1:{free_port()}"
    server = make_server(args=["--storage", "redis", "--redis-url", url, "--redis-wait-replicas", "1",
                               f"--redis-wait-timeout={wait_timeout}"], start=False)
    server.launch()
    assert server.proc.wait(timeout=20) == 2
    assert "--redis-wait-timeout must be" in server.stderr_text(), server.stderr_text()[-2000:]


def test_kill_9_of_one_instance_leaves_the_others_serving(make_server, redis):
    a, b, c = instances(make_server, redis(), 3)
    tokens = [a.client().create(unique("survivor"))["token"] for _ in range(20)]
    a.kill9()
    for server in (b, c):
        for token in tokens:
            validate_response(server.client().validate(token), 200)
        server.client().create(unique("after-kill"))


def test_an_evicting_redis_is_refused_naming_the_setting(make_server, redis):
    store = redis(["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"])
    server = make_server(args=["--storage", "redis", "--redis-url", store.url], start=False)
    server.launch()
    assert server.proc.wait(timeout=20) == 2
    text = server.stderr_text()
    assert "maxmemory-policy is allkeys-lru" in text and "noeviction" in text, text[-2000:]


def test_an_unreachable_redis_at_start_is_a_clear_error(make_server):
    server = make_server(args=["--storage", "redis", "--redis-url", f"redis://127.0.0.1:{free_port()}"], start=False)
    server.launch()
    assert server.proc.wait(timeout=20) == 2
    assert "redis:" in server.stderr_text() and "sessiond cannot start" in server.stderr_text()


# --------------------------------------------------------------------------------------------------
# Hostile usernames and tokens
# --------------------------------------------------------------------------------------------------

HOSTILE_NAMES = ["{0}", "}{", "a{b}c", "x:y", "with space", "sd:{1}:u:evil", "{", "}", "ü{}:", "*", "\\", "%00"]


@pytest.mark.redis_topology("standalone")
def test_usernames_cannot_reach_other_keys_or_break_the_hash_tag(make_server, redis):
    store = redis()
    server = instances(make_server, store, 1)[0]
    client = server.client()
    tokens = {name: client.create(name)["token"] for name in HOSTILE_NAMES}
    users = {u["username"]: u["sessionCount"] for u in client.list_users()}
    assert users == {name: 1 for name in HOSTILE_NAMES}, users
    for name in HOSTILE_NAMES:
        sessions = client.list_sessions(username=name)
        assert [s["username"] for s in sessions] == [name]
    # Revoking one user's sessions touches nobody else.
    assert validate_response(client.delete("/v1/users/%7B0%7D/sessions"), 200) == {"deleted": 1}
    for name, token in tokens.items():
        if name == "{0}":
            assert_error(client.validate(token), 401, "session_unknown")
        else:
            validate_response(client.validate(token), 200)
    # Every key is the store's, and every partition key's hash tag is the partition number.
    keys = store.command("KEYS", "*") or b""
    names = re.findall(rb"\$\d+\r\n(.*?)\r\n", keys, re.S)
    assert names, keys[:200]
    for key in names:
        assert key.startswith(b"sd:"), key
        if key not in (b"sd:meta", b"sd:config"):
            assert re.match(rb"^sd:\{\d+\}:", key), key
    # Control characters are refused, as with every backend.
    assert_error(client.post("/v1/sessions", json_body={"username": "a\nb"}), 400, "invalid_username")


def test_a_token_whose_partition_is_out_of_range_is_malformed(make_server, redis):
    server = instances(make_server, redis(), 1)[0]
    client = server.client()
    # The first three characters hold the partition: "___" is partition 65535, past this store's 128.
    assert_error(client.validate("usm____" + "A" * 40), 401, "session_token_malformed")
    assert_error(client.validate(unknown_token()), 401, "session_unknown")
    token = client.create(unique("in-range"))["token"]
    validate_response(client.validate(token), 200)


# --------------------------------------------------------------------------------------------------
# The Redis password stays out of logs and metrics
# --------------------------------------------------------------------------------------------------


@pytest.mark.redis_topology("standalone")
@pytest.mark.parametrize("how", ["url in the environment", "password file"])
def test_the_redis_password_is_used_and_never_logged(make_server, redis, tmp_path, how):
    import secrets as pysecrets

    password = "redis-" + pysecrets.token_urlsafe(24)
    store = redis(["--requirepass", password])
    if how == "password file":
        path = tmp_path / "redis-password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        server = make_server(args=["--storage", "redis", "--redis-url", store.url, "--redis-password-file", str(path),
                                   "--log-level", "trace"])
    else:
        server = make_server(args=["--storage", "redis", "--log-level", "trace"],
                             env={"SESSIOND_REDIS_URL": f"redis://:{password}@127.0.0.1:{store.port}"})
    client = server.client()
    session = client.create(unique("auth"))
    assert client.validate(session["token"]).status_code == 200
    metrics = server.client(api_token=None).get("/metrics").text
    assert password not in server.stderr_text() and password not in metrics

    # A wrong password is refused at start, and not echoed either.
    wrong = "wrong-" + pysecrets.token_urlsafe(24)
    refused = make_server(args=["--storage", "redis", "--redis-url", f"redis://:{wrong}@127.0.0.1:{store.port}"],
                          start=False)
    refused.launch()
    assert refused.proc.wait(timeout=20) == 2
    text = refused.stderr_text()
    assert "redis" in text and wrong not in text, text[-2000:]
