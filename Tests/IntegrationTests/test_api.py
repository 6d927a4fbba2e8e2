"""Happy paths of every route, validated against openapi.yaml, and the main scenarios over HTTP."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

from openapi_contract import ID_RE, TOKEN_RE, assert_error, assert_time, parse_time, validate_response
from sessiond_server import snapshot_state, unchanged, unique

SERVER_ARGS = ["--idle-timeout", "600", "--max-lifetime", "7200"]
MS = 0.0015  # tolerance for millisecond-rounded timestamps


def check_session_view(s: dict, username: str | None = None) -> None:
    assert ID_RE.match(s["id"]), s
    assert "token" not in s, f"a session view must never carry a token: {s}"
    for k in ("createdAt", "lastSeenAt", "idleExpiresAt", "expiresAt"):
        assert_time(s[k], k)
    if username is not None:
        assert s["username"] == username
    created, seen = parse_time(s["createdAt"]), parse_time(s["lastSeenAt"])
    idle, expires = parse_time(s["idleExpiresAt"]), parse_time(s["expiresAt"])
    assert created <= seen + MS, s
    # idleExpiresAt = lastSeenAt + idleTimeout (or the absolute deadline, if a server clamps to it).
    assert abs(idle - (seen + s["idleTimeout"])) <= MS or (
        abs(idle - expires) <= MS and seen + s["idleTimeout"] >= expires), s


# --------------------------------------------------------------------------------------------------


def test_healthz_and_readyz_need_no_token(server):
    c = server.client(api_token=None)
    for path in ("/healthz", "/readyz"):
        r = c.get(path)
        body = validate_response(r, 200)
        assert isinstance(body["status"], str) and body["status"]


def test_every_error_code_the_server_sends_is_documented():
    """Every error code in the sources (APIError's `code: "..."`, SessionError's and HTTPServerError's
    `Code("...")`, which the API renders in its error shape) is
    in openapi.yaml's Error.code enum and in docs/api.md's error list, and the enum lists nothing else.
    A client that validates error bodies against the document must not reject a real answer."""
    import re
    from openapi_contract import REPO, SPEC
    sent = set()
    for path in (REPO / "Sources").rglob("*.swift"):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("//"):
                continue  # doc comments show example codes of a generic HTTP library
            sent.update(re.findall(r'\bcode: "([a-z_]+)"', line))
            if path.name in ("SessionError.swift", "HTTPServerError.swift"):  # other error types never reach an HTTP body
                sent.update(re.findall(r'\bCode\("([a-z_]+)"\)', line))
    assert len(sent) > 20, sent
    documented = set(SPEC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert sent - documented == set(), "sent but not in openapi.yaml"
    assert documented - sent == set(), "in openapi.yaml but never sent"
    api_doc = (REPO / "docs" / "api.md").read_text()
    assert {code for code in sent if f"`{code}`" not in api_doc} == set(), "sent but not in docs/api.md"


def test_openapi_created_session_schema_admits_a_token(client):
    """openapi.yaml must describe the 201 of POST /v1/sessions (and the 200 of rotate) so that a real
    response validates as written: CreatedSession is allOf[Session, {token}], and Session has
    additionalProperties: false, which forbids the token. Fix the document (e.g. spell CreatedSession out
    with all Session properties plus token) - this test validates literally."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker
    from openapi_contract import schema

    s = client.create(unique("schema"))
    errors = list(OAS30Validator(schema("CreatedSession"), format_checker=oas30_format_checker).iter_errors(s))
    assert not errors, "openapi.yaml defect: " + "; ".join(e.message for e in errors)


def test_config_reflects_flags(client):
    cfg = client.config()
    assert cfg == {
        "idleTimeout": 600,
        "maxLifetime": 7200,
        "maxSessionsPerUser": None,
        "sessionLimitPolicy": "evict_oldest",  # SessionCore's default
        "maxDataBytes": 16384,
    }, cfg


def test_create_session_defaults(client):
    name = unique("create")
    t0 = time.time()
    s = client.create(name)
    t1 = time.time()
    check_session_view({k: v for k, v in s.items() if k != "token"}, name)
    assert "data" not in s, "a session without data has no data field"
    assert s["idleTimeout"] == 600
    created = parse_time(s["createdAt"])
    assert t0 - 1 <= created <= t1 + 1, "createdAt is not the current time"
    assert abs(parse_time(s["lastSeenAt"]) - created) <= MS
    assert abs(parse_time(s["idleExpiresAt"]) - (created + 600)) <= MS
    assert abs(parse_time(s["expiresAt"]) - (created + 7200)) <= MS
    # GET /v1/sessions/{id} shows the same session, without its token.
    r = client.get(f"/v1/sessions/{s['id']}")
    view = validate_response(r, 200)
    assert TOKEN_RE.search(r.text) is None
    assert view == {k: v for k, v in s.items() if k != "token"}


def test_create_session_with_data_and_timeouts(client):
    name = unique("create-data")
    data = {"theme": "dark", "cart": [1, 2.5, None, True], "name": "Zoë ✓", "nested": {"a": {"b": []}}}
    s = client.create(name, data=data, idleTimeout=30.5, maxLifetime=100)
    assert s["data"] == data
    assert s["idleTimeout"] == 30.5
    created = parse_time(s["createdAt"])
    assert abs(parse_time(s["idleExpiresAt"]) - (created + 30.5)) <= MS
    assert abs(parse_time(s["expiresAt"]) - (created + 100)) <= MS
    # A charset parameter on the JSON content type is accepted.
    r = client.post("/v1/sessions", data=json.dumps({"username": name}).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"})
    validate_response(r, 201)


def test_every_json_value_is_valid_data(client):
    tok = client.create(unique("values"))["token"]
    for value in ["text", 0, -12.5e3, True, False, [], {}, [[{"x": "y"}]], "😀\u00e9\\\"", 123456789012]:
        r = client.put("/v1/session/data", session_token=tok, json_body={"data": value})
        assert validate_response(r, 200) == {"data": value}
        r = client.get("/v1/session/data", session_token=tok)
        assert validate_response(r, 200) == {"data": value}


def test_validate_slides_and_refresh_false_only_checks(client):
    # With a shared store (Redis) a slide is recorded at most once per tenth of the idle timeout
    # (docs/api.md): an idle timeout of 2 s and waits of 0.25 s let every backend show each slide.
    name = unique("slide")
    s = client.create(name, idleTimeout=2)
    tok = s["token"]
    time.sleep(0.25)
    # refresh=false: valid, nothing moves.
    v0 = validate_response(client.validate(tok, refresh=False), 200)
    check_session_view(v0, name)
    assert v0["id"] == s["id"]
    assert v0["lastSeenAt"] == s["lastSeenAt"] and v0["idleExpiresAt"] == s["idleExpiresAt"]
    # Reading by id and reading data do not slide either.
    validate_response(client.get(f"/v1/sessions/{s['id']}"), 200)
    assert validate_response(client.get("/v1/session/data", session_token=tok), 200) == {"data": None}
    v1 = validate_response(client.get(f"/v1/sessions/{s['id']}"), 200)
    assert v1["lastSeenAt"] == s["lastSeenAt"]
    # Plain GET /v1/session slides; so does refresh=true.
    v2 = validate_response(client.validate(tok), 200)
    check_session_view(v2, name)
    assert parse_time(v2["lastSeenAt"]) >= parse_time(s["lastSeenAt"]) + 0.1
    assert parse_time(v2["idleExpiresAt"]) >= parse_time(s["idleExpiresAt"]) + 0.1
    assert v2["expiresAt"] == s["expiresAt"], "the absolute deadline never moves"
    assert v2["createdAt"] == s["createdAt"]
    time.sleep(0.25)
    v3 = validate_response(client.validate(tok, refresh=True), 200)
    assert parse_time(v3["lastSeenAt"]) > parse_time(v2["lastSeenAt"])
    v4 = validate_response(client.get(f"/v1/sessions/{s['id']}"), 200)
    assert v4["lastSeenAt"] == v3["lastSeenAt"], "the slide is visible by id"


def test_session_data_round_trip(client):
    tok = client.create(unique("data"))["token"]
    assert validate_response(client.get("/v1/session/data", session_token=tok), 200) == {"data": None}
    value = {"cart": [1, 2, 3], "ü": "ñ", "deep": [[[[1]]]]}
    r = client.put("/v1/session/data", session_token=tok, json_body={"data": value})
    assert validate_response(r, 200) == {"data": value}
    assert validate_response(client.get("/v1/session/data", session_token=tok), 200) == {"data": value}
    v = validate_response(client.validate(tok, refresh=False), 200)
    assert v["data"] == value
    # null clears it: the session view then has no data field.
    r = client.put("/v1/session/data", session_token=tok, json_body={"data": None})
    assert validate_response(r, 200) == {"data": None}
    assert validate_response(client.get("/v1/session/data", session_token=tok), 200) == {"data": None}
    v = validate_response(client.validate(tok, refresh=False), 200)
    assert "data" not in v, v


def test_logout(client):
    name = unique("logout")
    s = client.create(name)
    r = client.delete("/v1/session", session_token=s["token"])
    validate_response(r, 204)
    assert_error(client.validate(s["token"]), 401, "session_unknown")
    assert_error(client.get(f"/v1/sessions/{s['id']}"), 404, "session_not_found")
    assert client.list_sessions(username=name) == []
    # A second logout with the same token: unknown.
    assert_error(client.delete("/v1/session", session_token=s["token"]), 401, "session_unknown")


def test_rotation(client):
    name = unique("rotate")
    s = client.create(name, data={"role": "user"})
    old = s["token"]
    time.sleep(0.01)
    r = client.post("/v1/session/rotate", session_token=old)
    rotated = validate_response(r, 200)
    new = rotated["token"]
    assert new != old and TOKEN_RE.fullmatch(new)
    assert rotated["id"] == s["id"]
    assert rotated["username"] == name
    assert rotated["data"] == {"role": "user"}
    assert rotated["createdAt"] == s["createdAt"] and rotated["expiresAt"] == s["expiresAt"]
    # The old token is dead, the new one works on every token route.
    assert_error(client.validate(old), 401, "session_unknown")
    assert_error(client.get("/v1/session/data", session_token=old), 401, "session_unknown")
    assert_error(client.post("/v1/session/rotate", session_token=old), 401, "session_unknown")
    v = validate_response(client.validate(new), 200)
    assert v["id"] == s["id"] and v["data"] == {"role": "user"}
    assert validate_response(client.get("/v1/session/data", session_token=new), 200) == {"data": {"role": "user"}}
    sessions = client.list_sessions(username=name)
    assert [x["id"] for x in sessions] == [s["id"]], "rotation must not create a second session"


def test_revoke_by_id(client):
    name = unique("revoke-id")
    a, b = client.create(name), client.create(name)
    r = client.delete(f"/v1/sessions/{a['id']}")
    validate_response(r, 204)
    assert_error(client.validate(a["token"]), 401, "session_unknown")
    assert_error(client.get(f"/v1/sessions/{a['id']}"), 404, "session_not_found")
    assert_error(client.delete(f"/v1/sessions/{a['id']}"), 404, "session_not_found")
    validate_response(client.validate(b["token"]), 200)
    assert [x["id"] for x in client.list_sessions(username=name)] == [b["id"]]


def test_revoke_by_user(client):
    name = unique("revoke user é")  # a space and a non-ASCII letter, percent-encoded in the path
    other = unique("bystander")
    mine = [client.create(name) for _ in range(3)]
    theirs = client.create(other)
    path = "/v1/users/" + urllib.parse.quote(name, safe="") + "/sessions"
    r = client.delete(path)
    assert validate_response(r, 200) == {"deleted": 3}
    for s in mine:
        assert_error(client.validate(s["token"]), 401, "session_unknown")
    assert client.list_sessions(username=name) == []
    assert name not in {u["username"] for u in client.list_users()}
    validate_response(client.validate(theirs["token"]), 200)
    # Nobody left: deleted 0.
    assert validate_response(client.delete(path), 200) == {"deleted": 0}


def test_get_session_by_id_and_listing_never_show_tokens(client):
    name = unique("notoken")
    s = client.create(name, data={"k": "v"})
    for path in (f"/v1/sessions/{s['id']}", "/v1/sessions?username=" + name, "/v1/sessions", "/v1/users"):
        r = client.get(path)
        validate_response(r, 200)
        assert s["token"] not in r.text and TOKEN_RE.search(r.text) is None, path
    listed = client.list_sessions(username=name)
    assert len(listed) == 1 and listed[0]["id"] == s["id"] and listed[0]["data"] == {"k": "v"}
    check_session_view(listed[0], name)


def test_users_distinct_with_counts(client):
    a, b = unique("ua"), unique("ub")
    for _ in range(3):
        client.create(a)
    client.create(b)
    users = {u["username"]: u["sessionCount"] for u in client.list_users()}
    assert users[a] == 3 and users[b] == 1
    assert len(client.list_users()) == len(users), "duplicate users in the listing"


def test_pagination_sessions_cursor_walk(client):
    name = unique("page")
    ids = {client.create(name)["id"] for _ in range(25)}
    pages = []
    cursor = None
    while True:
        params = {"username": name, "limit": "7"}
        if cursor:
            params["cursor"] = cursor
        page = validate_response(client.get("/v1/sessions", params=params), 200)
        pages.append([s["id"] for s in page["sessions"]])
        assert all(s["username"] == name for s in page["sessions"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "cursor walk does not terminate"
    walked = [i for p in pages for i in p]
    assert [len(p) for p in pages[:3]] == [7, 7, 7], pages
    assert len(walked) == len(set(walked)) == 25, f"duplicates or missing: {len(walked)} / {len(set(walked))}"
    assert set(walked) == ids
    # The unfiltered listing returns every session exactly once too.
    everything = [s["id"] for s in client.list_sessions(limit=6)]
    assert len(everything) == len(set(everything))
    assert ids <= set(everything)
    # limit=1 on a user with 25 sessions: one item and a cursor.
    page = validate_response(client.get("/v1/sessions", params={"username": name, "limit": "1"}), 200)
    assert len(page["sessions"]) == 1 and isinstance(page["nextCursor"], str)


def test_pagination_users_cursor_walk(client):
    prefix = unique("pu")
    expected = {}
    for i in range(12):
        name = f"{prefix}-{i:02d}"
        n = 1 + i % 3
        for _ in range(n):
            client.create(name)
        expected[name] = n
    users = client.list_users(limit=5)
    names = [u["username"] for u in users]
    assert len(names) == len(set(names)), "a user appears twice across pages"
    got = {u["username"]: u["sessionCount"] for u in users if u["username"].startswith(prefix)}
    assert got == expected


def test_patch_config_then_new_sessions_use_it(client):
    before = client.config()
    try:
        cfg = client.patch_config(idleTimeout=45, maxLifetime=900)
        assert cfg["idleTimeout"] == 45 and cfg["maxLifetime"] == 900
        assert {k: v for k, v in cfg.items() if k not in ("idleTimeout", "maxLifetime")} == {
            k: v for k, v in before.items() if k not in ("idleTimeout", "maxLifetime")}
        assert client.config() == cfg
        s = client.create(unique("cfg"))
        assert s["idleTimeout"] == 45
        created = parse_time(s["createdAt"])
        assert abs(parse_time(s["idleExpiresAt"]) - (created + 45)) <= MS
        assert abs(parse_time(s["expiresAt"]) - (created + 900)) <= MS
        # A per-session value still overrides the default.
        s2 = client.create(unique("cfg"), idleTimeout=10)
        assert s2["idleTimeout"] == 10
        cfg = client.patch_config(maxDataBytes=64)
        assert cfg["maxDataBytes"] == 64
        assert_error(client.post("/v1/sessions", json_body={"username": unique("cfg"), "data": "x" * 100}),
                     413, "data_too_large")
        client.create(unique("cfg"), data="x" * 10)
    finally:
        client.patch_config(idleTimeout=before["idleTimeout"], maxLifetime=before["maxLifetime"],
                            maxDataBytes=before["maxDataBytes"])
    assert client.config() == before


def test_per_user_cap_reject(server, client):
    name = unique("cap-reject")
    before = client.config()
    try:
        cfg = client.patch_config(maxSessionsPerUser=2, sessionLimitPolicy="reject")
        assert cfg["maxSessionsPerUser"] == 2 and cfg["sessionLimitPolicy"] == "reject"
        a, b = client.create(name), client.create(name)
        with unchanged(server, client):
            assert_error(client.post("/v1/sessions", json_body={"username": name}), 409, "session_limit_reached")
        # The two sessions still work; another user is not affected.
        validate_response(client.validate(a["token"]), 200)
        validate_response(client.validate(b["token"]), 200)
        client.create(unique("cap-other"))
        # After a logout there is room again.
        validate_response(client.delete("/v1/session", session_token=a["token"]), 204)
        client.create(name)
    finally:
        client.patch_config(maxSessionsPerUser=None, sessionLimitPolicy=before["sessionLimitPolicy"])
    assert client.config() == before


def test_per_user_cap_evict_oldest(client):
    name = unique("cap-evict")
    before = client.config()
    try:
        cfg = client.patch_config(maxSessionsPerUser=2, sessionLimitPolicy="evict_oldest")
        assert cfg["maxSessionsPerUser"] == 2 and cfg["sessionLimitPolicy"] == "evict_oldest"
        a = client.create(name)
        time.sleep(0.01)
        b = client.create(name)
        time.sleep(0.01)
        c = client.create(name)
        assert_error(client.validate(a["token"]), 401, "session_unknown")
        validate_response(client.validate(b["token"]), 200)
        validate_response(client.validate(c["token"]), 200)
        assert {s["id"] for s in client.list_sessions(username=name)} == {b["id"], c["id"]}
        assert {u["username"]: u["sessionCount"] for u in client.list_users()}[name] == 2
    finally:
        client.patch_config(maxSessionsPerUser=None, sessionLimitPolicy=before["sessionLimitPolicy"])
    assert client.config() == before


def test_per_user_cap_from_flags(make_server):
    srv = make_server(args=["--max-sessions-per-user", "1", "--session-limit-policy", "reject",
                            "--idle-timeout", "77", "--max-data-bytes", "1000"])
    c = srv.client()
    cfg = c.config()
    assert cfg["maxSessionsPerUser"] == 1 and cfg["sessionLimitPolicy"] == "reject"
    assert cfg["idleTimeout"] == 77 and cfg["maxDataBytes"] == 1000
    a = c.create("flag-user")
    assert a["idleTimeout"] == 77
    assert_error(c.post("/v1/sessions", json_body={"username": "flag-user"}), 409, "session_limit_reached")
    validate_response(c.validate(a["token"]), 200)
    assert_error(c.post("/v1/sessions", json_body={"username": "other", "data": "x" * 1000}), 413, "data_too_large")


def test_config_from_environment_twins(make_server):
    srv = make_server(env={"SESSIOND_IDLE_TIMEOUT": "33", "SESSIOND_MAX_LIFETIME": "3333",
                           "SESSIOND_MAX_SESSIONS_PER_USER": "4", "SESSIOND_SESSION_LIMIT_POLICY": "reject",
                           "SESSIOND_MAX_DATA_BYTES": "2048"})
    cfg = srv.client().config()
    assert cfg == {"idleTimeout": 33, "maxLifetime": 3333, "maxSessionsPerUser": 4,
                   "sessionLimitPolicy": "reject", "maxDataBytes": 2048}, cfg


def test_events_route_happy_path(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/v1/events", headers={"Authorization": f"Bearer {server.api_token}",
                                                    "Accept": "text/event-stream"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").split(";")[0].strip() == "text/event-stream"
    finally:
        conn.close()


def test_delete_all_requires_confirm_and_empties_everything(server, client):
    for i in range(3):
        client.create(unique("all"), data={"i": i})
    with unchanged(server, client):
        assert_error(client.delete("/v1/sessions"), 400, "confirmation_required")
    state = snapshot_state(client)
    n = len(state["sessions"])
    assert n >= 3
    assert client.delete_all() == n
    assert client.list_sessions() == [] and client.list_users() == []
    assert client.delete_all() == 0


def test_node_library_scenario(client):
    """The Node library README scenario, over HTTP with the real clock."""
    alice_name, bob_name, carol_name, dave_name = (unique(n) for n in ("alice", "bob", "carol", "dave"))
    mine = {alice_name, bob_name, carol_name, dave_name}

    def my_users():
        return {u["username"]: u["sessionCount"] for u in client.list_users() if u["username"] in mine}

    alice = client.create(alice_name)
    bob = client.create(bob_name)
    assert my_users() == {alice_name: 1, bob_name: 1}
    validate_response(client.delete("/v1/session", session_token=bob["token"]), 204)
    assert_error(client.validate(bob["token"]), 401, "session_unknown")
    assert my_users() == {alice_name: 1}

    carol = client.create(carol_name, idleTimeout=2)
    dave = client.create(dave_name, idleTimeout=3, data={"theme": "dark"})
    t0 = time.monotonic()
    time.sleep(1.8)
    refreshed = validate_response(client.validate(dave["token"]), 200)
    assert parse_time(refreshed["idleExpiresAt"]) >= parse_time(dave["idleExpiresAt"]) + 1.5
    time.sleep(max(0.0, 3.3 - (time.monotonic() - t0)))
    # carol idled out (and says so, every time); dave is past his first deadline (3 s) and still valid
    # (until about 4.8 s: the checks below have 1.5 s).
    assert_error(client.validate(carol["token"], refresh=False), 401, "session_expired")
    assert_error(client.validate(carol["token"], refresh=False), 401, "session_expired")
    d = validate_response(client.validate(dave["token"], refresh=False), 200)
    assert d["id"] == dave["id"]
    assert validate_response(client.get("/v1/session/data", session_token=dave["token"]), 200) == {
        "data": {"theme": "dark"}}
    validate_response(client.put("/v1/session/data", session_token=dave["token"],
                                 json_body={"data": {"theme": "light", "n": 2}}), 200)
    assert validate_response(client.get("/v1/session/data", session_token=dave["token"]), 200) == {
        "data": {"theme": "light", "n": 2}}
    assert my_users() == {alice_name: 1, dave_name: 1}
    assert {s["username"] for s in client.list_sessions() if s["username"] in mine} == {alice_name, dave_name}
    assert_error(client.get(f"/v1/sessions/{carol['id']}"), 404, "session_not_found")

    deleted = client.delete_all()
    assert deleted >= 2
    assert client.list_sessions() == [] and client.list_users() == []
    for s in (alice, dave):
        assert_error(client.validate(s["token"]), 401, "session_unknown")


def test_concurrent_clients(server, client):
    """Parallel logins, validations, data writes and logouts: every answer is right, nothing is lost."""
    import threading

    prefix = unique("conc")
    errors: list[str] = []
    kept: dict[str, list[str]] = {}

    def worker(n: int) -> None:
        c = server.client()
        name = f"{prefix}-{n % 4}"
        mine = []
        try:
            for i in range(25):
                s = c.create(name, data={"w": n, "i": i})
                v = c.validate(s["token"])
                if v.status_code != 200 or v.json()["id"] != s["id"]:
                    errors.append(f"validate {v.status_code} {v.text[:200]}")
                r = c.put("/v1/session/data", session_token=s["token"], json_body={"data": [n, i]})
                if r.status_code != 200 or r.json() != {"data": [n, i]}:
                    errors.append(f"put {r.status_code} {r.text[:200]}")
                if i % 2:
                    r = c.delete("/v1/session", session_token=s["token"])
                    if r.status_code != 204:
                        errors.append(f"logout {r.status_code} {r.text[:200]}")
                else:
                    mine.append(s["id"])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        kept[str(n)] = mine

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    expected = {i for ids in kept.values() for i in ids}
    assert len(expected) == 8 * 13
    listed = {s["id"] for s in client.list_sessions() if s["username"].startswith(prefix)}
    assert listed == expected
    users = {u["username"]: u["sessionCount"] for u in client.list_users() if u["username"].startswith(prefix)}
    assert users == {f"{prefix}-{k}": 26 for k in range(4)}, users
