"""A subscriber too slow to keep up is disconnected and counted; a fast one misses nothing."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

# The hub's flow control does not depend on the store, and on a Redis Cluster each event reaches the
# subscribers at the tail's next look (up to 50 ms): the one-login-at-a-time filling of the socket
# buffers (thousands of logins) would take minutes there. The other backends run it.
pytestmark = pytest.mark.redis_topology("standalone")


def open_stream(server, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((server.host, server.port))
    sock.sendall(
        f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_token}\r\n\r\n".encode()
    )
    head = b""
    while b": connected" not in head:
        chunk = sock.recv(4096)
        assert chunk, "stream closed before it started"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def dropped(server) -> float:
    text = requests.get(f"{server.base}/metrics", timeout=5).text
    line = next(l for l in text.splitlines() if l.startswith("sessiond_events_dropped_total "))
    return float(line.split()[1])


def test_slow_subscriber_is_disconnected_and_counted(make_server):
    server = make_server()
    slow = open_stream(server, receive_buffer=4096)  # never reads until the end
    fast = open_stream(server)
    received = bytearray()
    stop = threading.Event()

    def read_fast():
        fast.settimeout(0.5)
        while not stop.is_set():
            try:
                chunk = fast.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    assert dropped(server) == 0

    # ~500-byte frames (long usernames): 6,000 creations and 6,000 endings ≈ 6 MB, more than the
    # subscriber buffer (256 KiB) plus the kernel's socket buffers (tcp_wmem max 4 MiB here).
    # Endings come from revoke-all per user, 100 at a time, so the fast reader sees small bursts.
    session = requests.Session()
    headers = {"Authorization": f"Bearer {server.api_token}"}
    users = [f"{index:03d}-" + "x" * 250 for index in range(60)]
    for index in range(6000):
        answer = session.post(f"{server.base}/v1/sessions", json={"username": users[index % 60]}, headers=headers, timeout=5)
        assert answer.status_code == 201
    for done, user in enumerate(users, start=1):
        answer = session.delete(f"{server.base}/v1/users/{user}/sessions", headers=headers, timeout=5)
        assert answer.json()["deleted"] == 100
        # The fast subscriber is fast only if it keeps up: a burst of endings is 100 events (~50 KB),
        # far below its buffer, as long as the next burst waits for it. Without this pause, on a busy
        # machine (memory storage answers at once) this thread outran the reader thread by megabytes.
        deadline = time.time() + 5
        while received.count(b"event: ended") < done * 100 and time.time() < deadline:
            time.sleep(0.005)

    deadline = time.time() + 10
    while dropped(server) == 0 and time.time() < deadline:
        time.sleep(0.2)
    assert dropped(server) > 0, "the slow subscriber's missed events were not counted"

    # The fast subscriber saw every creation and ending.
    deadline = time.time() + 15
    while received.count(b"event: ended") < 6000 and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    reader.join(timeout=2)
    assert received.count(b"event: created") == 6000
    assert received.count(b"event: ended") == 6000

    # The slow connection is closed by the server once it can be touched: draining ends with EOF,
    # having delivered only part of the stream.
    slow.settimeout(10)
    total = 0
    while True:
        chunk = slow.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert 0 < total < len(received), (total, len(received))
    fast.close()
    assert requests.get(f"{server.base}/healthz", timeout=5).status_code == 200


def counter(server, name: str) -> float:
    text = requests.get(f"{server.base}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the scrape")


def event_ids(data: bytes) -> list[str]:
    """The ids of the complete events in a stream's bytes (chunked framing included)."""
    ids = []
    for frame in data.split(b"\n\n"):
        for line in frame.split(b"\n"):
            if line.startswith(b"id: ") and b"\ndata: " in frame:
                ids.append(line[4:].strip().decode())
    return ids


class Reader:
    """A subscriber that reads everything as it comes, in a thread: the ids of the events in order."""

    def __init__(self, server):
        self.sock = open_stream(server)
        self.data = bytearray()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                return
            with self.lock:
                self.data.extend(chunk)

    def ids(self) -> list[str]:
        with self.lock:
            return event_ids(bytes(self.data))

    def wait_count(self, count: int, timeout: float = 5) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            ids = self.ids()
            if len(ids) >= count or time.monotonic() > deadline:
                return ids
            time.sleep(0.001)

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()


def test_a_stalled_subscriber_is_counted_with_exactly_the_events_it_missed(make_server):
    """The subscriber stops reading; logins go on, one at a time, until it is cut off. Its
    `sessiond_events_dropped_total` share equals the events between the last one it received (read
    once it resumes reading) and the one that cut it off, and the disconnection is counted once.

    A reference subscriber reads everything: each login's event is known to have been offered to
    every subscriber once the reference has it (events reach all subscribers under one lock), also
    where events arrive through a shared store after the login is answered."""
    server = make_server()
    slow = open_stream(server, receive_buffer=4096)
    reference = Reader(server)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {server.api_token}"}
    dropped_before = counter(server, "sessiond_events_dropped_total")
    cut_before = counter(server, "sessiond_events_subscribers_disconnected_total")
    # ~500-byte frames: about 600 logins fill the 256 KiB buffer and the socket buffers.
    user = "y" * 240
    logins = 0
    try:
        for index in range(20_000):
            answer = session.post(f"{server.base}/v1/sessions", json={"username": f"{user}-{index}"}, headers=headers, timeout=5)
            assert answer.status_code == 201
            logins += 1
            assert len(reference.wait_count(logins)) == logins, "the reference subscriber fell behind"
            if counter(server, "sessiond_events_subscribers_disconnected_total") > cut_before:
                break
        else:
            raise AssertionError("the stalled subscriber was never cut off")
        everything = reference.ids()
    finally:
        reference.close()
    # The last login's event cut it off.
    slow.settimeout(5)
    received = bytearray()
    while True:
        try:
            chunk = slow.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        received.extend(chunk)
    ids = event_ids(bytes(received))
    assert ids == everything[:len(ids)], "events missing or out of order before the cut"
    dropped = counter(server, "sessiond_events_dropped_total") - dropped_before
    assert counter(server, "sessiond_events_subscribers_disconnected_total") == cut_before + 1
    # Every event up to the one that cut it off was either received or counted as dropped.
    assert len(ids) + dropped == logins, (len(ids), dropped, logins)
