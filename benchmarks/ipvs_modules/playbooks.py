#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate the playbooks the IPVS benchmark times (bench.py uses this; it also runs alone).

* ``table.yml``   - cosyvoice.cluster.ipvs_table: 1 service x N destinations, one `ipvsadm -R` process.
* ``loop.yml``    - the usual hand-written way: read `ipvsadm -S -n`, then one ansible.builtin.command task
                    item (`ipvsadm -a ...`) per destination that is missing, so a re-run only skips.
* ``cleanup.yml`` - delete the benchmark's service (`ipvsadm -D`), whatever its state.

Usage: playbooks.py OUTDIR --host HOST --address VIP --port PORT [--destinations N] [--first-destination IP]
"""

import argparse
import ipaddress
import os
import sys

import yaml


def destinations(first, count):
    """count addresses from first on, skipping those ending in .0 or .255 (the kernel refuses the lab
    subnet's broadcast address as a real server)."""
    out, addr = [], ipaddress.ip_address(first)
    while len(out) < count:
        if str(addr).rsplit(".", 1)[-1] not in ("0", "255"):
            out.append(str(addr))
        addr += 1
    return out


def _play(host, name, tasks):
    return [{"name": name, "hosts": host, "gather_facts": False, "tasks": tasks}]


def table_playbook(host, address, port, dests):
    service = {
        "address": address,
        "port": port,
        "scheduler": "rr",
        "purge_destinations": True,
        "destinations": [{"address": d, "weight": 1} for d in dests],
    }
    task = {"name": "Apply the whole table in one ipvsadm -R", "cosyvoice.cluster.ipvs_table": {"services": [service]}}
    return _play(host, "Benchmark | ipvs_table", [task])


def loop_playbook(host, address, port, dests):
    vip = f"{address}:{port}"
    tasks = [
        {
            "name": "Read the table",
            "ansible.builtin.command": "ipvsadm -S -n",
            "register": "bench_save",
            "changed_when": False,
        },
        {
            "name": "Add the service",
            "ansible.builtin.command": f"ipvsadm -A -t {vip} -s rr",
            "when": f"'-A -t {vip} -s rr' not in bench_save.stdout_lines",
            "changed_when": True,
        },
        {
            "name": "Add one destination per task item",
            "ansible.builtin.command": f"ipvsadm -a -t {vip} -r {{{{ item }}}}:{port} -g -w 1",
            "loop": dests,
            "when": f"('-a -t {vip} -r ' ~ item ~ ':{port} -g -w 1') not in bench_save.stdout_lines",
            "changed_when": True,
        },
    ]
    return _play(host, "Benchmark | command loop", tasks)


def cleanup_playbook(host, address, port):
    task = {
        "name": "Delete the benchmark service",
        "ansible.builtin.command": f"ipvsadm -D -t {address}:{port}",
        "register": "bench_delete",
        "changed_when": "bench_delete.rc == 0",
        "failed_when": False,
    }
    return _play(host, "Benchmark | cleanup", [task])


def write_playbooks(outdir, host, address, port, count, first):
    dests = destinations(first, count)
    os.makedirs(outdir, exist_ok=True)
    paths = {}
    for name, play in (
        ("table", table_playbook(host, address, port, dests)),
        ("loop", loop_playbook(host, address, port, dests)),
        ("cleanup", cleanup_playbook(host, address, port)),
    ):
        path = os.path.join(outdir, f"{name}.yml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("---\n")
            yaml.safe_dump(play, handle, sort_keys=False, width=160)
        paths[name] = path
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--host", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--destinations", type=int, default=200)
    parser.add_argument("--first-destination", default="192.168.50.50")
    args = parser.parse_args(argv)
    paths = write_playbooks(args.outdir, args.host, args.address, args.port, args.destinations, args.first_destination)
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
