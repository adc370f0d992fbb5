#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: cosyvoice.cluster.ipvs_table versus one ansible.builtin.command task item per destination.

Applies 1 service x N destinations (--sizes, default 200) to a real director, both ways, first apply and no-op re-run,
and prints the median wall time over several trials and the ratio. Not a test: it needs a host with IPVS (the
lab's director) and changes only its own service, which it deletes before and after each run.

    benchmarks/ipvs_modules/bench.py -i inventories/lab/hosts.yml --host director2 [--sizes 50,200,1000] [--trials 5]

Every destination is an address on the lab network; no traffic is sent (a table entry is not a connection).
Timings include ansible-playbook start-up, as a user sees them.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

from playbooks import write_playbooks  # noqa: E402


def find_tool(name):
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def collection_env(workdir, collections_path):
    env = dict(os.environ)
    if not collections_path:
        collections_path = os.path.join(workdir, "collections")
        os.makedirs(os.path.join(collections_path, "ansible_collections", "cosyvoice"), exist_ok=True)
        link = os.path.join(collections_path, "ansible_collections", "cosyvoice", "cluster")
        if not os.path.islink(link):
            os.symlink(REPO, link)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    cfg = os.path.join(REPO, "ansible.cfg")
    if "ANSIBLE_CONFIG" not in env and os.path.exists(cfg):
        env["ANSIBLE_CONFIG"] = cfg
    # profile_tasks only: the module task's own time, next to the run's wall time
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    return env


def host_address(inventory, host, env):
    out = subprocess.run(
        [find_tool("ansible-inventory"), "-i", inventory, "--host", host],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    hostvars = json.loads(out)
    if "cluster_ip" not in hostvars:
        raise SystemExit(f"{host} has no cluster_ip in {inventory}: give --address")
    return hostvars["cluster_ip"]


def run_playbook(inventory, playbook, env, timeout):
    start = time.monotonic()
    proc = subprocess.run(
        [find_tool("ansible-playbook"), "-i", inventory, playbook],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{os.path.basename(playbook)} failed (rc={proc.returncode})")
    # profile_tasks' summary line: "Apply the whole table in one ipvsadm -R ---- 1.23s"
    task = re.search(r"^Apply the whole table in one ipvsadm -R -+ ([\d.]+)s", proc.stdout, re.M)
    return elapsed, (float(task.group(1)) if task else None)


def count_destinations(inventory, host, address, port, env):
    out = subprocess.run(
        [find_tool("ansible"), "-i", inventory, host, "-m", "ansible.builtin.command", "-a", "ipvsadm -S -n"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"-a -t {address}:{port} "))


def bench_size(args, env, address, workdir, count, with_loop):
    """Time one size: {phase: [seconds per trial]} (the loop's phases only when with_loop)."""
    books = write_playbooks(
        os.path.join(workdir, f"playbooks-{count}"), args.host, address, args.port, count, args.first_destination
    )
    approaches = ("table", "loop") if with_loop else ("table",)
    times = {f"{a}_{p}": [] for a in approaches for p in ("first", "noop")}

    times["table_noop_task"] = []

    def run(name):
        return run_playbook(args.inventory, books[name], env, args.timeout)

    for trial in range(1, args.trials + 1):
        for approach in approaches:
            run("cleanup")
            times[f"{approach}_first"].append(run(approach)[0])
            found = count_destinations(args.inventory, args.host, address, args.port, env)
            if found != count:
                raise SystemExit(f"{approach}: {found} destinations in the table, expected {count}")
            wall, task = run(approach)
            times[f"{approach}_noop"].append(wall)
            if approach == "table" and task is not None:
                times["table_noop_task"].append(task)
        run("cleanup")
        print(
            f"{count} destinations, trial {trial}/{args.trials}: "
            + ", ".join(f"{p} {v[-1]:.1f}s" for p, v in times.items()),
            flush=True,
        )
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("--host", required=True, help="the director to benchmark on")
    parser.add_argument("--address", help="service address (default: the host's cluster_ip)")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--sizes", default="200", help="destination counts, comma-separated (default 200)")
    parser.add_argument(
        "--loop-max",
        type=int,
        default=0,
        help="time the command loop only up to this many destinations (default 0: every size)",
    )
    parser.add_argument("--first-destination", default="192.168.50.50")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per ansible-playbook run")
    parser.add_argument("--collections-path", help="default: a temporary link to this checkout")
    parser.add_argument("--json", help="also write the raw timings to this file")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    workdir = tempfile.mkdtemp(prefix="ipvs-bench-")
    results = {}
    try:
        env = collection_env(workdir, args.collections_path)
        address = args.address or host_address(args.inventory, args.host, env)
        for count in sizes:
            with_loop = args.loop_max == 0 or count <= args.loop_max
            times = bench_size(args, env, address, workdir, count, with_loop)
            results[count] = {"times": times, "median": {p: statistics.median(v) for p, v in times.items() if v}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n1 service x N destinations on {args.host}, median of {args.trials} trial(s), seconds:")
    print(f"{'N':>6}{'table first':>13}{'table no-op':>13}{'loop first':>12}{'loop no-op':>12}{'ratio first':>13}")
    for count, res in results.items():
        med = res["median"]
        if "loop_first" in med:
            ratio = med["loop_first"] / med["table_first"]
            loop = f"{med['loop_first']:>12.1f}{med['loop_noop']:>12.1f}{ratio:>12.1f}x"
        else:
            loop = f"{'not run':>12}{'':>12}{'':>13}"
        print(f"{count:>6}{med['table_first']:>13.1f}{med['table_noop']:>13.1f}{loop}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"bench": "ipvs_modules", "host": args.host, "trials": args.trials, "sizes": results}, handle, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
