"""The API's contract, from ``openapi.yaml``: every response a test checks with ``validate_response``
is one its operation documents, with the documented schema; ``assert_error`` checks an error's
status, media type, schema and code."""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

REPO = Path(__file__).resolve().parent.parent.parent
OPENAPI_PATH = REPO / "openapi.yaml"

TOKEN_RE = re.compile(r"usm_[A-Za-z0-9_-]{43}")
TOKEN_FULL_RE = re.compile(r"^usm_[A-Za-z0-9_-]{43}$")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ERROR_CT = "application/json;charset=utf-8"

with open(OPENAPI_PATH, "r", encoding="utf-8") as _f:
    SPEC: dict = yaml.safe_load(_f)


def _deref(node: Any, root: dict, depth: int = 0) -> Any:
    """Inline every local ``$ref`` (the document has no recursive schemas)."""
    if depth > 50:
        raise RecursionError("$ref nesting too deep")
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"non-local $ref {ref}"
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _deref(copy.deepcopy(target), root, depth + 1)
        return {k: _deref(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, root, depth + 1) for v in node]
    return node


RESOLVED: dict = _deref(SPEC, SPEC)


def _created_session_schema_is_satisfiable() -> bool:
    sample = {"id": "A" * 22, "username": "u", "createdAt": "2025-01-01T00:00:00.000Z",
              "lastSeenAt": "2025-01-01T00:00:00.000Z", "idleExpiresAt": "2025-01-01T00:00:00.000Z",
              "expiresAt": "2025-01-01T00:00:00.000Z", "idleTimeout": 2, "token": "usm_" + "a" * 43}
    v = OAS30Validator(RESOLVED["components"]["schemas"]["CreatedSession"], format_checker=oas30_format_checker)
    return v.is_valid(sample)


# True when openapi.yaml's CreatedSession can be validated as written (see validate_response).
STRICT_CREATED_SESSION: bool = _created_session_schema_is_satisfiable()


def schema(name: str) -> dict:
    return RESOLVED["components"]["schemas"][name]


def validate_schema(instance: Any, sch: dict, what: str = "") -> None:
    validator = OAS30Validator(sch, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{what} does not match its schema: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
    ) + f"\ninstance: {json.dumps(instance)[:2000]}"


def _match_template(template: str, path: str) -> bool:
    regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
    return re.match(regex, path) is not None


def operation_for(method: str, path: str) -> tuple[str, dict]:
    path = urllib.parse.urlsplit(path).path
    for template, item in RESOLVED["paths"].items():
        if _match_template(template, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"no operation {method} {path} in openapi.yaml")


def validate_response(resp: requests.Response, status: int | None = None) -> Any:
    """Assert that ``resp`` is a documented response of its operation and matches its schema.

    Returns the decoded JSON body (or None for bodiless responses).
    """
    method = resp.request.method
    path = resp.request.path_url
    if status is not None:
        assert resp.status_code == status, describe(resp, f"expected status {status}")
    template, op = operation_for(method, path)
    responses = op["responses"]
    key = str(resp.status_code)
    assert key in responses, describe(
        resp, f"status {key} is not documented for {method} {template} (documented: {sorted(responses)})"
    )
    documented = responses[key]
    content = documented.get("content")
    if not content:
        assert resp.content == b"", describe(resp, "expected an empty body")
        return None
    ctype = resp.headers.get("Content-Type", "")
    media = ctype.split(";")[0].strip().lower()
    assert media in content, describe(resp, f"Content-Type {ctype!r} not documented ({sorted(content)})")
    if media != "application/json":
        return resp.content
    body = json_body(resp)
    sch = content[media]["schema"]
    if sch == schema("CreatedSession") and STRICT_CREATED_SESSION is False:
        # openapi.yaml defect: CreatedSession = allOf[Session, {token}] but Session has
        # additionalProperties: false, so no object with a token can match. Until the document is fixed,
        # validate the token part and the Session part separately (test_api.py::
        # test_openapi_created_session_schema_admits_a_token fails meanwhile, to keep the defect visible).
        assert isinstance(body, dict), describe(resp, "not an object")
        token_part, session_part = sch["allOf"][1], sch["allOf"][0]
        validate_schema({"token": body.get("token")}, token_part, f"{method} {template} -> {key} token")
        validate_schema({k: v for k, v in body.items() if k != "token"}, session_part,
                        f"{method} {template} -> {key} body")
    else:
        validate_schema(body, sch, f"{method} {template} -> {key} body")
    if resp.status_code < 300:
        assert "no-store" in resp.headers.get("Cache-Control", ""), describe(
            resp, "successful JSON response without Cache-Control: no-store"
        )
    return body


def json_body(resp: requests.Response) -> Any:
    try:
        return json.loads(resp.content.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(describe(resp, f"body is not JSON ({exc})")) from exc


def describe(resp: requests.Response, msg: str = "") -> str:
    req = resp.request
    body = req.body
    if isinstance(body, bytes) and len(body) > 300:
        body = body[:300] + b"..."
    elif isinstance(body, str) and len(body) > 300:
        body = body[:300] + "..."
    return (
        f"{msg}\n  request: {req.method} {req.path_url} body={body!r}"
        f"\n  response: {resp.status_code} {dict(resp.headers)} {resp.content[:600]!r}"
    )


def assert_error(resp: requests.Response, status: int, code: str | Iterable[str]) -> dict:
    """Assert an error response: status, Content-Type, the Error schema, and the exact code."""
    codes = {code} if isinstance(code, str) else set(code)
    assert resp.status_code == status, describe(resp, f"expected {status} {sorted(codes)}")
    ctype = resp.headers.get("Content-Type", "").replace(" ", "").lower()
    assert ctype == ERROR_CT, describe(resp, "error Content-Type should be 'application/json; charset=utf-8'")
    body = json_body(resp)
    validate_schema(body, schema("Error"), "error body")
    assert body["error"]["code"] in codes, describe(resp, f"expected code in {sorted(codes)}")
    assert body["error"]["message"], describe(resp, "empty error message")
    if status == 401 and body["error"]["code"] == "api_token_missing":
        assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), describe(
            resp, "401 api_token_missing without WWW-Authenticate: Bearer"
        )
    if status == 405:
        assert resp.headers.get("Allow"), describe(resp, "405 without Allow header")
    return body


def assert_time(value: str, what: str = "timestamp") -> None:
    assert isinstance(value, str) and TIME_RE.match(value), f"{what} {value!r} is not RFC 3339 UTC with ms"


def parse_time(value: str) -> float:
    """RFC 3339 'YYYY-MM-DDTHH:MM:SS.mmmZ' -> epoch seconds (float)."""
    assert_time(value)
    import datetime as _dt

    dt = _dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()
