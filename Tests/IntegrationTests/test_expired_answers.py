"""`session_expired` means what it says: a session that ended by idle or absolute timeout answers
401 session_expired (with the reason) for --expired-token-retention after its end, before and after
the reaper removed it, and after a restart when the end happened while sessiond was down; a logout,
a revocation or a rotation leaves session_unknown."""

from __future__ import annotations

import time

import pytest

from conftest import assert_error, metric, scrape, unique


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


def test_an_expired_session_not_yet_reaped_answers_the_same(make_server):
    # A validation can find the session before the reaper: it ends it on the spot; the next one
    # finds only its token among the expired ones. Both answer session_expired.
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
    time.sleep(2.8)
    assert_error(client.validate(created["token"]), 401, "session_unknown")


@pytest.mark.storage("sqlite")
def test_a_session_that_expired_while_sessiond_was_down_answers_session_expired(make_server):
    server = make_server()
    client = server.client()
    created = client.create(unique(), idleTimeout=2)
    logged_out = client.create(unique(), idleTimeout=2)
    assert client.delete("/v1/session", session_token=logged_out["token"]).status_code == 204
    assert server.stop() == 0
    time.sleep(2.5)
    server.start()
    client = server.client()
    expect_expired(client, created["token"], "idle_timeout")
    assert_error(client.validate(logged_out["token"]), 401, "session_unknown")
