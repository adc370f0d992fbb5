#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: playbooks/rolling_upgrade.yml vs a naive one-at-a-time restart without drain, under load.

Both runs make the same change, one that restarts every node's server: the lab's test-only setting
espeak.test_delay_s goes 20 -> 21 with the naive playbook (benchmarks/upgrade/naive_restart.yml: the
cosyvoice_node role with serial 1), then 21 -> 20 with rolling_upgrade.yml (batch 1, its default), so the lab
ends as its inventory says. During each run, 3 callers on the client VM POST /v1/tts to the VIP back to back
(tests/lab/load.yml, one connection per request); the figures are its requests and failures, and the run's
wall time.

    benchmarks/upgrade/bench.py [--callers 3] [--nodes node1,node2] [--json FILE]

--nodes limits both runs to those nodes (with localhost and the directors, as an operator limits a rolling
upgrade); the default is every node. Under TCG each node's role run takes minutes, so both runs over the
same subset are the comparison that fits in a session.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.dirname(sys.executable)
REPORT_DIR = os.path.join(REPO, "build", "lab-report")
# (name, playbook, the setting's new value, the first caller's source address .N): each run's callers
# come from addresses that no earlier run used, so no persistence template (300 s) pins them to the
# nodes an earlier run left them on, and wlc spreads them over every node, the upgraded ones included
RUNS = (
    ("naive", os.path.join(HERE, "naive_restart.yml"), 21, 90),
    ("ours", os.path.join(REPO, "playbooks", "rolling_upgrade.yml"), 20, 110),  # .100 is the VIP
)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def playbook(*args, timeout=3600):
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        sys.stderr.write((proc.stdout + proc.stderr)[-4000:])
    return proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=3)
    parser.add_argument("--nodes", default="", help="comma-separated nodes to upgrade (default: every node)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    nodes = [n for n in args.nodes.split(",") if n]
    limit = ("--limit", "localhost:lvs_directors:" + ":".join(nodes)) if nodes else ()
    runs = {}
    if args.callers > 10:
        sys.exit("--callers: at most 10 (each run has 10 source addresses of its own)")
    for name, book, delay, first in RUNS:
        settings = json.dumps({"cosyvoice_node_server_settings": {"espeak.test_delay_s": delay}})
        load = ("tests/lab/load.yml", "-e", "lab_load_kind=api", "-e", f"lab_load_first={first}")
        if playbook(*load, "-e", "lab_load_step=start", "-e", f"lab_load_callers={args.callers}") != 0:
            sys.exit(f"{name}: the load did not start")
        time.sleep(10)  # the callers are running before the upgrade begins
        log(f"{name}: {os.path.relpath(book, REPO)} under {args.callers} HTTP API callers")
        start = time.monotonic()
        rc = playbook(book, *limit, "-e", settings)
        duration = time.monotonic() - start
        label = f"bench-upgrade-{name}"
        finish = playbook(
            *load, "-e", "lab_load_step=finish", "-e", f"lab_load_name={label}", "-e", "lab_load_max_failed=1000000"
        )
        if finish != 0:
            sys.exit(f"{name}: the load's result could not be read")
        with open(os.path.join(REPORT_DIR, f"{label}.json"), encoding="utf-8") as handle:
            fig = json.load(handle)
        runs[name] = {
            "rc": rc,
            "duration_s": duration,
            "requests": fig["requests"],
            "failed": fig["failed"],
            "per_node": fig.get("per_node"),
            "failures": fig.get("failures", [])[:20],
            "upgraded_nodes_served": {n: (fig.get("per_node") or {}).get(n, 0) for n in nodes},
        }
        log(
            f"{name}: rc {rc}, {duration:.0f} s, {fig['failed']} of {fig['requests']} requests failed, "
            f"per node {fig.get('per_node')}"
        )
        if rc != 0:
            sys.exit(f"{name}: the playbook failed (rc {rc})")
    scope = ", ".join(nodes) if nodes else "every node"
    how = (
        f"Upgrading {scope}, under {args.callers} HTTP API callers (POST /v1/tts through the VIP, one "
        "connection per request, back to back) during each run. Both runs make the same change, which restarts "
        "each upgraded node's server (the lab's test "
        "setting `espeak.test_delay_s`): the naive one is the `cosyvoice_node` role with `serial: 1` and no "
        "drain (`benchmarks/upgrade/naive_restart.yml`), ours is `playbooks/rolling_upgrade.yml` with its "
        "defaults (one node at a time: drain, wait for idle, upgrade, check, restore)."
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"bench": "upgrade", "callers": args.callers, "nodes": nodes or "all", "how": how, "runs": runs},
                handle,
                indent=1,
            )
    for name, r in runs.items():
        print(f"{name:6} {r['duration_s']:7.0f} s  {r['requests']:6} requests  {r['failed']:4} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
