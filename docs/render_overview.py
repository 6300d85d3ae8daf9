#!/usr/bin/env python3
"""Draws docs/overview.svg from a live Prometheus that scrapes amaze-exporter.

Run the exporter, Prometheus and `amaze-exporter demo` (README, "Try it all"),
wait a few minutes, then:

    python3 docs/render_overview.py http://127.0.0.1:9090 10m > docs/overview.svg

Standard library only. The picture shows what the overview dashboard shows:
each SLA's status and margin now, and the 5-minute margins over the range.
"""
import json
import sys
import time
import urllib.parse
import urllib.request

COLORS = {"amazing": "#1a7f37", "meeting": "#d4a72c", "breaching": "#c62828"}
LINES = ["#3b6fd4", "#8250df", "#e16f24", "#1b7c83"]


def api(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        sys.exit(f"{url}: {body}")
    return body["data"]["result"]


def seconds(span):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(span[:-1]) * units[span[-1]]


def main():
    base, span = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "10m"
    end = time.time()
    start = end - seconds(span)
    step = max(5, seconds(span) // 200)
    series = api(base, "/api/v1/query_range", query='amaze_margin_ratio{scope="sla",window="5m"}',
                 start=start, end=end, step=step)
    status = {}
    for r in api(base, "/api/v1/query", query='amaze_status{scope="sla",window="5m"} == 1'):
        status[r["metric"]["sla"]] = r["metric"]["status"]
    alert = {r["metric"]["sla"]: float(r["value"][1])
             for r in api(base, "/api/v1/query", query="amaze_sla_alert_margin_ratio")}
    series.sort(key=lambda r: r["metric"]["sla"])

    w, h, left, top, chart_h = 900, 460, 70, 150, 230
    chart_w = w - left - 30
    lo, hi = -0.4, 1.0
    y = lambda v: top + (hi - max(lo, min(hi, v))) / (hi - lo) * chart_h
    x = lambda t: left + (t - start) / (end - start) * chart_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="system-ui, sans-serif" font-size="13">',
           f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
           '<text x="20" y="30" font-size="18" font-weight="600">amaze: promises overview</text>',
           f'<text x="20" y="50" fill="#555">live from a demo run: margin over each rolling 5 minutes, last {span}</text>']
    # Status tiles.
    tile_w = (w - 40 - 10 * (len(series) - 1)) / max(1, len(series))
    for i, r in enumerate(series):
        sla = r["metric"]["sla"]
        now = float(r["values"][-1][1])
        st = status.get(sla, "too few")
        tx = 20 + i * (tile_w + 10)
        out.append(f'<rect x="{tx:.0f}" y="64" width="{tile_w:.0f}" height="62" rx="6" fill="{COLORS.get(st, "#999")}"/>')
        out.append(f'<text x="{tx + 12:.0f}" y="86" fill="#fff" font-weight="600">{sla}</text>')
        out.append(f'<text x="{tx + 12:.0f}" y="112" fill="#fff" font-size="20">{st} · margin {now * 100:.0f}%</text>')
    # Axes and reference lines.
    for v in (1.0, 0.5, 0.0, -0.4):
        out.append(f'<line x1="{left}" x2="{left + chart_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v * 100:.0f}%</text>')
    out.append(f'<line x1="{left}" x2="{left + chart_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#c62828" '
               'stroke-dasharray="6 6"/>')
    out.append(f'<text x="{left + chart_w}" y="{y(0) - 6:.1f}" text-anchor="end" fill="#c62828">promise broken below 0</text>')
    for i, r in enumerate(series):
        sla, color = r["metric"]["sla"], LINES[i % len(LINES)]
        pts = " ".join(f"{x(float(t)):.1f},{y(float(v)):.1f}" for t, v in r["values"])
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        if sla in alert:
            out.append(f'<line x1="{left}" x2="{left + chart_w}" y1="{y(alert[sla]):.1f}" y2="{y(alert[sla]):.1f}" '
                       f'stroke="{color}" stroke-dasharray="2 5" opacity="0.8"/>')
        ly = top + chart_h + 34 + 0 * i
        lx = left + i * 240
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="14" height="4" fill="{color}"/>')
        out.append(f'<text x="{lx + 20}" y="{ly - 4}">{sla}</text>')
    out.append(f'<text x="{left}" y="{h - 10}" fill="#777">dotted: each SLA\'s alert_margin; '
               'margin = 1 - objective quantile / promise</text>')
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
