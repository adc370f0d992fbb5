#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: the data plane, direct to a node vs through the LVS VIP (DR) vs through an nginx L7 proxy.

Same client (wrk on the lab's client VM), same backend (the node the VIP's persistence gives that client),
same small fixed response (the node server's GET /livez), same run. Each trial runs the three targets in a
rotated order; the report gives medians of requests/s, p50 and p99 latency, and the ratios.

    benchmarks/data_plane/bench.py [--trials 3] [--duration 15] [--connections 16] [--json FILE]

What it changes, and puts back whatever happens: it installs wrk on the client VM and nginx-light on the
backup director from the lab's own apt mirror (both stay installed), writes one nginx site there that
listens on the director's lab address port 8080 and proxies to the node, and at the end removes that site
and stops and disables nginx. Traffic goes only from the client VM to lab addresses.
"""

import argparse
import importlib.util
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
_spec = importlib.util.spec_from_file_location(
    "lvs_failover_bench", os.path.join(HERE, "..", "lvs_failover", "bench.py")
)
lab_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_kit)

NGINX_SITE = "/etc/nginx/sites-enabled/cvbench-proxy.conf"
NGINX_CONF = """# cosyvoice.cluster data-plane benchmark (benchmarks/data_plane/bench.py); removed after the run
upstream cvbench_node {{
    server {node}:{port};
    keepalive 64;
}}
server {{
    listen {listen}:{proxy_port};
    access_log off;
    location / {{
        proxy_pass http://cvbench_node;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
    }}
}}
"""
APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold install --no-install-recommends"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ms(text):
    """wrk's latency ('812.00us', '3.51ms', '1.02s') in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise lab_kit.BenchError(f"cannot read the latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(out):
    """Requests/s, p50 and p99 (ms), and errors from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise lab_kit.BenchError(f"cannot read wrk's output:\n{out[-1500:]}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "rps": float(rps.group(1)),
        "p50_ms": ms(p50.group(1)),
        "p99_ms": ms(p99.group(1)),
        "requests": int(total.group(1)),
        "errors": errors,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--topology", default=os.environ.get("LAB_TOPOLOGY", lab_kit.DEFAULT_TOPOLOGY))
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the client VM's vCPU)")
    parser.add_argument("--path", default="/livez")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--proxy-port", type=int, default=8080)
    parser.add_argument("--proxy-director", help="the director that runs nginx (default: the last lvs_directors host)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    lab = lab_kit.Lab(args.topology)
    client = lab.group("lab_clients")[0]
    proxy = lab.host(args.proxy_director) if args.proxy_director else lab.group("lvs_directors")[-1]
    vip = lab.vars["lab_vip"]
    for address in (vip, proxy["ip"]):
        if not lab.in_lab(address):
            raise lab_kit.BenchError(f"{address} is not a lab address")

    started = time.time()
    log(f"client {client['name']}: wrk; {proxy['name']}: nginx-light (from the lab mirror)")
    lab.ssh(client, f"command -v wrk >/dev/null || {{ apt-get -q update && {APT} wrk; }}", timeout=900)
    lab.ssh(proxy, f"command -v nginx >/dev/null || {{ apt-get -q update && {APT} nginx-light; }}", timeout=900)
    # The node the VIP's persistence gives this client: the same backend for all three paths.
    _, out = lab.ssh(client, f"curl -fsS --max-time 10 http://{vip}:{args.port}{args.path}")
    node_name = json.loads(out)["node"]
    node = lab.host(node_name)
    log(f"the VIP sends {client['name']} to {node_name} ({node['ip']}): the backend of every path")
    targets = {
        "direct": f"http://{node['ip']}:{args.port}{args.path}",
        "vip": f"http://{vip}:{args.port}{args.path}",
        "nginx": f"http://{proxy['ip']}:{args.proxy_port}{args.path}",
    }
    runs = {name: [] for name in targets}
    try:
        conf = NGINX_CONF.format(node=node["ip"], port=args.port, listen=proxy["ip"], proxy_port=args.proxy_port)
        lab.ssh(
            proxy,
            f"cat > {NGINX_SITE} <<'EOF'\n{conf}EOF\n"
            "rm -f /etc/nginx/sites-enabled/default && nginx -t -q && systemctl enable -q --now nginx && "
            "systemctl reload nginx",
        )
        for url in targets.values():  # every path answers before anything is timed
            lab.ssh(client, f"curl -fsS --max-time 10 -o /dev/null {url}")
        order = list(targets)
        for trial in range(1, args.trials + 1):
            for name in order:
                cmd = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency {targets[name]}"
                _, out = lab.ssh(client, cmd, timeout=args.duration + 120)
                fig = parse_wrk(out)
                runs[name].append(fig)
                log(
                    f"trial {trial}/{args.trials} {name:6} {fig['rps']:8.1f} req/s  p50 {fig['p50_ms']:7.2f} ms  "
                    f"p99 {fig['p99_ms']:7.2f} ms  errors {fig['errors']}"
                )
            order = order[1:] + order[:1]
    finally:
        lab.ssh(proxy, f"rm -f {NGINX_SITE}; systemctl disable -q --now nginx", check=False)

    median = {
        name: {key: statistics.median(r[key] for r in rs) for key in ("rps", "p50_ms", "p99_ms")}
        for name, rs in runs.items()
    }
    ratios = {
        "vip_over_direct_rps": median["vip"]["rps"] / median["direct"]["rps"],
        "nginx_over_direct_rps": median["nginx"]["rps"] / median["direct"]["rps"],
        "vip_over_nginx_rps": median["vip"]["rps"] / median["nginx"]["rps"],
        "vip_over_direct_p99": median["vip"]["p99_ms"] / median["direct"]["p99_ms"],
        "nginx_over_direct_p99": median["nginx"]["p99_ms"] / median["direct"]["p99_ms"],
    }
    print(
        f"\nGET {args.path} from {client['name']} to {node_name}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, median of {args.trials} trial(s):"
    )
    print(f"{'path':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, med in median.items():
        errors = sum(r["errors"] for r in runs[name])
        print(f"{name:10}{med['rps']:>10.1f}{med['p50_ms']:>10.2f}{med['p99_ms']:>10.2f}{errors:>8}")
    for key, value in ratios.items():
        print(f"{key:24}{value:>8.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "bench": "data_plane",
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "client": client["name"],
                    "backend": node_name,
                    "proxy_director": proxy["name"],
                    "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration},
                    "path": args.path,
                    "trials": runs,
                    "median": median,
                    "ratios": ratios,
                },
                handle,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except lab_kit.BenchError as exc:
        sys.exit(f"data_plane bench: {exc}")
