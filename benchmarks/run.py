#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: every benchmark on the running, converged lab, then benchmarks/REPORT.md and its plots.

    benchmarks/run.py [--only data_plane,nodes,failover,modules,upgrade] [--trials 3] [--failover-trials 2]

Each part writes benchmarks/results/<name>.json; benchmarks/report.py renders them all (also alone). The
director configurations compared (benchmarks/configs/*.yml) are applied with playbooks/site.yml limited to
the directors, as an operator would change them; the lab ends on its own defaults (configs/ours.yml is
applied last). Figures, not assertions: a part that fails is reported and the others still run.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
RESULTS = os.path.join(HERE, "results")
BIN = os.path.dirname(sys.executable)

# (config, eviction trials?, failover trials?) in the order they are applied; ours last, so the lab ends on it
CONFIGS = (
    ("classic", True, True),
    ("keepalived_defaults", True, False),
    ("ours_no_sync", False, True),
    ("fast", True, True),
    ("ours", True, True),
)
PARTS = ("data_plane", "nodes", "failover", "modules", "upgrade")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def step(argv, timeout):
    log("$ " + " ".join(argv))
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, timeout=timeout, check=False)
    log(f"  exit {proc.returncode} after {time.monotonic() - start:.0f} s")
    return proc.returncode == 0


def apply_config(name):
    return step(
        [
            os.path.join(BIN, "ansible-playbook"),
            "playbooks/site.yml",
            "--limit",
            "localhost:lvs_directors",
            "-e",
            f"@benchmarks/configs/{name}.yml",
        ],
        1800,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts (default {','.join(PARTS)})")
    parser.add_argument("--configs", default=",".join(c for c, _, _ in CONFIGS), help="director configs to compare")
    parser.add_argument("--trials", type=int, default=3, help="dead and hung node trials per config (default 3)")
    parser.add_argument("--failover-trials", type=int, default=3, help="master losses per config (default 3)")
    parser.add_argument(
        "--failure",
        choices=("freeze", "kill"),
        default="freeze",
        help="how the master is lost (default freeze: SIGSTOP of its VM; kill boots it again, minutes per trial)",
    )
    parser.add_argument("--module-sizes", default="50,200,1000")
    parser.add_argument(
        "--loop-max", type=int, default=200, help="the command loop only up to this size (default 200; 0 = all)"
    )
    parser.add_argument(
        "--upgrade-nodes", default="", help="the nodes both upgrade runs are limited to (default: every node)"
    )
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    wanted = set(args.configs.split(","))
    os.makedirs(RESULTS, exist_ok=True)
    py = sys.executable
    failed = []

    if "data_plane" in parts and not step(
        [py, "benchmarks/data_plane/bench.py", "--json", os.path.join(RESULTS, "data_plane.json")], 1800
    ):
        failed.append("data_plane")

    if "nodes" in parts or "failover" in parts:
        for name, with_nodes, with_failover in CONFIGS:
            if name not in wanted:
                continue
            nodes, failover = with_nodes and "nodes" in parts, with_failover and "failover" in parts
            if not (nodes or failover or name == "ours"):
                continue
            if not apply_config(name):
                failed.append(f"apply {name}")
                continue
            if not (nodes or failover):
                continue
            cmd = [py, "benchmarks/lvs_failover/bench.py", "--json", os.path.join(RESULTS, f"lvs_{name}.json")]
            cmd += ["--failover-trials", str(args.failover_trials), "--failure", args.failure]
            # keepalived's default delay_loop is 60 s: give each change two of them, and run 2 trials, not 3
            slow = name == "keepalived_defaults"
            cmd += ["--trials", str(min(args.trials, 2) if slow else args.trials), "--timeout", "150" if slow else "60"]
            if not nodes:
                cmd.append("--skip-nodes")
            if not failover:
                cmd.append("--skip-failover")
            if not step(cmd, 3600):
                failed.append(f"lvs {name}")

    if "modules" in parts and not step(
        [
            py,
            "benchmarks/ipvs_modules/bench.py",
            "-i",
            "inventories/lab/hosts.yml",
            "--host",
            "director2",
            "--sizes",
            args.module_sizes,
            "--loop-max",
            str(args.loop_max),
            "--trials",
            "1",
            "--json",
            os.path.join(RESULTS, "ipvs_modules.json"),
        ],
        7200,
    ):
        failed.append("modules")

    if "upgrade" in parts and not step(
        [
            py,
            "benchmarks/upgrade/bench.py",
            "--nodes",
            args.upgrade_nodes,
            "--json",
            os.path.join(RESULTS, "upgrade.json"),
        ],
        5400,
    ):
        failed.append("upgrade")

    step([py, "benchmarks/report.py"], 300)
    if failed:
        log("FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
