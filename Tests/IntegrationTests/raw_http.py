"""HTTP/1.1 over a bare socket, for requests ``requests`` will not send (malformed heads, partial
bodies) and responses it would hide."""

from __future__ import annotations

import json
import socket
from typing import Any

from sessiond_server import HTTP_TIMEOUT, Server


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"RawResponse({self.status} {self.reason} {self.headers} {self.body[:500]!r})"


def raw_connect(server: Server, timeout: float = HTTP_TIMEOUT) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    return s


def raw_read_response(sock: socket.socket) -> RawResponse | None:
    """Read one HTTP/1.1 response (Content-Length or chunked or until close). None if closed/reset
    before a status line arrived."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None if not buf else _parse_head_only(buf)
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None if not buf else _parse_head_only(buf)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    hd = {k.lower(): v for k, v in headers}
    body = rest
    try:
        if "content-length" in hd:
            n = int(hd["content-length"])
            while len(body) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            body = body[:n]
        elif "chunked" in hd.get("transfer-encoding", "").lower():
            while not body.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            body = _dechunk(body)
        elif status not in (204, 304) and not (100 <= status < 200):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    return RawResponse(status, reason, headers, body)


def _parse_head_only(buf: bytes) -> RawResponse | None:
    try:
        first = buf.split(b"\r\n", 1)[0].decode("latin-1")
        return RawResponse(int(first.split(" ")[1]), "", [], b"")
    except Exception:  # noqa: BLE001
        return None


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def raw_request(server: Server, payload: bytes, timeout: float = HTTP_TIMEOUT) -> RawResponse | None:
    """Send raw bytes on a fresh connection and read one response (None if the server closed it)."""
    with raw_connect(server, timeout) as s:
        try:
            s.sendall(payload)
        except (ConnectionResetError, BrokenPipeError):
            pass
        try:
            return raw_read_response(s)
        except (ConnectionResetError, socket.timeout):
            return None


def http_head(method: str, path: str, headers: list[tuple[str, str]] | None = None,
              body: bytes = b"", server: Server | None = None, api_token: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    if api_token:
        lines.append(f"Authorization: Bearer {api_token}".encode())
    for k, v in headers or []:
        lines.append(k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")))
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
