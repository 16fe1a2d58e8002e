"""Render monitoring/grafana/kpf-dashboard.json's panels from a Prometheus server into one PNG (matplotlib): the
same queries over the last minutes, one chart per panel. For README's Monitoring picture, where no Grafana runs.

    .venv/bin/python scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 --out docs/monitoring-dashboard.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "monitoring" / "grafana" / "kpf-dashboard.json"


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=30,
    ).json()
    if answer.get("status") != "success":
        raise SystemExit(f"{expr}: {answer}")
    return list(answer["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def render(prometheus: str, out: Path, minutes: float, job: str = ".+") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(16, 3.2 * rows), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=False):
        drawn = 0
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"].replace("$job", job), start, end, step):
                points = [(float(t) - end, float(v)) for t, v in series["values"]]
                axis.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    label=legend(target.get("legendFormat", ""), series["metric"]),
                )
                drawn += 1
        axis.set_title(panel["title"], fontsize=10)
        axis.set_xlabel("seconds before now", fontsize=8)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        axis.set_ylabel({"ms": "ms", "reqps": "records/s", "percentunit": "share"}.get(unit, ""), fontsize=8)
        axis.tick_params(labelsize=7)
        axis.ticklabel_format(axis="y", useOffset=False, style="plain")
        if drawn:
            axis.legend(fontsize=7, loc="upper left")
        else:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes, color="grey")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(f"{dashboard['title']} (monitoring/grafana/kpf-dashboard.json's queries)", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True, help="the Prometheus server's URL")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--minutes", type=float, default=5.0, help="the time range (default 5)")
    parser.add_argument("--job", default=".+", help="job_name regex (default: every job)")
    args = parser.parse_args()
    render(args.prometheus, args.out, args.minutes, args.job)


if __name__ == "__main__":
    main()
