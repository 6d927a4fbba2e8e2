"""`session_expired` means what it says: a session that ended by idle or absolute timeout answers
401 session_expired (with the reason) for --expired-token-retention after its end, before and after
the reaper removed it, and after a restart when the end happened while sessiond was down; a logout,
a revocation or a rotation leaves session_unknown."""

from __future__ import annotations

import time

import pytest

from metrics_samples import metric, scrape, wait_metric
from openapi_contract import assert_error
from sessiond_server import unique


def expect_expired(client, token: str, reason: str) -> None:
    for attempt in range(3):  # not only once: the answer does not consume anything
        body = assert_error(client.validate(token), 401, "session_expired")
        assert reason in body["error"]["message"], body
    assert_error(client.get("/v1/session/data", session_token=token), 401, "session_expired")
    assert_error(client.post("/v1/session/rotate", session_token=token), 401, "session_expired")
    assert_error(client.delete("/v1/session", session_token=token), 401, "session_expired")


def test_expired_logged_out_revoked_and_rotated_tokens_answer_apart(make_server):
    server = make_server()
    client = server.client()
    idle = client.create(unique(), idleTimeout=2)
    absolute = client.create(unique(), idleTimeout=60, maxLifetime=2)
    logged_out = client.create(unique())
    revoked = client.create(unique())
    rotated = client.create(unique())
    assert client.delete("/v1/session", session_token=logged_out["token"]).status_code == 204
    assert client.delete(f"/v1/sessions/{revoked['id']}").status_code == 204
    assert client.post("/v1/session/rotate", session_token=rotated["token"]).status_code == 200
    time.sleep(2.8)  # past both deadlines; the reaper (every 250 ms) has removed both sessions

    expect_expired(client, idle["token"], "idle_timeout")
    expect_expired(client, absolute["token"], "absolute_timeout")
    for token in (logged_out["token"], revoked["token"], rotated["token"], "usm_" + "A" * 43):
        assert_error(client.validate(token), 401, "session_unknown")
    samples = scrape(server)
    assert metric(samples, "sessiond_session_validations_total", result="expired") >= 6
    assert metric(samples, "sessiond_sessions_expired_total", reason="idle_timeout") == 1


def test_an_expired_session_answers_expired_right_after_its_deadline(make_server):
    # Right after the deadline either the reaper has removed the session (its token is among the
    # expired ones) or the first validation finds it and ends it on the spot (and the next ones find
    # its token among the expired ones): session_expired every time, whichever came first.
    server = make_server()
    client = server.client()
    created = client.create(unique(), idleTimeout=2)
    time.sleep(2.05)
    expect_expired(client, created["token"], "idle_timeout")


def test_expired_tokens_are_forgotten_after_the_retention(make_server):
    server = make_server(args=["--expired-token-retention", "2"])
    client = server.client()
    created = client.create(unique(), idleTimeout=2)
    time.sleep(2.6)
    assert_error(client.validate(created["token"]), 401, "session_expired")
    time.sleep(2.2)  # more than 2 s after the end
    assert_error(client.validate(created["token"]), 401, "session_unknown")


def test_retention_zero_answers_session_unknown_once_removed(make_server):
    server = make_server(args=["--expired-token-retention", "0"])
    client = server.client()
    created = client.create(unique(), idleTimeout=2)
    time.sleep(2)
    # Removed by the reaper (a validation before that would end the session itself: session_expired).
    wait_metric(server, "sessiond_sessions_expired_total", 1, timeout=5, reason="idle_timeout")
    assert_error(client.validate(created["token"]), 401, "session_unknown")


@pytest.mark.storage("sqlite")
def test_a_session_that_expired_while_sessiond_was_down_answers_session_expired(make_server):
    server = make_server()
    client = server.client()
    created_at = time.monotonic()
    created = client.create(unique(), idleTimeout=4)
    logged_out = client.create(unique(), idleTimeout=4)
    assert client.delete("/v1/session", session_token=logged_out["token"]).status_code == 204
    assert server.stop() == 0
    # The session must still have been live when sessiond stopped, and be past its deadline at start.
    assert time.monotonic() - created_at < 3.5, "sessiond took too long to stop for this test"
    time.sleep(max(0.0, created_at + 4.5 - time.monotonic()))
    server.start()
    client = server.client()
    expect_expired(client, created["token"], "idle_timeout")
    assert_error(client.validate(logged_out["token"]), 401, "session_unknown")
