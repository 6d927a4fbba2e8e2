"""Least privilege: with --admin-token-file, the administrative operations (listings, revoking by id or by
user, deleting all, the configuration) need an admin token and an API token keeps the application ones
(login, validate, data, rotate, logout, events); token files hold several tokens, one a line."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from openapi_contract import assert_error, validate_response
from raw_http import http_head, raw_request
from redis_servers import free_port
from sessiond_server import unique
from test_security import run_refusal

ADMINISTRATIVE = [
    ("GET", "/v1/sessions"), ("DELETE", "/v1/sessions?confirm=true"), ("GET", "/v1/sessions/{id}"),
    ("DELETE", "/v1/sessions/{id}"), ("GET", "/v1/users"), ("DELETE", "/v1/users/{username}/sessions"),
    ("GET", "/v1/config"), ("PATCH", "/v1/config"),
]


def write_tokens(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def new_token(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(24)}"


@pytest.fixture
def scoped(make_server, tmp_path):
    """A server with an API token (the fixture's) and two admin tokens, logging at trace level."""
    admins = [new_token("admin"), new_token("admin2")]
    path = write_tokens(tmp_path / "admin-tokens", ["# admin tokens", "", admins[0], f"  {admins[1]}  "])
    srv = make_server(args=["--admin-token-file", str(path), "--log-level", "trace"])
    return srv, admins


def call(client, method: str, template: str, session: dict):
    path = template.replace("{id}", session["id"]).replace("{username}", session["username"])
    body = {"idleTimeout": 60} if method == "PATCH" else ...
    return client.request(method, path, json_body=body)


def test_an_api_token_keeps_the_application_routes_only(scoped):
    srv, admins = scoped
    application = srv.client()
    session = application.create(unique("scope"))
    token = session["token"]
    validate_response(application.validate(token), 200)
    validate_response(application.put("/v1/session/data", session_token=token, json_body={"data": {"a": 1}}), 200)
    validate_response(application.get("/v1/session/data", session_token=token), 200)
    rotated = validate_response(application.post("/v1/session/rotate", session_token=token), 200)
    with application.get("/v1/events", stream=True, timeout=5) as events:
        assert events.status_code == 200
    for method, template in ADMINISTRATIVE:
        assert_error(call(application, method, template, session), 403, "api_token_insufficient_scope")
    # Nothing was changed by the refused calls.
    validate_response(application.validate(rotated["token"]), 200)
    validate_response(application.delete("/v1/session", session_token=rotated["token"]), 204)


@pytest.mark.parametrize("which", [0, 1])
def test_an_admin_token_grants_every_route(scoped, which):
    srv, admins = scoped
    admin = srv.client(api_token=admins[which])
    session = admin.create(unique("admin"))
    validate_response(admin.validate(session["token"]), 200)
    for method, template in ADMINISTRATIVE:
        if method == "DELETE":
            continue
        assert call(admin, method, template, session).status_code == 200, (method, template)
    assert validate_response(call(admin, "DELETE", "/v1/sessions/{id}", session), 204) is None
    other = admin.create(unique("admin"))
    validate_response(call(admin, "DELETE", "/v1/users/{username}/sessions", other), 200)


def test_unknown_and_missing_tokens_on_administrative_routes(scoped):
    srv, admins = scoped
    session = srv.client().create(unique("scope"))
    for method, template in ADMINISTRATIVE:
        assert_error(call(srv.client(api_token=None), method, template, session), 401, "api_token_missing")
        assert_error(call(srv.client(api_token=admins[0] + "x"), method, template, session), 403,
                     "api_token_invalid")
    validate_response(srv.client().validate(session["token"]), 200)


def test_a_method_a_route_lacks_is_405_only_for_who_may_call_the_route(scoped):
    srv, admins = scoped
    application = srv.client()
    # /v1/sessions has an application operation (login): the API token learns that PUT is not one.
    assert_error(application.put("/v1/sessions", json_body={}), 405, "method_not_allowed")
    # /v1/users is administrative only: the API token learns nothing about its methods.
    assert_error(application.put("/v1/users", json_body={}), 403, "api_token_insufficient_scope")
    assert_error(srv.client(api_token=admins[0]).put("/v1/users", json_body={}), 405, "method_not_allowed")


def test_the_startup_line_counts_the_tokens_and_no_log_or_metric_shows_them(scoped):
    srv, admins = scoped
    line = srv.startup_line()
    assert "api_tokens=1" in line and "admin_tokens=2" in line, line
    session = srv.client().create(unique("quiet"))
    for token in (srv.api_token, *admins, admins[0][:-1]):
        for method, template in ADMINISTRATIVE[:1] + ADMINISTRATIVE[6:7]:
            call(srv.client(api_token=token), method, template, session)
    metrics = srv.client(api_token=None).get("/metrics").text
    text = srv.stderr_text()
    assert "session created" in text  # the trace log is on
    for secret in (srv.api_token, *admins):
        assert secret not in text and secret not in metrics


def test_several_api_tokens_rotate_without_downtime(make_server, tmp_path):
    old, new = new_token("old"), new_token("new")
    path = write_tokens(tmp_path / "api-tokens", [old, "# the next one", new])
    srv = make_server(api_token=None, args=["--api-token-file", str(path)])
    for token in (old, new):
        session = srv.client(api_token=token).create(unique("rotate"))
        validate_response(srv.client(api_token=token).validate(session["token"]), 200)
        # Without admin tokens, an API token grants every route.
        validate_response(srv.client(api_token=token).get("/v1/config"), 200)
    assert_error(srv.client(api_token=old[:-1]).get("/v1/config"), 403, "api_token_invalid")
    write_tokens(path, [new])
    srv.restart()
    assert_error(srv.client(api_token=old).get("/v1/config"), 403, "api_token_invalid")
    validate_response(srv.client(api_token=new).get("/v1/config"), 200)


def test_admin_tokens_alone_leave_the_application_routes_open_on_loopback(make_server, tmp_path):
    admin = new_token("admin")
    srv = make_server(api_token=None, env={"SESSIOND_ADMIN_TOKEN": admin})
    anonymous = srv.client(api_token=None)
    session = anonymous.create(unique("open"))
    validate_response(anonymous.validate(session["token"]), 200)
    assert_error(anonymous.get("/v1/config"), 401, "api_token_missing")
    validate_response(srv.client(api_token=admin).get("/v1/config"), 200)
    assert admin not in srv.stderr_text()


@pytest.mark.parametrize("problem", ["same token in both", "empty file", "short token", "unreadable"])
def test_bad_token_files_are_refused_at_start(tmp_path, problem):
    shared = new_token("shared")
    api = write_tokens(tmp_path / "api", [shared])
    admin = {
        "same token in both": write_tokens(tmp_path / "admin", [new_token("admin"), shared]),
        "empty file": write_tokens(tmp_path / "admin", ["# nothing", ""]),
        "short token": write_tokens(tmp_path / "admin", ["short"]),
        "unreadable": tmp_path / "absent",
    }[problem]
    proc = run_refusal(["--host", "127.0.0.1", "--port", str(free_port()), "--storage", "memory",
                        "--api-token-file", str(api), "--admin-token-file", str(admin)])
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, stderr
    assert "admin token" in stderr or "token file" in stderr or "no admin token" in stderr, stderr
    assert shared not in stderr


@pytest.mark.parametrize("separator", [b"\x00", b"\t", b"", b"  "])
def test_the_bearer_scheme_needs_exactly_one_space(server, separator):
    """`Bearer` then one space: a byte that case-folds to a space (NUL) or any other separator is not it."""
    head = http_head("GET", "/v1/config", [("Authorization", b"Bearer" + separator + server.api_token.encode())])
    response = raw_request(server, head)
    assert response is not None and response.status in (400, 401, 403), response and response.status
    if response.status != 400:
        assert b"api_token_missing" in response.body or b"api_token_invalid" in response.body, response.body
