#!/usr/bin/env python3
"""Scores the NAB job's alerts against NAB's labelled anomaly windows.

Usage: report.py [ALERTS_DIR] [LABELS_JSON]
(defaults: out/nab-anomaly/alerts, ../shared/data/nab/labels/combined_windows.json)

Prints, per series and in total, how many alerts fall inside and outside the
labelled windows (a window is inclusive at both ends, as in NAB).
"""

import glob
import json
import os
import sys
from datetime import datetime


def parse_time(text):
    return datetime.strptime(text.split(".")[0], "%Y-%m-%d %H:%M:%S")


def main():
    alerts_dir = sys.argv[1] if len(sys.argv) > 1 else "out/nab-anomaly/alerts"
    labels_file = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/nab/labels/combined_windows.json"
    with open(labels_file) as f:
        windows = {k[: -len(".csv")]: [(parse_time(a), parse_time(b)) for a, b in v] for k, v in json.load(f).items()}
    counts = {series: [0, 0] for series in windows}
    parts = sorted(glob.glob(os.path.join(alerts_dir, "part-*")))
    if not parts:
        sys.exit(f"no part files under {alerts_dir}: run the job first")
    for part in parts:
        with open(part) as f:
            for line in f:
                alert = json.loads(line)
                t = parse_time(alert["timestamp"])
                inside = any(a <= t <= b for a, b in windows.get(alert["series"], []))
                counts.setdefault(alert["series"], [0, 0])[0 if inside else 1] += 1
    width = max(len(s) for s in counts)
    print(f"{'series':<{width}}  {'windows':>7}  {'inside':>6}  {'outside':>7}")
    for series in sorted(counts):
        inside, outside = counts[series]
        print(f"{series:<{width}}  {len(windows.get(series, [])):>7}  {inside:>6}  {outside:>7}")
    total_in = sum(c[0] for c in counts.values())
    total_out = sum(c[1] for c in counts.values())
    total = total_in + total_out
    share = 100.0 * total_in / total if total else 0.0
    print(f"{'TOTAL':<{width}}  {sum(len(w) for w in windows.values()):>7}  {total_in:>6}  {total_out:>7}")
    print(f"{total} alerts: {total_in} inside labelled anomaly windows ({share:.1f}%), {total_out} outside")


if __name__ == "__main__":
    main()
