#!/usr/bin/env python3
"""Checks the Grafana dashboards (and the PromQL of the Prometheus rules) without Grafana.

Checks:
  1. structure: the dashboard-linter rules we rely on (uid, datasource/job/instance variables,
     panels with title, description, unit and targets, target datasource, $__rate_interval,
     job/instance matchers on every selector, counters only under rate/irate/increase);
  2. PromQL offline: every expr of targets, variables and annotations, with the variables
     substituted ($__rate_interval/$__interval -> 1m, $__range -> 1h, $job/$instance -> .+),
     written into a temporary rules file and checked with `promtool check rules`;
  3. --live PROMETHEUS_URL: every dashboard expr and every recording-rule expr is run with
     `promtool query instant URL expr`; an error or an EMPTY result fails. Alert and annotation
     exprs (filters, normally empty) must not error and each of their selectors must be non-empty.
Rules: the conventions stated in prometheus/rules/sessiond.rules.yml (level:metric:operations names; Sessiond* alerts with severity,
summary, description, a runbook_url to their RUNBOOK.md section, `for:` when rate-based) and a
promtool unit test per alert that expects it to fire and one that expects it to stay quiet.
Also: every metric name used in dashboards and rules must be in the metric catalogue (docs/metrics.md)
(or be a recording rule, or `up`), with label names/values the catalogue allows, and no
user-identifying label; the store gauges (sessiond_sessions_active, sessiond_realtime_users,
sessiond_users_seen) are only read through a `max by (store, ...)` or `max without (instance)`
(instances sharing a store report the same value). With --scrape METRICS_URL, every catalogue name
and every used name must appear in that real scrape, except the families of another storage mode:
sessiond_storage_* exist only with --storage sqlite and sessiond_redis_* only with --storage redis,
and those of the other modes must be absent. The mode is --storage, or what the scrape (else the
live Prometheus) shows. With --live, an expr that reads only families absent in that mode must run
and return nothing.

Usage:
  dashboards/check_dashboards.py                                   # structure + offline PromQL
  dashboards/check_dashboards.py --scrape http://127.0.0.1:8080/metrics \\
                                 --live http://127.0.0.1:9090 [--storage sqlite|redis|memory]   # + live checks
Exit status 0 when everything passed, 1 when something failed, 2 on a usage/setup error.
Needs Python 3.9+ and PyYAML (Debian python3-yaml), and promtool (Debian prometheus).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check_dashboards: PyYAML is required (apt-get install python3-yaml)")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# --------------------------------------------------------------------------------------------------
# The metric catalogue (docs/metrics.md; names are API). type, labels, enumerated label values.
TARGET_LABELS = {"job", "instance"}
CATALOGUE: dict[str, tuple[str, dict[str, set[str] | None]]] = {
    # Store gauges: the whole store's value, with its id in `store` (12 hex characters for an SQLite
    # file or a Redis store, memory-<hex> for --storage memory); absent while the store cannot be read.
    "sessiond_sessions_active": ("gauge", {"store": None}),
    "sessiond_realtime_users": ("gauge", {"store": None}),
    "sessiond_users_seen": ("gauge", {"store": None, "window": {"1m", "5m", "15m"}}),
    "sessiond_sessions_created_total": ("counter", {}),
    "sessiond_sessions_expired_total": ("counter", {"reason": {"idle_timeout", "absolute_timeout"}}),
    "sessiond_sessions_ended_total": ("counter", {"reason": {"logout", "revoked", "evicted", "idle_timeout", "absolute_timeout"}}),
    "sessiond_session_validations_total": ("counter", {"result": {"valid", "unknown", "expired", "malformed"}}),
    "sessiond_session_duration_seconds": ("histogram", {}),
    "sessiond_http_requests_total": ("counter", {"code": None, "method": None, "route": None}),
    "sessiond_http_request_duration_seconds": ("histogram", {"method": None, "route": None}),
    "sessiond_events_dropped_total": ("counter", {}),
    "sessiond_events_subscribers_disconnected_total": ("counter", {"reason": {"slow"}}),
    "sessiond_http_connections_open": ("gauge", {}),
    "sessiond_http_connections_max": ("gauge", {}),
    "sessiond_http_connections_refused_total": (
        "counter", {"reason": {"per_client_limit", "connection_limit", "header_timeout", "body_timeout"}}),
    "sessiond_build_info": ("gauge", {"version": None, "revision": None, "swift_version": None}),
    "process_cpu_seconds_total": ("counter", {}),
    "process_open_fds": ("gauge", {}),
    "process_max_fds": ("gauge", {}),
    "process_virtual_memory_bytes": ("gauge", {}),
    "process_virtual_memory_max_bytes": ("gauge", {}),
    "process_resident_memory_bytes": ("gauge", {}),
    "process_start_time_seconds": ("gauge", {}),
    "process_threads": ("gauge", {}),
    "promhttp_metric_handler_requests_total": ("counter", {"code": None}),
    "promhttp_metric_handler_requests_in_flight": ("gauge", {}),
    # Durable storage (docs/metrics.md): exported with --storage sqlite (the default) only, absent
    # with --storage memory and --storage redis (STORAGE_FAMILIES).
    "sessiond_storage_writes_total": ("counter", {"kind": {"upsert", "touch", "remove"}}),
    "sessiond_storage_commits_total": ("counter", {}),
    "sessiond_storage_errors_total": ("counter", {"error": {"disk_full", "io_error", "corrupt_database", "data_directory_not_writable"}}),
    "sessiond_storage_commit_batch_size": ("histogram", {}),
    "sessiond_storage_commit_duration_seconds": ("histogram", {}),
    "sessiond_storage_pending_changes": ("gauge", {}),
    "sessiond_storage_uncommitted_age_seconds": ("gauge", {}),
    "sessiond_storage_writable": ("gauge", {}),
    "sessiond_storage_file_bytes": ("gauge", {}),
    "sessiond_storage_replay_duration_seconds": ("gauge", {}),
    "sessiond_storage_replayed_sessions": ("gauge", {"outcome": {"restored", "expired", "skipped"}}),
    # one value per process (commit or interval): not enumerated, or --scrape would want both
    "sessiond_storage_info": ("gauge", {"durability": None}),
    # Redis (docs/metrics.md): exported with --storage redis only (STORAGE_FAMILIES).
    "sessiond_redis_up": ("gauge", {}),
    "sessiond_redis_command_duration_seconds": ("histogram", {"operation": {
        "create", "validate", "data", "set_data", "rotate", "logout", "session", "revoke", "revoke_user",
        "delete_some", "reap", "list", "user_sessions", "users", "stats", "configure", "configuration",
        "update_configuration", "forget_seen", "statistics", "other"}}),
    "sessiond_redis_errors_total": ("counter", {"error": {"connect", "timeout", "io", "reply", "closed"}}),
    "sessiond_redis_reconnects_total": ("counter", {}),
    "sessiond_redis_reaper_runs_total": ("counter", {}),
    "sessiond_redis_sessions_reaped_total": ("counter", {}),
}
# Families that exist with one --storage mode only (by name prefix); with --storage memory, neither.
STORAGE_FAMILIES = {"sqlite": "sessiond_storage_", "redis": "sessiond_redis_"}
STORAGE_MODES = ("sqlite", "redis", "memory")
# The store gauges and the `store` label values each storage mode gives them.
STORE_GAUGES = ("sessiond_sessions_active", "sessiond_realtime_users", "sessiond_users_seen")
STORE_ID = {"sqlite": r"[0-9a-f]{12}", "redis": r"[0-9a-f]{12}", "memory": r"memory-[0-9a-f]+"}
# A store gauge must sit right inside one of these aggregations (one value per store).
STORE_AGGREGATION_RE = re.compile(r"max\s*(?:by\s*\([^()]*\bstore\b[^()]*\)|without\s*\(\s*instance\s*\))\s*\(\s*$")
STORE_GAUGE_RE = re.compile(r"(?<![\w:])(" + "|".join(STORE_GAUGES) + r")(?![\w:])")
# Series that Prometheus itself writes for every target (not in a scrape; checked live only).
SYNTHETIC = {"up": ("gauge", {}), "scrape_duration_seconds": ("gauge", {}),
             "scrape_samples_scraped": ("gauge", {}), "scrape_samples_post_metric_relabeling": ("gauge", {}),
             "scrape_series_added": ("gauge", {})}
# Labels that must never appear: they would identify users, sessions or requests.
FORBIDDEN_LABELS = {"user", "username", "user_id", "session", "session_id", "token", "ip", "path"}
# Grafana unit ids we accept (a subset of packages/grafana-data/src/valueFormats/categories.ts).
UNITS = {"none", "short", "percent", "percentunit", "ops", "reqps", "rps", "wps", "cps", "s", "ms", "us", "ns",
         "dtdurations", "bytes", "decbytes", "bits", "Bps", "binBps", "bps", "hertz", "locale", "string", "bool"}
PANEL_TYPES = {"timeseries", "stat", "heatmap"}
RATE_FUNCS = {"rate", "irate", "increase"}
SUBSTITUTIONS = [(r"\$\{?__rate_interval\}?", "1m"), (r"\$\{?__interval\}?", "1m"), (r"\$\{?__range\}?", "1h"),
                 (r"\$\{?job(?::\w+)?\}?", ".+"), (r"\$\{?instance(?::\w+)?\}?", ".+")]
UID_MAX = 40
RUNBOOK = os.path.join(REPO, "prometheus", "RUNBOOK.md")
RUNBOOK_URL = "https://github.com/users-session-manager/users-session-manager/blob/main/prometheus/RUNBOOK.md"
SEVERITIES = {"critical", "warning", "info"}

# --------------------------------------------------------------------------------------------------
# A small PromQL scanner: enough to find selectors, their matchers, range and enclosing function,
# and grouping labels. promtool does the real parsing (offline check).
TOKEN_RE = re.compile(r"""
   (?P<ws>\s+)
  |(?P<comment>\#[^\n]*)
  |(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  |(?P<range>\[[^\]]*\])
  |(?P<dur>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  |(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  |(?P<var>\$\{?\w+(?::\w+)?\}?)
  |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}@])
""", re.X)
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
GROUP_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OTHER_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


@dataclass
class Selector:
    name: str | None
    matchers: list[tuple[str, str, str]]
    range: str | None
    func: str | None

    def text(self) -> str:
        inner = ", ".join(f'{l}{op}"{v}"' for l, op, v in self.matchers if l != "__name__")
        return f"{self.name or ''}{{{inner}}}"


@dataclass
class Scan:
    selectors: list[Selector] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def tokenize(expr: str):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"cannot scan PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def unquote(s: str) -> str:
    if s.startswith("`"):
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def scan(expr: str) -> Scan:
    res = Scan()
    try:
        toks = tokenize(expr)
    except ValueError as e:
        res.errors.append(str(e))
        return res
    stack: list[str | None] = []
    pending: str | None = None
    i, n = 0, len(toks)

    def peek(k=0):
        return toks[i + k] if i + k < n else (None, None)

    def parse_matchers(j):
        matchers = []
        assert toks[j] == ("op", "{")
        j += 1
        while j < n and toks[j] != ("op", "}"):
            if toks[j][1] == ",":
                j += 1
                continue
            if j + 2 >= n or toks[j][0] != "ident" or toks[j + 1][0] != "op" or toks[j + 2][0] != "str":
                raise ValueError(f"bad label matcher near {toks[j][1]!r}")
            matchers.append((toks[j][1], toks[j + 1][1], unquote(toks[j + 2][1])))
            j += 3
        return matchers, j + 1

    try:
        while i < n:
            kind, val = toks[i]
            if kind == "ident":
                low = val.lower()
                if low in GROUP_KEYWORDS:
                    if peek(1) == ("op", "("):
                        j = i + 2
                        while j < n and toks[j] != ("op", ")"):
                            if toks[j][0] == "ident":
                                res.grouping_labels.add(toks[j][1])
                            j += 1
                        i = j + 1
                    else:
                        i += 1
                    continue
                if low in OTHER_KEYWORDS:
                    i += 1
                    continue
                if peek(1) == ("op", "("):
                    pending = val
                    i += 1
                    continue
                if low in AGGREGATIONS and peek(1)[0] == "ident" and peek(1)[1].lower() in ("by", "without"):
                    pending = val
                    i += 1
                    continue
                # a metric selector
                name, matchers, rng = val, [], None
                i += 1
                if peek() == ("op", "{"):
                    matchers, i = parse_matchers(i)
                if peek()[0] == "range":
                    rng = peek()[1][1:-1]
                    i += 1
                res.selectors.append(Selector(name, matchers, rng, stack[-1] if stack else None))
                continue
            if (kind, val) == ("op", "{"):
                matchers, i = parse_matchers(i)
                name = next((v for l, op, v in matchers if l == "__name__" and op == "="), None)
                rng = None
                if peek()[0] == "range":
                    rng = peek()[1][1:-1]
                    i += 1
                res.selectors.append(Selector(name, matchers, rng, stack[-1] if stack else None))
                continue
            if (kind, val) == ("op", "("):
                stack.append(pending)
                pending = None
            elif (kind, val) == ("op", ")"):
                if not stack:
                    raise ValueError("unbalanced ')'")
                stack.pop()
            i += 1
    except (ValueError, AssertionError, IndexError) as e:
        res.errors.append(f"cannot scan PromQL: {e}")
    return res


def substitute(expr: str) -> tuple[str, list[str]]:
    for pat, rep in SUBSTITUTIONS:
        expr = re.sub(pat, rep, expr)
    left = re.findall(r"\$\{?\w+\}?", expr)
    return expr, left


# --------------------------------------------------------------------------------------------------
@dataclass
class Expr:
    where: str          # human-readable location
    kind: str           # target | variable | annotation | record | alert
    raw: str            # as written
    expr: str = ""      # substituted, runnable
    dashboard: bool = False


class Checker:
    def __init__(self, args):
        self.args = args
        self.failures: list[str] = []
        self.passed = 0
        self.exprs: list[Expr] = []
        self.recorded: set[str] = set()
        self.record_exprs: dict[str, list[str]] = {}
        self.used_names: dict[str, list[str]] = {}
        self.mode: str | None = None if args.storage == "auto" else args.storage

    def fail(self, msg: str):
        self.failures.append(msg)
        print(f"FAIL {msg}")

    def ok(self, msg: str):
        self.passed += 1
        if self.args.verbose:
            print(f"ok   {msg}")

    def check(self, cond: bool, msg: str) -> bool:
        (self.ok if cond else self.fail)(msg)
        return cond

    # ---------------------------------------------------------------- dashboards: structure
    def lint_dashboard(self, path: str, seen_uids: dict[str, str]):
        name = os.path.relpath(path, REPO)
        text = open(path, encoding="utf-8").read()
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            self.fail(f"{name}: not valid JSON: {e}")
            return
        self.ok(f"{name}: valid JSON")
        uid = d.get("uid")
        if self.check(isinstance(uid, str) and 0 < len(uid) <= UID_MAX, f"{name}: uid present and <= {UID_MAX} characters ({uid!r})"):
            self.check(uid not in seen_uids, f"{name}: uid {uid!r} unique (also in {seen_uids.get(uid)})")
            seen_uids[uid] = name
        self.check(d.get("id") is None, f"{name}: no fixed numeric id (the uid identifies the dashboard)")
        for key in ("title", "tags", "schemaVersion", "time", "refresh", "version"):
            self.check(key in d, f"{name}: has {key}")
        self.check(d.get("editable") is False, f"{name}: editable is false (uneditable-dashboard)")
        self.check("__inputs" not in d and "__requires" not in d, f"{name}: no __inputs/__requires (file provisioning does not resolve them)")
        self.check("${DS_" not in text and "$DS_" not in text, f"{name}: no ${{DS_...}} data source placeholder")

        variables = d.get("templating", {}).get("list", [])
        ds_vars = [v for v in variables if v.get("type") == "datasource"]
        self.check(len(ds_vars) == 1 and ds_vars[0].get("name") == "datasource" and ds_vars[0].get("query") == "prometheus",
                   f"{name}: exactly one datasource variable named 'datasource' of type prometheus")
        for vname, label, query_re in (("job", "Job", r"^label_values\(\s*sessiond_build_info\s*,\s*job\s*\)$"),
                                       ("instance", "Instance", r'^label_values\(\s*sessiond_build_info\{job=~"\$job"\}\s*,\s*instance\s*\)$')):
            v = next((v for v in variables if v.get("name") == vname), None)
            if not self.check(v is not None, f"{name}: has a '{vname}' variable (template-{vname}-rule)"):
                continue
            q = v.get("query")
            qtext = q.get("query") if isinstance(q, dict) else q
            self.check(v.get("type") == "query" and v.get("label") == label and v.get("multi") is True
                       and v.get("includeAll") is True and v.get("allValue") == ".+" and v.get("refresh") == 2
                       and (v.get("datasource") or {}).get("uid") == "${datasource}"
                       and isinstance(qtext, str) and re.match(query_re, qtext.strip()) is not None,
                       f"{name}: variable '{vname}' is a multi/includeAll query on ${{datasource}} with allValue .+, refresh 2, label {label}, query {query_re}")
            if isinstance(qtext, str):
                self.add_variable_expr(f"{name} variable {vname}", qtext)

        anns = d.get("annotations", {}).get("list", [])
        self.check(any(a.get("builtIn") == 1 for a in anns), f"{name}: keeps the built-in annotation")
        for a in anns:
            if a.get("builtIn") == 1:
                continue
            where = f"{name} annotation {a.get('name')!r}"
            self.check((a.get("datasource") or {}).get("uid") == "${datasource}", f"{where}: datasource uid is ${{datasource}}")
            if self.check(bool(a.get("expr")), f"{where}: has an expr"):
                self.add_dashboard_expr(where, "annotation", a["expr"])

        panels = list(self.iter_panels(d.get("panels", [])))
        ids = [p.get("id") for p in panels]
        self.check(len(ids) == len(set(ids)) and None not in ids, f"{name}: panel ids present and unique")
        self.check(len(panels) > 0, f"{name}: has panels")
        boxes = []
        for p in panels:
            where = f"{name} panel {p.get('id')} {p.get('title')!r}"
            if p.get("type") == "row":
                continue
            self.check(p.get("type") in PANEL_TYPES, f"{where}: type {p.get('type')!r} in {sorted(PANEL_TYPES)}")
            self.check(bool(p.get("title")), f"{where}: has a title (panel-title-description-rule)")
            self.check(bool(p.get("description")), f"{where}: has a description (panel-title-description-rule)")
            unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
            self.check(unit in UNITS, f"{where}: fieldConfig.defaults.unit {unit!r} is a known Grafana unit (panel-units-rule)")
            self.check((p.get("datasource") or {}).get("uid") == "${datasource}", f"{where}: panel datasource uid is ${{datasource}}")
            g = p.get("gridPos", {})
            if self.check(all(isinstance(g.get(k), int) for k in "hwxy") and g.get("x", 0) + g.get("w", 0) <= 24,
                          f"{where}: gridPos h/w/x/y within 24 columns"):
                for other_where, og in boxes:
                    overlap = (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"]
                               and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"])
                    self.check(not overlap, f"{where}: does not overlap {other_where}")
                boxes.append((where, g))
            targets = p.get("targets", [])
            self.check(len(targets) >= 1, f"{where}: has at least one target")
            refids = [t.get("refId") for t in targets]
            self.check(len(refids) == len(set(refids)) and None not in refids, f"{where}: target refIds present and unique")
            for t in targets:
                tw = f"{where} target {t.get('refId')}"
                self.check((t.get("datasource") or {}).get("uid") == "${datasource}", f"{tw}: datasource uid is ${{datasource}}")
                if p.get("type") == "stat":
                    self.check(t.get("instant") is True, f"{tw}: stat panel target is instant")
                legend = t.get("legendFormat", "")
                bad = FORBIDDEN_LABELS & set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
                self.check(not bad, f"{tw}: legend uses no forbidden label {sorted(bad)}")
                if self.check(bool(t.get("expr")), f"{tw}: has an expr"):
                    self.add_dashboard_expr(tw, "target", t["expr"])

    def iter_panels(self, panels):
        for p in panels:
            yield p
            yield from self.iter_panels(p.get("panels", []))

    def add_variable_expr(self, where, query):
        m = re.match(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", query, re.S)
        if m:
            self.add_dashboard_expr(where, "variable", m.group(1))
            return
        m = re.match(r"^\s*query_result\((.*)\)\s*$", query, re.S)
        if m:
            self.add_dashboard_expr(where, "variable", m.group(1))
            return
        if re.match(r"^\s*label_values\(\s*\w+\s*\)\s*$", query):
            return  # no selector
        self.fail(f"{where}: unsupported variable query {query!r}")

    def add_dashboard_expr(self, where, kind, raw):
        e = Expr(where, kind, raw, dashboard=True)
        e.expr, left = substitute(raw)
        self.check(not left, f"{where}: no unknown template variables {left}")
        s = scan(raw)
        for err in s.errors:
            self.fail(f"{where}: {err}")
        for sel in s.selectors:
            if kind == "variable":
                break  # the job/instance variables are what the other selectors filter on
            labels = {l: (op, v) for l, op, v in sel.matchers}
            self.check(labels.get("job") == ("=~", "$job"), f'{where}: {sel.text()} has job=~"$job" (target-job-rule)')
            self.check(labels.get("instance") == ("=~", "$instance"), f'{where}: {sel.text()} has instance=~"$instance" (target-instance-rule)')
            if sel.range is not None:
                self.check(sel.range in ("$__rate_interval", "${__rate_interval}"),
                           f"{where}: {sel.text()}[{sel.range}] uses [$__rate_interval] (target-rate-interval-rule)")
        self.check_metric_usage(where, s)
        self.check_store_gauges(where, raw)
        self.exprs.append(e)

    # ---------------------------------------------------------------- rules
    def load_rules(self):
        files = sorted(set(sum((glob.glob(g) for g in self.args.rules), [])))
        if not files:
            self.fail(f"no rule files match {self.args.rules}")
        for path in files:
            name = os.path.relpath(path, REPO)
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            for g in doc.get("groups", []):
                for r in g.get("rules", []):
                    if "record" in r:
                        self.recorded.add(r["record"])
                        self.record_exprs.setdefault(r["record"], []).append(r["expr"])
            self.rule_files_docs = getattr(self, "rule_files_docs", []) + [(name, doc)]

    def lint_rules(self):
        """The rule conventions, the runbook links, and a unit test per alert."""
        runbook = open(RUNBOOK, encoding="utf-8").read() if os.path.exists(RUNBOOK) else ""
        headings = set(re.findall(r"^## (\S+)\s*$", runbook, re.M))
        fired, quiet = set(), set()
        for path in sorted(set(sum((glob.glob(g) for g in self.args.tests), []))):
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            for t in doc.get("tests") or []:
                for a in t.get("alert_rule_test") or []:
                    (fired if a.get("exp_alerts") else quiet).add(a.get("alertname"))
        alerts = []
        for name, doc in getattr(self, "rule_files_docs", []):
            for g in doc.get("groups", []):
                for r in g.get("rules", []):
                    if "record" in r:
                        self.check(re.fullmatch(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+", r["record"]) is not None,
                                   f"{name}: recording rule {r['record']} is named level:metric:operations")
                        continue
                    a = r.get("alert", "")
                    alerts.append(a)
                    where = f"{name} alert {a}"
                    labels, ann = r.get("labels") or {}, r.get("annotations") or {}
                    self.check(re.fullmatch(r"Sessiond[A-Z][A-Za-z0-9]*", a) is not None, f"{where}: name is Sessiond + UpperCamelCase")
                    self.check(labels.get("severity") in SEVERITIES, f"{where}: severity label in {sorted(SEVERITIES)}")
                    self.check(str(ann.get("summary", "")).endswith("."), f"{where}: has a summary sentence ending with a period")
                    self.check(bool(ann.get("description")), f"{where}: has a description")
                    self.check(ann.get("runbook_url") == f"{RUNBOOK_URL}#{a.lower()}", f"{where}: runbook_url is {RUNBOOK_URL}#{a.lower()}")
                    self.check(a in headings, f"{where}: prometheus/RUNBOOK.md has a '## {a}' section")
                    rate_based = re.search(r"\b(rate|irate|increase)\s*\(|:[a-z0-9_]*rate[0-9]+[smhd]\b", r["expr"]) is not None
                    if rate_based:
                        self.check(bool(r.get("for")), f"{where}: rate-based alert has a for:")
                    self.check(a in fired, f"{where}: a unit test (prometheus/tests) expects it to fire")
                    self.check(a in quiet, f"{where}: a unit test (prometheus/tests) expects it to stay quiet")
        self.check(len(alerts) == len(set(alerts)), "rules: alert names are unique")
        for h in sorted(headings - set(alerts) - {"Future"}):
            print(f"WARN RUNBOOK.md section '## {h}' matches no alert")

    def scan_rules(self):
        for name, doc in getattr(self, "rule_files_docs", []):
            for g in doc.get("groups", []):
                for r in g.get("rules", []):
                    kind = "record" if "record" in r else "alert"
                    where = f"{name} {kind} {r.get(kind)}"
                    e = Expr(where, kind, r["expr"], r["expr"])
                    s = scan(e.raw)
                    for err in s.errors:
                        self.fail(f"{where}: {err}")
                    self.check_metric_usage(where, s)
                    self.check_store_gauges(where, e.raw)
                    self.exprs.append(e)

    # ---------------------------------------------------------------- metric names and labels
    def check_metric_usage(self, where, s: Scan):
        bad = FORBIDDEN_LABELS & s.grouping_labels
        self.check(not bad, f"{where}: groups by no forbidden label {sorted(bad)}")
        for sel in s.selectors:
            if sel.name is None:
                self.fail(f"{where}: selector {sel.text()} has no fixed metric name")
                continue
            self.used_names.setdefault(sel.name, []).append(where)
            bad = FORBIDDEN_LABELS & {l for l, _, _ in sel.matchers}
            self.check(not bad, f"{where}: {sel.text()} matches no forbidden label {sorted(bad)}")
            if ":" in sel.name:
                self.check(sel.name in self.recorded, f"{where}: {sel.name} is a recording rule defined in the rules")
                continue
            base, mtype, labels = self.resolve(sel.name)
            if not self.check(base is not None, f"{where}: {sel.name} is in the metric catalogue (docs/metrics.md)"):
                continue
            allowed = set(labels) | TARGET_LABELS | {"__name__"}
            if sel.name.endswith("_bucket"):
                allowed.add("le")
            for l, op, v in sel.matchers:
                self.check(l in allowed, f"{where}: {sel.text()}: label {l!r} exists on {base} ({sorted(allowed)})")
                enum = labels.get(l)
                if enum is not None and op == "=":
                    self.check(v in enum, f"{where}: {sel.text()}: {l}={v!r} is one of {sorted(enum)}")
                if enum is not None and op == "=~":
                    self.check(any(re.fullmatch(v, x) for x in enum),
                               f"{where}: {sel.text()}: {l}=~{v!r} matches some of {sorted(enum)}")
            if sel.name.endswith("_total") or mtype == "counter":
                self.check(sel.func in RATE_FUNCS and sel.range is not None,
                           f"{where}: counter {sel.name} is used under rate/irate/increase (target-counter-agg-rule)")
            if mtype == "gauge" and sel.func in RATE_FUNCS:
                self.fail(f"{where}: gauge {sel.name} under {sel.func}()")

    def check_store_gauges(self, where, raw):
        """Store gauges are read as one value per store: instances sharing a store (Redis) each report
        the whole store, so a sum over instances would count it once per replica."""
        for m in STORE_GAUGE_RE.finditer(raw):
            self.check(STORE_AGGREGATION_RE.search(raw[:m.start()]) is not None,
                       f"{where}: store gauge {m.group(1)} is read through max by (store, ...) or max without (instance)")

    def storage_modes(self, name, seen=None) -> set[str]:
        """-> the storage modes whose families `name` reads (through recording rules too); empty when
        it reads nothing mode-specific."""
        for mode, prefix in STORAGE_FAMILIES.items():
            if name.startswith(prefix):
                return {mode}
        if ":" not in name or name not in self.record_exprs:
            return set()
        seen = (seen or set()) | {name}
        modes = set()
        for expr in self.record_exprs[name]:
            for sel in scan(expr).selectors:
                if sel.name and sel.name not in seen:
                    modes |= self.storage_modes(sel.name, seen)
        return modes

    def absent(self, name) -> bool:
        """True when `name` reads only families that the current storage mode does not export."""
        modes = self.storage_modes(name)
        return self.mode is not None and bool(modes) and self.mode not in modes

    @staticmethod
    def resolve(name):
        """-> (catalogue family, type, labels) for a sample name, or (None, None, None)."""
        table = {**CATALOGUE, **SYNTHETIC}
        if name in table:
            t, labels = table[name]
            if t == "histogram":
                return None, None, None  # a histogram family has no sample of its bare name
            return name, t, labels
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                if base in CATALOGUE and CATALOGUE[base][0] == "histogram":
                    # _sum/_count behave like counters, _bucket too (cumulative)
                    return base, "counter", CATALOGUE[base][1]
        return None, None, None

    # ---------------------------------------------------------------- offline PromQL via promtool
    def offline(self):
        dash = [e for e in self.exprs if e.dashboard]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard_exprs.rules.yml")
            rules = [{"record": f"dashboard:expr_{i}:check", "expr": e.expr} for i, e in enumerate(dash)]
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard_exprs", "rules": rules}]}, f, sort_keys=False)
            p = subprocess.run([self.args.promtool, "check", "rules", path], capture_output=True, text=True)
            if p.returncode == 0:
                self.ok(f"promtool check rules: {len(dash)} dashboard exprs parse")
                self.passed += len(dash) - 1
                print(f"offline: promtool check rules accepted all {len(dash)} dashboard exprs")
            else:
                out = (p.stdout + p.stderr).strip()
                self.fail(f"promtool check rules rejected the dashboard exprs:\n{out}")
                for i, e in enumerate(dash):
                    if f"dashboard:expr_{i}:check" in out or f"rule {i + 1}:" in out:
                        print(f"     expr_{i} = {e.where}: {e.expr}")

    # ---------------------------------------------------------------- real scrape
    def scrape(self, url):
        try:
            body = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
        except Exception as e:  # noqa: BLE001
            self.fail(f"scrape {url}: {e}")
            return
        families, samples = {}, {}
        for line in body.splitlines():
            m = re.match(r"^# TYPE (\S+) (\S+)$", line)
            if m:
                families[m.group(1)] = m.group(2)
                continue
            if line.startswith("#") or not line.strip():
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
            if m:
                samples.setdefault(m.group(1), []).append(m.group(2) or "")
        print(f"scrape: {url}: {len(families)} families, {sum(len(v) for v in samples.values())} samples")
        shown = [m for m, prefix in STORAGE_FAMILIES.items() if any(f.startswith(prefix) for f in families)]
        seen_mode = shown[0] if len(shown) == 1 else "memory" if not shown else "+".join(shown)
        if self.mode is None:
            self.mode = seen_mode if seen_mode in STORAGE_MODES else None
        self.check(seen_mode == self.mode,
                   f"scrape: storage mode {seen_mode} (from the sessiond_storage_*/sessiond_redis_* families) is --storage {self.mode}")
        print(f"scrape: storage mode {self.mode}: {', '.join(sorted(p + '*' for m, p in STORAGE_FAMILIES.items() if m != self.mode))} must be absent")
        store_ids = set()
        for name in STORE_GAUGES:
            for labels in samples.get(name, []):
                store = re.findall(r'store="([^"]*)"', labels)
                if self.check(len(store) == 1, f"scrape: {name}{labels} has a store label"):
                    store_ids.add(store[0])
                    pattern = STORE_ID.get(self.mode or "", r".+")
                    self.check(re.fullmatch(pattern, store[0]) is not None,
                               f"scrape: {name}{labels}: store id {store[0]!r} matches {pattern} (--storage {self.mode})")
        self.check(len(store_ids) <= 1, f"scrape: the store gauges of one process describe one store (seen {sorted(store_ids)})")
        for name, (t, labels) in CATALOGUE.items():
            if self.absent(name):
                self.check(name not in families, f"scrape: {name} is absent with --storage {self.mode}")
                continue
            if self.check(name in families, f"scrape: catalogue metric {name} is in the scrape"):
                self.check(families[name] == t, f"scrape: {name} has TYPE {t} (scrape says {families[name]})")
                sample = name + "_bucket" if t == "histogram" else name
                for l, enum in labels.items():
                    if enum is None:
                        continue
                    seen = {m for s in samples.get(sample, []) for m in re.findall(rf'{l}="([^"]*)"', s)}
                    self.check(enum <= seen, f"scrape: {name} has every {l} value {sorted(enum)} (seen {sorted(seen)})")
        for name in sorted(self.used_names):
            if ":" in name or name in SYNTHETIC or self.absent(name):
                continue
            base, _, _ = self.resolve(name)
            self.check(name in samples or (base and base in families),
                       f"scrape: {name} (used in {self.used_names[name][0]}) appears in the scrape")
        extra = sorted(set(families) - set(CATALOGUE))
        if extra:
            print(f"WARN scrape has families that are not in the catalogue: {extra}")

    # ---------------------------------------------------------------- live Prometheus
    def query(self, url, expr):
        p = subprocess.run([self.args.promtool, "query", "instant", "-o", "json", url, expr],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return None, (p.stderr or p.stdout).strip()
        try:
            data = json.loads(p.stdout) if p.stdout.strip() else []
        except json.JSONDecodeError:
            return None, f"unreadable promtool output: {p.stdout[:200]!r}"
        return data, None

    def detect_mode(self, url):
        """The storage mode from what the live Prometheus holds (when no scrape told it)."""
        shown = []
        for mode, prefix in STORAGE_FAMILIES.items():
            data, err = self.query(url, f'count({{__name__=~"{prefix}.+"}})')
            if err is None and data:
                shown.append(mode)
        if len(shown) > 1:
            print(f"live: Prometheus holds the families of {' and '.join(shown)}: every expr must have data")
            return None
        return shown[0] if shown else "memory"

    def live(self, url):
        n_run = 0
        if self.mode is None and self.args.storage == "auto":
            self.mode = self.detect_mode(url)
            n_run += len(STORAGE_FAMILIES)
        if self.mode:
            print(f"live: storage mode {self.mode}: exprs reading only "
                  f"{', '.join(sorted(p + '*' for m, p in STORAGE_FAMILIES.items() if m != self.mode))} must be empty")
        selectors_to_check: dict[str, str] = {}
        n_absent = 0
        for e in self.exprs:
            data, err = self.query(url, e.expr)
            n_run += 1
            if not self.check(err is None, f"live: {e.where}: query runs ({err})\n     expr: {e.expr}"):
                continue
            s = scan(e.expr)
            names = [sel.name for sel in s.selectors if sel.name]
            absent = [n for n in names if self.absent(n)]
            if absent and len(absent) == len(names):
                n_absent += 1
                self.check(not data, f"live: {e.where}: empty with --storage {self.mode} (reads only {sorted(set(absent))})\n     expr: {e.expr}")
            elif e.kind in ("target", "variable", "record"):
                if absent:   # reads families of this mode and of another: must run, may be empty
                    continue
                self.check(bool(data), f"live: {e.where}: non-empty result\n     expr: {e.expr}")
                if self.args.verbose and data:
                    print(f"     {len(data) if isinstance(data, list) else 1} series")
            else:  # alert / annotation: a filter, empty when all is well; its selectors must have data
                for sel in s.selectors:
                    selectors_to_check.setdefault(sel.text() if sel.name else str(sel.matchers), e.where)
        for text, where in selectors_to_check.items():
            data, err = self.query(url, text)
            n_run += 1
            name = re.match(r"[\w:]*", text).group()
            if self.check(err is None, f"live: selector {text} (from {where}) runs ({err})"):
                if name and self.absent(name):
                    self.check(not data, f"live: selector {text} (from {where}) is empty with --storage {self.mode}")
                else:
                    self.check(bool(data), f"live: selector {text} (from {where}) is non-empty")
        print(f"live: ran {n_run} queries against {url} ({n_absent} exprs read only families absent with --storage {self.mode})")

    # ---------------------------------------------------------------- main
    def run(self):
        self.load_rules()
        seen_uids: dict[str, str] = {}
        files = sorted(set(sum((glob.glob(g) for g in self.args.dashboards), [])))
        if not files:
            self.fail(f"no dashboards match {self.args.dashboards}")
        for path in files:
            self.lint_dashboard(path, seen_uids)
        self.scan_rules()
        self.lint_rules()
        n_dash = sum(1 for e in self.exprs if e.dashboard)
        print(f"structure: {len(files)} dashboard(s), {n_dash} dashboard exprs, "
              f"{len(self.exprs) - n_dash} rule exprs, {len(self.used_names)} metric names used")
        self.offline()
        if self.args.scrape:
            self.scrape(self.args.scrape)
        if self.args.live:
            self.live(self.args.live.rstrip("/"))
        print(f"check_dashboards: {self.passed} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboards", nargs="+", default=[os.path.join(HERE, "*.json")],
                    help="dashboard JSON files or globs (default: dashboards/*.json)")
    ap.add_argument("--rules", nargs="+", default=[os.path.join(REPO, "prometheus", "rules", "*.yml")],
                    help="Prometheus rule files or globs (default: prometheus/rules/*.yml)")
    ap.add_argument("--tests", nargs="+", default=[os.path.join(REPO, "prometheus", "tests", "*.test.yml")],
                    help="promtool unit test files or globs (default: prometheus/tests/*.test.yml)")
    ap.add_argument("--promtool", default=os.environ.get("PROMTOOL", "promtool"))
    ap.add_argument("--live", metavar="PROMETHEUS_URL", help="run every expr against this Prometheus (2.42)")
    ap.add_argument("--scrape", metavar="METRICS_URL", help="a sessiond /metrics URL: names must appear in it")
    ap.add_argument("--storage", choices=("auto",) + STORAGE_MODES, default="auto",
                    help="sessiond's --storage behind --scrape/--live: the families of the other modes must be "
                         "absent (default: what the scrape, else the live Prometheus, shows)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passed check too")
    args = ap.parse_args(argv)
    try:
        subprocess.run([args.promtool, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        print(f"check_dashboards: promtool not found ({args.promtool}); apt-get install prometheus", file=sys.stderr)
        return 2
    return Checker(args).run()


if __name__ == "__main__":
    sys.exit(main())
