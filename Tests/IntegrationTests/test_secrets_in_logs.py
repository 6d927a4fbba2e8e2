"""No secret reaches the log or /metrics, whatever the route and wherever a client puts a secret.

One sessiond runs at ``--log-level trace`` with an API token. The test drives every operation of
openapi.yaml (each path and method, the event stream included; each must be answered 2xx at least
once) the right way, the session token in ``Session-Token`` (no request body of the API has a token
field), and again with secrets where they do not belong: wrong API tokens and no API token on every
operation, malformed ``Authorization`` headers, session tokens in query strings, in JSON bodies (as a
data value, as the value and the name of an unknown field, as a value of the wrong type, in invalid,
non-JSON and oversized bodies), in unknown headers, in ``Last-Event-ID``, in the path of unknown routes,
as path parameters, in raw malformed requests. Each wrong place gets a session token of its own, so a
leak names the place it came from. Every secret sent or received is recorded with where it travelled.
At the end the server is stopped (so every log line is written) and its stderr and stdout, the
``/metrics`` body (plain and gzip) and the text of the event streams are searched for every secret and
every 16-character piece of it, and for anything shaped like a session token; each leak is reported
with its offending line.

So that the test cannot pass by logging nothing, it also requires a non-empty log, lines below info
level (the level took effect), the debug lines the requests caused (``session created`` for a session
the test opened, ``session ended`` with reasons logout, revoked and evicted) and a line naming a route
of openapi.yaml. sessiond logs no line per request at any level, trace included (nothing is logged at
trace that is not at debug): the route named is the startup line's ``metrics=/metrics``.

Backend independent: it runs under every ``SESSIOND_TEST_STORAGE`` (sqlite, memory, redis).
"""

from __future__ import annotations

import base64
import json
import re
import secrets as pysecrets
import socket
import time
from dataclasses import dataclass, field

import pytest
import requests

from openapi_contract import SPEC, TOKEN_RE, assert_error, describe, validate_response
from raw_http import http_head, raw_connect, raw_request
from sessiond_server import Client, HTTP_TIMEOUT, Server, unique, unknown_token

TRACE_ARGS = ["--log-level", "trace"]
PIECE = 16  # any piece of a secret this long found in a sink is a leak
ENDED_REASONS = ("logout", "revoked", "evicted")  # endings the test causes; each must reach the debug log


# --------------------------------------------------------------------------------------------------
# The operations of openapi.yaml
# --------------------------------------------------------------------------------------------------

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def spec_operations() -> set[tuple[str, str]]:
    """Every (METHOD, path template) of openapi.yaml."""
    return {(m.upper(), path) for path, item in SPEC["paths"].items() for m in item if m in METHODS}


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


TEMPLATES = [(t, _template_regex(t)) for t in SPEC["paths"]]
# A log line "mentions a route" when it names one of the documented paths (parameters: any segment).
ROUTE_IN_TEXT = re.compile(
    "|".join(re.sub(r"\\\{[^}]+\\\}", r"[^/\\s]+", re.escape(t)) + r"(?![A-Za-z0-9_-])" for t in SPEC["paths"])
)


def template_of(path: str) -> str | None:
    path = path.split("?", 1)[0]
    for template, regex in TEMPLATES:
        if regex.match(path):
            return template
    return None


# --------------------------------------------------------------------------------------------------
# The run: requests, the secrets they carried, the operations they covered
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    server: Server
    client: Client
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (secret, where it travelled)
    covered: set[tuple[str, str]] = field(default_factory=set)  # operations answered 2xx
    attempted: set[tuple[str, str]] = field(default_factory=set)  # operations sent at all
    event_text: str = ""  # everything the event streams sent

    def secret(self, value: str, where: str) -> str:
        assert value, where
        self.secrets.append((value, where))
        return value

    def record(self, method: str, path: str, status: int) -> None:
        template = template_of(path)
        if template is None:
            return
        op = (method.upper(), template)
        self.attempted.add(op)
        if 200 <= status < 300:
            self.covered.add(op)

    def send(self, method: str, path: str, expect: int | set[int] | None, *, client: Client | None = None,
             **kw) -> requests.Response:
        """One request through ``client`` (default: the one with the API token); records the operation
        and asserts the status when ``expect`` is given."""
        r = (client or self.client).request(method, path, **kw)
        self.record(method, path, r.status_code)
        if expect is not None:
            want = {expect} if isinstance(expect, int) else set(expect)
            assert r.status_code in want, describe(r, f"{method} {path}: expected {sorted(want)}")
        return r

    def created(self, body: dict, where: str) -> dict:
        """The answer of a creation or rotation: its token is a secret from now on."""
        self.secret(body["token"], where)
        return body


def create(run: Run, username: str, **fields) -> dict:
    r = run.send("POST", "/v1/sessions", 201, json_body={"username": username, **fields})
    body = validate_response(r, 201)
    return run.created(body, f"token issued by POST /v1/sessions for {username}")


# --------------------------------------------------------------------------------------------------
# The event stream, read briefly over a raw socket
# --------------------------------------------------------------------------------------------------


class RawEventStream:
    def __init__(self, run: Run, path: str = "/v1/events", headers: list[tuple[str, str]] | None = None):
        self.run = run
        self.path = path
        self.sock = raw_connect(run.server, timeout=0.2)
        self.sock.sendall(http_head("GET", path, headers or [], api_token=run.server.api_token))
        self.buf = b""
        self.read_until(lambda text: "\r\n\r\n" in text, 5.0, "the response head")
        status_line = self.buf.split(b"\r\n", 1)[0].decode("latin-1")
        self.status = int(status_line.split(" ")[1])
        run.record("GET", path, self.status)

    def read_until(self, done, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while not done(self.text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"GET {self.path}: no {what} within {timeout}s; got {self.buf[:2000]!r}")
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"GET {self.path}: closed before {what}; got {self.buf[:2000]!r}")
            self.buf += chunk
        return self.text()

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")

    def close(self) -> None:
        self.run.event_text += self.text() + "\n"
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------------


def pieces(secret: str) -> list[str]:
    """The secret and every PIECE-character piece of it."""
    if len(secret) <= PIECE:
        return [secret]
    return [secret[i:i + PIECE] for i in range(len(secret) - PIECE + 1)]


def line_at(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start:end if end >= 0 else len(text)]


def find_leaks(sinks: dict[str, str], run_secrets: list[tuple[str, str]]) -> list[str]:
    """One entry per (sink, secret) found, with where the secret travelled and the offending line."""
    where_of: dict[str, list[str]] = {}
    for secret, where in run_secrets:
        where_of.setdefault(secret, [])
        if where not in where_of[secret]:
            where_of[secret].append(where)
    leaks: list[str] = []
    for sink, text in sinks.items():
        for match in TOKEN_RE.finditer(text):
            leaks.append(f"a session token ({match.group(0)}) appears in {sink}, line:\n    "
                         f"{line_at(text, match.start())}")
        for secret, wheres in where_of.items():
            for piece in pieces(secret):
                index = text.find(piece)
                if index >= 0:
                    what = "the secret" if piece == secret else f"its piece {piece!r}"
                    leaks.append(f"{what} appears in {sink}; the secret was: " + "; ".join(wheres)
                                 + f"\n  offending line:\n    {line_at(text, index)}")
                    break
    return leaks


def wait_for_log(server: Server, needles: list[str], timeout: float = 5.0) -> None:
    """Waits until every needle is in the log (session events reach the log asynchronously, through the
    backend's event feed: under Redis, its event tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.stderr_text()
        if all(needle in text for needle in needles):
            return
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------------


def test_no_secret_in_trace_log_or_metrics(make_server):
    srv: Server = make_server(args=TRACE_ARGS)
    run = Run(srv, srv.client())
    run.secret(srv.api_token, "the API token (Authorization: Bearer on every /v1 request)")
    user = unique("leak")

    # ---- a session that will expire on its own (checked at the end: an expired token is a secret too)
    expiring = create(run, unique("leak-exp"), idleTimeout=2)
    expiring_at = time.monotonic() + 2

    # ---- the event stream, open while sessions are created (GET /v1/events, briefly)
    stream = RawEventStream(run)
    assert stream.status == 200, stream.buf[:500]

    # ---- login, validate, data, rotate, logout: the session token where it belongs (Session-Token)
    a = create(run, user, data={"theme": "dark"})
    stream.read_until(lambda text: a["id"] in text, 5.0, f"'created' event of {a['id']}")
    stream.close()
    validate_response(run.send("GET", "/v1/session", 200, session_token=a["token"]), 200)
    validate_response(run.send("GET", "/v1/session", 200, session_token=a["token"], params={"refresh": "false"}), 200)
    validate_response(run.send("PUT", "/v1/session/data", 200, session_token=a["token"],
                               json_body={"data": {"k": "v"}}), 200)
    validate_response(run.send("GET", "/v1/session/data", 200, session_token=a["token"]), 200)
    rotated = run.created(validate_response(run.send("POST", "/v1/session/rotate", 200, session_token=a["token"]),
                                            200), "token issued by POST /v1/session/rotate")
    assert_error(run.send("GET", "/v1/session", 401, session_token=a["token"]), 401, "session_unknown")
    validate_response(run.send("GET", "/v1/session", 200, session_token=rotated["token"]), 200)

    # ---- admin routes
    b = create(run, user)
    c = create(run, unique("leak-other"))
    validate_response(run.send("GET", "/v1/sessions", 200), 200)
    page = validate_response(run.send("GET", "/v1/sessions", 200, params={"username": user, "limit": "1"}), 200)
    assert page["nextCursor"], page
    validate_response(run.send("GET", "/v1/sessions", 200, params={"username": user, "limit": "1",
                                                                    "cursor": page["nextCursor"]}), 200)
    validate_response(run.send("GET", "/v1/users", 200), 200)
    validate_response(run.send("GET", "/v1/users", 200, params={"limit": "1"}), 200)
    validate_response(run.send("GET", f"/v1/sessions/{c['id']}", 200), 200)
    validate_response(run.send("GET", "/v1/config", 200), 200)
    validate_response(run.send("PATCH", "/v1/config", 200, json_body={"maxSessionsPerUser": 2,
                                                                       "sessionLimitPolicy": "reject"}), 200)
    # At the cap with reject: 409, the body carrying a session token as data.
    assert_error(run.send("POST", "/v1/sessions", 409, json_body={"username": user, "data": rotated["token"]}),
                 409, "session_limit_reached")
    run.secret(rotated["token"], "a session token as the data of a refused POST /v1/sessions (409)")
    validate_response(run.send("PATCH", "/v1/config", 200, json_body={"maxSessionsPerUser": 3,
                                                                       "sessionLimitPolicy": "evict_oldest"}), 200)
    create(run, user)  # the third
    create(run, user)  # evicts the oldest (the rotated session a)
    assert_error(run.send("GET", "/v1/session", 401, session_token=rotated["token"]), 401, "session_unknown")
    validate_response(run.send("PATCH", "/v1/config", 200, json_body={"maxSessionsPerUser": None,
                                                                       "idleTimeout": 3000}), 200)
    validate_response(run.send("DELETE", f"/v1/sessions/{c['id']}", 204), 204)
    assert_error(run.send("GET", f"/v1/sessions/{c['id']}", 404), 404, "session_not_found")
    assert_error(run.send("GET", "/v1/session", 401, session_token=c["token"]), 401, "session_unknown")
    deleted = validate_response(run.send("DELETE", f"/v1/users/{user}/sessions", 200), 200)
    assert deleted["deleted"] == 3, deleted
    assert_error(run.send("GET", "/v1/session", 401, session_token=b["token"]), 401, "session_unknown")

    # ---- /metrics, /healthz, /readyz (no API token needed; sent with one anyway)
    for path in ("/metrics", "/healthz", "/readyz"):
        run.send("GET", path, 200, client=srv.client(api_token=None))
        run.send("GET", path, 200)

    # ---- the misplaced-token part. `live`'s token travels where it belongs (Session-Token); each wrong
    # place gets a session token of its own (a live one: the server could resolve it), so that a leak
    # names the place it came from.
    live = create(run, unique("leak-live"), data={"n": 1})
    tok = live["token"]

    def misplaced(where: str) -> str:
        """The token of a new session, to be sent in one wrong place only (``where``)."""
        return run.secret(create(run, unique("leak-misplaced"))["token"], where)

    # ---- session tokens in query strings
    for path in ("/v1/session", "/v1/session/data", "/v1/sessions", "/v1/users", "/v1/config", "/metrics",
                 "/healthz", "/readyz", f"/v1/sessions/{live['id']}", "/v1/session/rotate"):
        for name in ("token", "session_token", "Session-Token"):
            q = misplaced(f"a session token in the query string ?{name}= of GET {path}")
            r = run.send("GET", path, None, params={name: q})
            assert r.status_code < 500, describe(r)
    q = misplaced("a session token in ?token= of GET /v1/session (with its Session-Token header)")
    run.send("GET", "/v1/session", 200, session_token=tok, params={"token": q, "refresh": "false"})
    q = misplaced("a session token in ?token= of POST /v1/sessions")
    run.send("POST", "/v1/sessions", 201, params={"token": q}, json_body={"username": unique("leak-q")})
    q = misplaced("a session token in ?token= of DELETE /v1/sessions/{id} (unknown id)")
    run.send("DELETE", f"/v1/sessions/{unique('nobody')}", 404, params={"token": q})
    # As the value of documented query parameters.
    run.send("GET", "/v1/sessions", 200, params={"username": misplaced("a session token as ?username= of GET /v1/sessions")})
    assert_error(run.send("GET", "/v1/sessions", 400, params={"cursor": misplaced("a session token as ?cursor= of GET /v1/sessions")}),
                 400, "invalid_cursor")
    assert_error(run.send("GET", "/v1/users", 400, params={"cursor": misplaced("a session token as ?cursor= of GET /v1/users")}),
                 400, "invalid_cursor")
    run.send("GET", "/v1/sessions", 400, params={"limit": misplaced("a session token as ?limit= of GET /v1/sessions")})
    run.send("GET", "/v1/session", 400, session_token=tok,
             params={"refresh": misplaced("a session token as ?refresh= of GET /v1/session")})
    run.send("DELETE", "/v1/sessions", 400, params={"confirm": misplaced("a session token as ?confirm= of DELETE /v1/sessions")})

    # ---- session tokens in JSON bodies
    d = misplaced("a session token as the data value of PUT /v1/session/data")
    validate_response(run.send("PUT", "/v1/session/data", 200, session_token=tok, json_body={"data": d}), 200)
    d = misplaced("a session token nested in the data of PUT /v1/session/data")
    validate_response(run.send("PUT", "/v1/session/data", 200, session_token=tok,
                               json_body={"data": {"nested": [d, {"token": d}]}}), 200)
    validate_response(run.send("GET", "/v1/session/data", 200, session_token=tok), 200)
    d = misplaced("a session token as the data of POST /v1/sessions")
    validate_response(run.send("POST", "/v1/sessions", 201, json_body={"username": unique("leak-d"),
                                                                        "data": {"token": d}}), 201)
    for method, path, base in (("PUT", "/v1/session/data", {"data": 1}), ("POST", "/v1/sessions", {"username": unique("x")}),
                               ("PATCH", "/v1/config", {})):
        hdr = {"session_token": tok} if path == "/v1/session/data" else {}
        f = misplaced(f"a session token as the value of an unknown field of {method} {path}")
        assert_error(run.send(method, path, 400, json_body={**base, "token": f}, **hdr), 400, "unknown_field")
        f = misplaced(f"a session token as the name of an unknown field of {method} {path}")
        assert_error(run.send(method, path, 400, json_body={**base, f: 1}, **hdr), 400, "unknown_field")
    for body in ({"idleTimeout": None}, {"sessionLimitPolicy": None}, {"maxDataBytes": None}):
        key = next(iter(body))
        w = misplaced(f"a session token as {key} of PATCH /v1/config (wrong type)")
        run.send("PATCH", "/v1/config", 400, json_body={key: w})
    w = misplaced("a session token as idleTimeout of POST /v1/sessions (wrong type)")
    run.send("POST", "/v1/sessions", 400, json_body={"username": unique("x"), "idleTimeout": w})
    w = misplaced("a session token in a username that is not a string (POST /v1/sessions)")
    run.send("POST", "/v1/sessions", 400, json_body={"username": [w]})
    json_ct = {"Content-Type": "application/json"}
    for method, path in (("POST", "/v1/sessions"), ("PUT", "/v1/session/data"), ("PATCH", "/v1/config")):
        hdr = {"session_token": tok} if path == "/v1/session/data" else {}
        j = misplaced(f"a session token in a body that is not valid JSON ({method} {path})")
        bad_json = ('{"username": "x", "data": "' + j).encode()
        assert_error(run.send(method, path, 400, data=bad_json, headers=json_ct, **hdr), 400, "invalid_json")
    m = misplaced("a session token in a text/plain body of POST /v1/sessions (415)")
    run.send("POST", "/v1/sessions", 415, data=json.dumps({"username": "x", "data": m}).encode(),
             headers={"Content-Type": "text/plain"})
    big = misplaced("a session token at the end of a body above --max-body-bytes (PUT /v1/session/data, 413)")
    run.send("PUT", "/v1/session/data", 413, session_token=tok,
             data=json.dumps({"data": "a" * 70000 + big}).encode(), headers=json_ct)
    big = misplaced("a session token in data above the data cap (PUT /v1/session/data, 413)")
    run.send("PUT", "/v1/session/data", 413, session_token=tok, json_body={"data": ["b" * 1000 + big] * 20})
    nb = misplaced("a session token in the body of GET /v1/config and DELETE /v1/sessions/{id}")
    run.send("GET", "/v1/config", None, json_body={"token": nb})
    run.send("DELETE", f"/v1/sessions/{unique('nobody')}", None, json_body={"token": nb})

    # ---- session tokens in unknown headers and in Last-Event-ID
    for name in ("X-Session-Token", "Cookie", "Session-Tokens", "X-Forwarded-For", "Referer", "User-Agent",
                 "X-Api-Token", "Proxy-Authorization"):
        h = misplaced(f"a session token in the unknown header {name}")
        value = {"Cookie": f"session={h}", "Referer": f"http://example.invalid/?token={h}"}.get(name, h)
        run.send("GET", "/v1/config", 200, headers={name: value})
        run.send("GET", "/v1/session", 401, headers={name: value})
        run.send("GET", "/metrics", 200, headers={name: value})
    lei = misplaced("a session token as Last-Event-ID of GET /v1/events")
    resumed = RawEventStream(run, headers=[("Last-Event-ID", lei)])
    assert resumed.status == 200, resumed.buf[:500]
    resumed.read_until(lambda text: "event: gap" in text, 5.0, "gap event")
    resumed.close()
    eq = misplaced("a session token in the query string ?token= of GET /v1/events")
    with_query = RawEventStream(run, path=f"/v1/events?token={eq}")
    with_query.close()

    # ---- session tokens in paths: unknown routes, and as path parameters of known ones
    for method, template in (("GET", "/v1/nope/{t}"), ("GET", "/{t}"), ("POST", "/{t}"), ("GET", "/v1/session/{t}"),
                             ("DELETE", "/v1/session/data/{t}"), ("GET", "/v1/{t}/sessions"),
                             ("GET", "/metrics/{t}"), ("GET", "/healthz/{t}"), ("PUT", "/v1/users/{t}")):
        p = misplaced(f"a session token in the path of the unknown route {method} {template}")
        r = run.send(method, template.replace("{t}", p), (404, 405))
        assert_error(r, r.status_code, ("not_found", "method_not_allowed"))
    p = misplaced("a session token as {id} of GET /v1/sessions/{id}")
    assert_error(run.send("GET", f"/v1/sessions/{p}", 404), 404, "session_not_found")
    p = misplaced("a session token as {id} of DELETE /v1/sessions/{id}")
    assert_error(run.send("DELETE", f"/v1/sessions/{p}", 404), 404, "session_not_found")
    p = misplaced("a session token as {username} of DELETE /v1/users/{username}/sessions")
    validate_response(run.send("DELETE", f"/v1/users/{p}/sessions", 200), 200)
    p = misplaced("a session token as {id} of PUT /v1/sessions/{id} (405)")
    run.send("PUT", f"/v1/sessions/{p}", 405)
    run.send("PATCH", "/v1/session", 405, session_token=tok)

    # ---- wrong API tokens and malformed Authorization headers, on every operation
    wrong_tokens = [
        run.secret("wrong-" + pysecrets.token_urlsafe(32), "a wrong API token (random)"),
        run.secret(srv.api_token[:-1] + ("A" if srv.api_token[-1] != "A" else "B"),
                   "a wrong API token of the API token's length (last character changed)"),
        run.secret(srv.api_token + pysecrets.token_urlsafe(8), "a wrong API token (the API token and more)"),
        misplaced("a session token sent as the API token (Authorization: Bearer <session token>)"),
    ]
    sweep = misplaced("a session token in Session-Token of requests with a wrong or no API token")
    operations = sorted(spec_operations())
    other = create(run, unique("leak-target"))

    def concrete(template: str) -> str:
        return template.replace("{id}", other["id"]).replace("{username}", "nobody-" + pysecrets.token_hex(4))

    bodies = {("POST", "/v1/sessions"): {"username": "intruder"}, ("PUT", "/v1/session/data"): {"data": 1},
              ("PATCH", "/v1/config"): {"idleTimeout": 5}}
    public = {"/metrics", "/healthz", "/readyz"}
    for method, template in operations:
        path = concrete(template)
        if (method, template) == ("DELETE", "/v1/sessions"):
            path += "?confirm=true"
        kw = {"session_token": sweep}
        if (method, template) in bodies:
            kw["json_body"] = bodies[(method, template)]
        for wrong in wrong_tokens:
            r = run.send(method, path, 200 if template in public else 403, client=srv.client(api_token=wrong),
                         timeout=5, **kw)
            if template not in public:
                assert_error(r, 403, "api_token_invalid")
        r = run.send(method, path, 200 if template in public else 401, client=srv.client(api_token=None),
                     timeout=5, **kw)
        if template not in public:
            assert_error(r, 401, "api_token_missing")
    validate_response(run.send("GET", f"/v1/sessions/{other['id']}", 200), 200)  # the sweep changed nothing
    assert run.send("GET", "/v1/sessions", 200, params={"username": "intruder"}).json()["sessions"] == []

    malformed_auth = [
        (lambda t: f"Token {t}", "Authorization: Token <session token>"),
        (lambda t: t, "Authorization: <session token> (no scheme)"),
        (lambda t: f"Bearer {srv.api_token} {t}", "Authorization: Bearer <api token> <session token>"),
        (lambda t: f"Bearer  {t}", "Authorization: Bearer  <session token> (two spaces)"),
        (lambda t: f"bearer {t}", "Authorization: bearer <session token> (lower case)"),
        (lambda t: f"Bearer {t},Bearer {srv.api_token}", "Authorization: Bearer <session token>,Bearer <api token>"),
        (lambda t: "Basic " + run.secret(base64.b64encode(f"admin:{t}".encode()).decode(),
                                         "Basic credentials admin:<session token>"),
         "Authorization: Basic admin:<session token>"),
        (lambda t: "Basic " + run.secret(base64.b64encode(f"admin:{srv.api_token}".encode()).decode(),
                                         "Basic credentials admin:<api token>"),
         "Authorization: Basic admin:<api token>"),
    ]
    for make_value, where in malformed_auth:
        value = make_value(misplaced(f"a session token in a malformed {where}"))
        for method, path in (("GET", "/v1/session"), ("GET", "/v1/config"), ("POST", "/v1/session/rotate"),
                             ("GET", "/v1/events"), ("GET", "/metrics")):
            r = run.send(method, path, None, client=srv.client(api_token=None), headers={"Authorization": value},
                         session_token=tok, timeout=5)
            if path.startswith("/v1/"):
                assert r.status_code in (401, 403), describe(r, f"malformed {where}")
    validate_response(run.send("GET", "/v1/session", 200, session_token=tok), 200)  # untouched by all that

    # ---- bad session tokens in the Session-Token header
    unknown = run.secret(unknown_token(), "an unknown (well-formed) session token in Session-Token")
    malformed = run.secret("usm_" + pysecrets.token_hex(30), "a malformed session token in Session-Token")
    longer = run.secret(misplaced("a live session token with characters appended, in Session-Token")
                        + pysecrets.token_urlsafe(6), "a session token with characters appended, in Session-Token")
    for bad, code in ((unknown, "session_unknown"), (malformed, "session_token_malformed"),
                      (longer, "session_token_malformed")):
        for method, path in (("GET", "/v1/session"), ("DELETE", "/v1/session"), ("GET", "/v1/session/data"),
                             ("PUT", "/v1/session/data"), ("POST", "/v1/session/rotate")):
            kw = {"json_body": {"data": 1}} if method == "PUT" else {}
            assert_error(run.send(method, path, 401, session_token=bad, **kw), 401, code)
    # A session token where none is expected (admin routes).
    adm = misplaced("a session token in Session-Token of admin routes (GET /v1/users, /v1/sessions, /v1/config)")
    for path in ("/v1/users", "/v1/sessions", "/v1/config"):
        run.send("GET", path, 200, session_token=adm)

    # ---- raw requests: malformed header lines and request lines carrying tokens
    raw_payloads = [
        ("a header line without a colon", lambda t:
            b"GET /v1/session HTTP/1.1\r\nHost: x\r\nSession-Token" + t.encode() + b"\r\nConnection: close\r\n\r\n"),
        ("a malformed request line", lambda t:
            ("GET /v1/session?token=" + t + " HTTP/1.1 extra\r\nHost: x\r\nConnection: close\r\n\r\n").encode()),
        ("a control character in Authorization", lambda t:
            http_head("GET", "/v1/session", [("Authorization", b"Bearer \x01" + t.encode())])),
        ("an oversized header (431)", lambda t:
            http_head("GET", "/v1/session", [("Session-Token", t), ("X-Pad", "p" * 20000)], api_token=srv.api_token)),
        ("a DEL character after the Session-Token value", lambda t:
            http_head("GET", "/v1/session", [("Session-Token", t + "\x7f")], api_token=srv.api_token)),
        ("a request whose headers never end", lambda t:
            b"GET /v1/session HTTP/1.1\r\nHost: x\r\nSession-Token: " + t.encode() + b"\r\n"),
        ("an HTTP/1.0 request line with the token as its path", lambda t: f"GET /{t} HTTP/1.0\r\n\r\n".encode()),
    ]
    for where, payload in raw_payloads:
        try:
            raw_request(srv, payload(misplaced(f"a session token in a raw request: {where}")), timeout=1.0)
        except OSError:
            pass

    # ---- the expired session (idle timeout 2 s), logout, delete all
    time.sleep(max(0.0, expiring_at + 0.3 - time.monotonic()))
    assert_error(run.send("GET", "/v1/session", 401, session_token=expiring["token"]), 401,
                 ("session_expired", "session_unknown"))
    validate_response(run.send("DELETE", "/v1/session", 204, session_token=tok), 204)
    assert_error(run.send("DELETE", "/v1/session", 401, session_token=tok), 401, "session_unknown")
    last = create(run, unique("leak-last"))
    assert_error(run.send("DELETE", "/v1/sessions", 400), 400, "confirmation_required")
    remaining = validate_response(run.send("DELETE", "/v1/sessions", 200, params={"confirm": "true"}), 200)
    assert remaining["deleted"] >= 2, remaining  # `other` and `last` at least
    assert_error(run.send("GET", "/v1/session", 401, session_token=last["token"]), 401, "session_unknown")

    # ---- every operation of openapi.yaml was answered 2xx at least once
    missing = spec_operations() - run.covered
    assert not missing, f"operations of openapi.yaml never answered 2xx: {sorted(missing)}"
    assert run.attempted >= spec_operations()

    # ---- collect the sinks: /metrics (gzip too), then the log once the server has stopped
    metrics_plain = requests.get(srv.base + "/metrics", headers={"Accept-Encoding": "identity"}, timeout=HTTP_TIMEOUT)
    metrics_gzip = requests.get(srv.base + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=HTTP_TIMEOUT)
    assert metrics_plain.status_code == 200 and metrics_gzip.status_code == 200
    srv.assert_serving()
    wait_for_log(srv, ["session created", *(f"reason={reason}" for reason in ENDED_REASONS)])
    srv.stop()
    stderr = srv.stderr_text()
    stdout = srv.stdout_path.read_bytes().decode("utf-8", "replace")

    # ---- the log is real: not empty, below info level, request-driven lines, a route named
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "sessiond wrote nothing to stderr at --log-level trace"
    levels = {m.group(1) for line in lines if (m := re.search(r"\s(trace|debug|info|notice|warning|error|critical)\s",
                                                            line))}
    assert levels & {"trace", "debug"}, f"no trace or debug line at --log-level trace (levels: {sorted(levels)})\n" \
                                        + "\n".join(lines[:20])
    created_lines = [line for line in lines if "session created" in line and a["id"] in line]
    assert created_lines, f"no 'session created' line for {a['id']} (opened by POST /v1/sessions):\n" + stderr[-4000:]
    ended = {reason: any("session ended" in line and f"reason={reason}" in line for line in lines)
             for reason in ENDED_REASONS}
    assert all(ended.values()), f"missing 'session ended' lines by reason: {ended}\n" + stderr[-4000:]
    route_lines = [line for line in lines if ROUTE_IN_TEXT.search(line)]
    assert route_lines, "no log line names a route of openapi.yaml:\n" + stderr[-4000:]

    # ---- no secret anywhere
    sinks = {"sessiond's stderr": stderr, "sessiond's stdout": stdout, "the /metrics body": metrics_plain.text,
             "the gzip /metrics body": metrics_gzip.text, "the /v1/events streams": run.event_text}
    leaks = find_leaks(sinks, run.secrets)
    if leaks:
        pytest.fail(f"SECRET LEAK: {len(leaks)} secret(s) found in the log or /metrics of sessiond "
                    f"(--log-level trace):\n" + "\n".join(leaks[:40]), pytrace=False)
