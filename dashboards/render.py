#!/usr/bin/env python3
"""Draws the main panels of dashboards/sessiond-overview.json as one PNG, from a live Prometheus.

The queries are the dashboard's own exprs (taken from the JSON by panel title), with
$job/$instance -> .+ and $__rate_interval -> --rate-interval (10s by default, for a Prometheus
that scrapes every second), run with /api/v1/query_range over the load run. Stat panels are
drawn as their values at the end of the run (/api/v1/query), with the panel's value mappings and
threshold colours; a target that the panel puts on the right axis (override
custom.axisPlacement=right) is drawn on a second y axis with the override's unit.

  render.py --prometheus http://127.0.0.1:9090 --summary SUMMARY.json --out dashboards/sessiond-overview.png
  render.py --prometheus URL --start UNIX --end UNIX --out FILE

Needs matplotlib (prometheus/live_check.sh --render installs it into .venv-monitoring/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib import ticker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# (panel title in the dashboard, optional filter on series labels, grid row, first column, columns)
# on a 5 x 12 grid: three rows of the session panels, then two rows of the Storage row.
PANELS = [
    ("Realtime users and active sessions", None, 0, 0, 4),
    ("Users seen (1m / 5m / 15m)", None, 0, 4, 4),
    ("Sessions created and ended per second", None, 0, 8, 4),
    ("Expiry ratio", None, 1, 0, 4),
    ("Validations per second by result", None, 1, 4, 4),
    ("Latency p50 / p99 by route", {"route": "/v1/session"}, 1, 8, 4),
    ("Session lifetime distribution", None, 2, 0, 4),
    ("Session lifetime p50 / p90", None, 2, 4, 4),
    ("Request rate by route", None, 2, 8, 4),
    ("Storage writes per second by kind", None, 3, 0, 4),
    ("Storage commits per second and mean batch size", None, 3, 4, 4),
    ("Storage commit latency p50 / p99", None, 3, 8, 4),
    ("Storage pending changes", None, 4, 0, 4),
    ("Storage file size", None, 4, 4, 4),
    ("Storage writable", None, 4, 8, 2),
    ("Last storage replay", None, 4, 10, 2),
]
ROWS, COLUMNS = 5, 12


def query_range(prom, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}", timeout=30) as r:
        data = json.load(r)
    if data.get("status") != "success":
        raise RuntimeError(f"{expr}: {data}")
    return data["data"]["result"]


def query_instant(prom, expr, at):
    q = urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(f"{prom}/api/v1/query?{q}", timeout=30) as r:
        data = json.load(r)
    if data.get("status") != "success":
        raise RuntimeError(f"{expr}: {data}")
    return data["data"]["result"]


def override_properties(panel, ref_id):
    """-> {property id: value} of the panel's byFrameRefID overrides for this target."""
    props = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        if m.get("id") == "byFrameRefID" and m.get("options") == ref_id:
            props.update({p["id"]: p["value"] for p in o.get("properties", [])})
    return props


def legend(fmt, labels):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def substitute(expr, rate_interval):
    expr = re.sub(r"\$\{?__rate_interval\}?", rate_interval, expr)
    expr = re.sub(r"\$\{?__interval\}?", rate_interval, expr)
    expr = re.sub(r"\$\{?(job|instance)\}?", ".+", expr)
    return expr


def fmt_unit(unit):
    if unit == "percentunit":
        return ticker.PercentFormatter(1.0)
    if unit == "s":
        def f(v, _):
            if v == 0:
                return "0"
            if v < 1e-3:
                return f"{v * 1e6:.0f} µs"
            if v < 1:
                return f"{v * 1e3:.1f} ms"
            return f"{v:.0f} s"
        return ticker.FuncFormatter(f)
    if unit == "bytes":
        return ticker.EngFormatter(unit="B", sep=" ")
    return ticker.EngFormatter(sep="")


def draw_timeseries(ax, panel, series_by_target, unit, label_filter):
    n = 0
    right = None
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for target, series in series_by_target:
        props = override_properties(panel, target.get("refId"))
        target_ax = ax
        if props.get("custom.axisPlacement") == "right":
            if right is None:
                right = ax.twinx()
                right.yaxis.set_major_formatter(fmt_unit(props.get("unit", unit)))
            target_ax = right
        for s in series:
            if label_filter and any(s["metric"].get(k) != v for k, v in label_filter.items()):
                continue
            xs = [dt.datetime.fromtimestamp(float(t), dt.timezone.utc) for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            label = legend(target.get("legendFormat"), s["metric"])
            if target_ax is right:
                label += " (right axis)"
            target_ax.plot(xs, ys, lw=1.4, color=next(colors), ls="--" if target_ax is right else "-", label=label)
            n += 1
    if n:
        handles, labels = ax.get_legend_handles_labels()
        if right is not None:
            h2, l2 = right.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=7, loc="upper left", ncol=2 if n > 4 else 1, framealpha=0.7)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.yaxis.set_major_formatter(fmt_unit(unit))
    ax.set_ylim(bottom=0)
    if right is not None:
        right.set_ylim(bottom=0)
        right.tick_params(labelsize=8)
    return n


def stat_text(value, unit, mappings):
    """-> (text, colour or None) for one stat value, as Grafana shows it."""
    for m in mappings:
        if m.get("type") == "value":
            hit = m.get("options", {}).get(f"{value:g}")
            if hit:
                return hit.get("text", f"{value:g}"), hit.get("color")
    if unit == "s":
        return fmt_unit("s")(value, None), None
    if unit == "bytes":
        return fmt_unit("bytes")(value, None), None
    return (f"{value:.0f}" if value == int(value) else f"{value:.3g}"), None


def draw_stat(ax, panel, values_by_target):
    """A stat panel: one line per value (legend: value), coloured like the panel's thresholds."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    steps = defaults.get("thresholds", {}).get("steps", [])
    lines = []
    for target, series in values_by_target:
        unit = override_properties(panel, target.get("refId")).get("unit", defaults.get("unit", "short"))
        for s in series:
            value = float(s["value"][1])
            text, color = stat_text(value, unit, defaults.get("mappings", []))
            if color is None and steps:
                color = [st["color"] for st in steps if st.get("value") is None or value >= st["value"]][-1]
            lines.append((legend(target.get("legendFormat"), s["metric"]), text, color))
    ax.set_axis_off()
    if not lines:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return 0
    for i, (name, text, color) in enumerate(lines):
        y = 1 - (i + 0.5) / len(lines)
        ax.text(0.5, y + 0.12 / len(lines), text, ha="center", va="center", transform=ax.transAxes,
                fontsize=16 if len(lines) < 3 else 12, fontweight="bold", color="white" if color else "black",
                bbox=dict(boxstyle="round,pad=0.3", fc=color, ec="none") if color else None)
        ax.text(0.5, y - 0.22 / len(lines), name, ha="center", va="center", transform=ax.transAxes, fontsize=8)
    return len(lines)


def draw_heatmap(ax, series_by_target, rate_interval):
    (target, series), = series_by_target
    def le_key(s):
        le = s["metric"].get("le", "+Inf")
        return float("inf") if le == "+Inf" else float(le)
    series = sorted(series, key=le_key)
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return 0
    times = [float(t) for t, _ in series[0]["values"]]
    cum = []
    for s in series:
        vals = dict((float(t), float(v)) for t, v in s["values"])
        cum.append([vals.get(t, 0.0) for t in times])
    # de-accumulate the cumulative buckets, as Grafana does for format=heatmap
    rows = [cum[0]] + [[max(0.0, b - a) for a, b in zip(cum[i - 1], cum[i])] for i in range(1, len(cum))]
    labels = []
    prev = "0"
    for s in series:
        le = s["metric"].get("le")
        labels.append(f"({prev}, {float(le):g}] s" if le != "+Inf" else f"> {prev} s")
        prev = f"{float(le):g}" if le != "+Inf" else prev
    # keep the rows that ever had data (and their neighbours' scale readable)
    keep = [i for i, r in enumerate(rows) if any(v > 0 for v in r)] or list(range(len(rows)))
    lo, hi = max(0, keep[0] - 1), min(len(rows), keep[-1] + 2)
    rows, labels = rows[lo:hi], labels[lo:hi]
    xs = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in times]
    xnum = mdates.date2num(xs)
    step = (xnum[1] - xnum[0]) if len(xnum) > 1 else 1 / 86400
    edges = list(xnum - step / 2) + [xnum[-1] + step / 2]
    mesh = ax.pcolormesh(edges, range(len(rows) + 1), rows, cmap="Oranges", shading="flat")
    ax.set_yticks([i + 0.5 for i in range(len(rows))])
    ax.set_yticklabels(labels, fontsize=7)
    ax.xaxis_date()
    plt.colorbar(mesh, ax=ax, pad=0.01).set_label(f"sessions ended per {rate_interval}", fontsize=7)
    return len(series)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--summary", help="load.py summary JSON (gives --start/--end)")
    ap.add_argument("--start", type=float)
    ap.add_argument("--end", type=float)
    ap.add_argument("--step", default="1s")
    ap.add_argument("--rate-interval", default="10s")
    ap.add_argument("--dashboard", default=os.path.join(HERE, "sessiond-overview.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "sessiond-overview.png"))
    a = ap.parse_args(argv)
    start, end = a.start, a.end
    extra = ""
    if a.summary:
        s = json.load(open(a.summary))
        start, end = start or s["start"] - 5, end or s["end"] + 3
        extra = (f" — load: {s['created']} logins of {s['users']} users, {s['valid']} valid / "
                 f"{s['unknown'] + s['expired'] + s['malformed']} failed validations, {s['logout']} logouts, "
                 f"{s['revoked']} revocations")
    if start is None or end is None:
        ap.error("give --summary or --start and --end")
    prom = a.prometheus.rstrip("/")
    dash = json.load(open(a.dashboard))
    panels = {p["title"]: p for p in dash["panels"]}

    fig = plt.figure(figsize=(20, 21), constrained_layout=True)
    grid = fig.add_gridspec(ROWS, COLUMNS)
    for title, label_filter, row, col, span in PANELS:
        ax = fig.add_subplot(grid[row, col:col + span])
        p = panels.get(title)
        if p is None:
            sys.exit(f"render: panel {title!r} is not in {a.dashboard}")
        series_by_target = []
        # a heatmap's cells are increase() over the rate interval: step by the same interval so
        # that the cells do not overlap (and their counts add up to the sessions that ended)
        step = a.rate_interval if p["type"] == "heatmap" else a.step
        for t in p["targets"]:
            expr = substitute(t["expr"], a.rate_interval)
            if p["type"] == "stat":
                series_by_target.append((t, query_instant(prom, expr, end)))
            else:
                series_by_target.append((t, query_range(prom, expr, start, end, step)))
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        if p["type"] == "heatmap":
            n = draw_heatmap(ax, series_by_target, a.rate_interval)
        elif p["type"] == "stat":
            n = draw_stat(ax, p, series_by_target)
        else:
            n = draw_timeseries(ax, p, series_by_target, unit, label_filter)
        suffix = f" ({', '.join(f'{k}={v}' for k, v in label_filter.items())})" if label_filter else ""
        if p["type"] == "stat":
            suffix += " (at the end)"
        ax.set_title(f"{title}{suffix}", fontsize=11, loc="left")
        if p["type"] != "stat":
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.timezone.utc))
            ax.tick_params(labelsize=8)
        print(f"render: {title}: {n} series")
    t0 = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    fig.suptitle(f"{dash['title']} (uid {dash['uid']}) — {t0} UTC, {end - start:.0f} s, "
                 f"rate interval {a.rate_interval}{extra}", fontsize=12)
    fig.savefig(a.out, dpi=80)
    print(f"render: wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
