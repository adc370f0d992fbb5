#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The loads of the lab's cluster scenario as one Markdown table.

tests/lab/load.yml writes each load's figures to build/lab-report/NAME-KIND.json
(the drills under load, the rolling upgrade, the gradio_client spread). This
prints them side by side: requests, failures, "Session not found", the median
call time and how the calls spread over the nodes, and lists every failure.
A report, not a test: it asserts nothing.

    benchmarks/lab_report.py [DIR]        # default build/lab-report
"""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows(directory):
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as fh:
                yield json.load(fh)


def render(figures):
    out = [
        "| load | client | requests | failed | Session not found | median call (s) | per node |",
        "|---|---|---|---|---|---|---|",
    ]
    failures = []
    for f in figures:
        kind = f.get("kind", "?")
        client = "gradio_client" if kind == "gradio" else "HTTP API" if kind == "api" else kind
        per_node = " ".join(f"{node}={count}" for node, count in sorted(f.get("per_node", {}).items()))
        median = f.get("median_s")
        out.append(
            f"| {f.get('name', '?')} | {client} | {f['requests']} | {f['failed']} | {f.get('session_not_found', 0)} "
            f"| {median if median is not None else '-'} | {per_node} |"
        )
        failures += [(f.get("name", "?"), x) for x in f.get("failures", [])]
    if failures:
        out += ["", "Failed calls:", ""]
        for name, x in failures:
            first_line = (x.get("error") or "").splitlines()[0][:160] if x.get("error") else "?"
            out.append(f"- {name}: from {x.get('source')}: {first_line}")
    return "\n".join(out)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build", "lab-report")
    figures = list(rows(directory)) if os.path.isdir(directory) else []
    if not figures:
        print(f"no load figures in {directory}", file=sys.stderr)
        return 1
    print(render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
