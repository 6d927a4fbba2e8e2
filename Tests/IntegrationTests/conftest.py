"""Black-box integration tests for sessiond: the fixtures and the markers that pick a backend.

The helpers live in modules of their own, which the tests import by name:

- ``sessiond_server``: ``Server`` (one sessiond process) and ``Client`` (its API), ``unchanged``,
  ``unique``;
- ``openapi_contract``: ``validate_response`` and ``assert_error`` against ``openapi.yaml``;
- ``redis_servers``: ``RedisServer`` and ``RedisCluster`` on free loopback ports;
- ``raw_http``: requests and responses over a bare socket;
- ``metrics_samples``: ``scrape`` and ``metric`` for ``/metrics``.

Every test module gets its own real sessiond process (module-scoped ``server`` fixture), started on a
free loopback port with an API token file in a temporary directory, its stderr captured to a file so
that tests can assert on the log. Tests that need special flags start their own server through the
``make_server`` factory (stopped at the end of the test).

The process runs with its workdir as cwd, so sessiond's default SQLite storage (``--data-dir ./data``)
lands in ``workdir/data`` (``Server.data_dir``). ``Server.start()`` waits for ``/readyz`` 200 (storage
replayed); ``start(wait_ready=False)`` only for ``/healthz``. ``stop()`` (SIGTERM) or ``kill9()`` and
then ``start()`` again restarts the same server: same port, same data directory, a new log file.

The binary comes from ``$SESSIOND_BIN`` (default ``<repo>/.build/debug/sessiond``).

The suite is written against the behaviour of the session backend, not one implementation of it:
``$SESSIOND_TEST_STORAGE`` (default ``sqlite``) is the ``--storage`` every server gets unless a test
passes its own. Tests that need a particular backend (restarts that keep sessions, the SQLite file)
are marked ``@pytest.mark.storage("sqlite")`` and skipped under another one. With ``redis``, every
server gets its own ``redis-server`` (``RedisServer``) on a free loopback port, kept across the
server's restarts and stopped with it. With ``$SESSIOND_TEST_REDIS=cluster`` as well, that Redis is a
Redis Cluster of three primaries (``RedisCluster``) instead, and modules that test one Redis server
(``@pytest.mark.redis_topology("standalone")``) are skipped.
"""

from __future__ import annotations

import pytest

from sessiond_server import REDIS_TOPOLOGY, STORAGE, Client, Server


def pytest_configure(config):
    config.addinivalue_line("markers", "storage(name): the test needs this --storage backend")
    config.addinivalue_line("markers", "redis_topology(name): the test needs this $SESSIOND_TEST_REDIS")


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("storage")
    if marker is not None and marker.args[0] != STORAGE:
        pytest.skip(f"needs --storage {marker.args[0]} (this run: {STORAGE})")
    topology = item.get_closest_marker("redis_topology")
    if topology is not None and topology.args[0] != REDIS_TOPOLOGY:
        pytest.skip(f"needs SESSIOND_TEST_REDIS={topology.args[0]} (this run: {REDIS_TOPOLOGY})")


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """One sessiond per test module. A module may set ``SERVER_ARGS`` (list of flags)."""
    args = getattr(request.module, "SERVER_ARGS", [])
    srv = Server(tmp_path_factory.mktemp("sessiond"), args=args, name=request.module.__name__)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return server.client()


@pytest.fixture
def make_server(tmp_path):
    """Factory for a test's own server: ``make_server(args=[...], env={...}, api_token=...)``."""
    started: list[Server] = []

    def factory(args: list[str] | None = None, start: bool = True, wait_ready: bool = True, **kw) -> Server:
        srv = Server(tmp_path / f"srv{len(started)}", args=args, **kw)
        started.append(srv)
        if start:
            srv.start(wait_ready=wait_ready)
        return srv

    yield factory
    for srv in started:
        srv.close()
