#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render benchmarks/results/*.json as benchmarks/REPORT.md, PNG plots in benchmarks/plots/, and the
README's benchmark section (between its `bench:begin` and `bench:end` markers).

    benchmarks/report.py [--results DIR] [--no-readme]

A part without results says so; nothing here measures or asserts.
"""

import argparse
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
PLOTS = os.path.join(HERE, "plots")
README = os.path.join(REPO, "README.md")
LOADS = os.path.join(HERE, "lab-loads.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

CONFIG_LABELS = {
    "classic": "classic (TCP_CHECK 6 s x3, VRRPv2 1 s, no sync)",
    "keepalived_defaults": "keepalived defaults (delay_loop 60)",
    "ours": "ours (defaults)",
    "ours_no_sync": "ours without sync daemon",
    "fast": "ours, fast (timeout 1 s, VRRPv3 0.2 s)",
}
CONFIG_ORDER = ("classic", "keepalived_defaults", "ours_no_sync", "ours", "fast")
GOALS = {
    "dead": 3.0,
    "hung": 5.0,
    "gap": 1.0,
    "survival": 100.0,
    "vip_rps": 0.95,
    "modules_ratio": 20.0,
    "modules_noop": 1.0,
}
CONDITIONS = (
    "Conditions: the VM lab (`tools/lab`): Debian 12 guests under QEMU **TCG software emulation** (no KVM), "
    "7 VMs sharing a host with **2 cores**; the nodes run the espeak-ng CPU **test** engine, not CosyVoice. "
    "Absolute times are those of emulated CPUs; the ratios, all measured within the same run, matter more."
)


def load(results, name):
    path = os.path.join(results, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def fmt(value, digits=2, unit=""):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def spread(summary, key, digits=2):
    s = summary.get(key)
    if not s:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}..{s['max']:.{digits}f}, n={s['n']})"


def verdict(ok):
    return "met" if ok else "**missed**"


def save(fig, name):
    os.makedirs(PLOTS, exist_ok=True)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, name), dpi=90)
    return f"plots/{name}"


# ------------------------------------------------------------------------------------------------ eviction
def eviction(results):
    lines = ["## 1. Node eviction", ""]
    lvs = {c: load(results, f"lvs_{c}") for c in CONFIG_ORDER}
    rows = [
        (c, d["summary"])
        for c, d in lvs.items()
        if d
        and ("dead_evict" in d["summary"] or "dead_not_evicted" in d["summary"] or "hung_not_evicted" in d["summary"])
    ]
    if not rows:
        return [*lines, "Not run in this report.", ""]
    lines += [
        "From `systemctl stop` (dead) or `SIGSTOP` (hung) on the node until the master's IPVS table shows its "
        "weight 0, so no new connection reaches it (host clock at both ends, the table polled every 25 ms). "
        "Median (min..max, trials).",
        "",
        "| config | dead node out | hung node out | hung node never out (trials) | hung node back |",
        "|---|---|---|---|---|",
    ]
    for c, s in rows:
        never = s.get("hung_not_evicted", {}).get("n", 0) + s.get("dead_not_evicted", {}).get("n", 0)
        lines.append(
            f"| {CONFIG_LABELS[c]} | {spread(s, 'dead_evict')} | {spread(s, 'hung_evict')} | "
            f"{never or '-'} | {spread(s, 'hung_back')} |"
        )
    if any(v < 0 for _, s_ in rows for v in s_.get("dead_evict", {}).get("values", [])):
        lines += [
            "",
            "A negative dead-node time is not an error: the clock starts when `systemctl stop` returns, and the node "
            "server fails /readyz as soon as SIGTERM starts its graceful drain, so a fast check takes it out of "
            "rotation while the stop is still waiting for in-flight work.",
        ]
    ours = dict(rows).get("ours", {})
    if ours:
        dead = ours.get("dead_evict", {}).get("median")
        hung = ours.get("hung_evict", {}).get("median")
        lines += [
            "",
            f"Goals, our defaults: dead node ≤ {GOALS['dead']:.0f} s: {fmt(dead)} s, "
            f"{verdict(dead is not None and dead <= GOALS['dead'])}; hung node ≤ {GOALS['hung']:.0f} s: "
            f"{fmt(hung)} s, {verdict(hung is not None and hung <= GOALS['hung'])}.",
        ]
        if hung is not None and hung > GOALS["hung"]:
            p = lvs["ours"]["params"]
            dl, ct, retry, dbr = (p[k] for k in ("delay_loop", "connect_timeout", "retry", "delay_before_retry"))
            lines += [
                "",
                "Why the hung-node goal is missed by our defaults: a hung process still completes the TCP handshake, "
                f"so only the HTTP_GET timeout sees it. With delay_loop {dl:g}, connect_timeout {ct:g}, retry "
                f"{retry:g} and delay_before_retry {dbr:g}, the node is out after the next check plus {retry + 1:g} "
                f"timed-out attempts and the pauses between them: at most {dl + ct + retry * (dbr + ct):g} s. The "
                "fast profile (connect_timeout 1) halves the timeouts; its cost is that a node whose /readyz answers "
                "slower than 1 s twice in a row is taken out, which under TCG emulation and load happens, so the "
                f"defaults keep {ct:g} s.",
            ]
    fig, ax = pyplot.subplots(figsize=(8, 3.6))
    width = 0.38
    for offset, (kind, color) in enumerate((("dead", "#4c72b0"), ("hung", "#dd8452"))):
        xs, ys, lo, hi = [], [], [], []
        for i, (_, s) in enumerate(rows):
            v = s.get(f"{kind}_evict")
            if v:
                xs.append(i + (offset - 0.5) * width)
                ys.append(v["median"])
                lo.append(v["median"] - v["min"])
                hi.append(v["max"] - v["median"])
            elif s.get(f"{kind}_not_evicted"):
                limit = s[f"{kind}_not_evicted"]["median"]
                ax.bar(i + (offset - 0.5) * width, limit, width, color="none", edgecolor=color, hatch="//")
                ax.text(i + (offset - 0.5) * width, limit, "never", ha="center", va="bottom", fontsize=7)
        ax.bar(xs, ys, width, yerr=[lo, hi], color=color, label=f"{kind} node", capsize=3)
    ax.axhline(GOALS["dead"], color="#4c72b0", ls=":", lw=1)
    ax.axhline(GOALS["hung"], color="#dd8452", ls=":", lw=1)
    ax.set_xticks(range(len(rows)), [CONFIG_LABELS[c].split(" (")[0] for c, _ in rows], fontsize=8)
    ax.set_ylabel("seconds until weight 0")
    ax.set_yscale("log")
    ax.set_title("Node eviction (median, min..max); dotted: goals")
    ax.legend(fontsize=8)
    lines += ["", f"![node eviction]({save(fig, 'eviction.png')})", ""]
    return lines


# ------------------------------------------------------------------------------------------------ failover
def failover(results):
    lines = ["## 2. Director failover", ""]
    lvs = {c: load(results, f"lvs_{c}") for c in CONFIG_ORDER}
    rows = [(c, d) for c, d in lvs.items() if d and "vip_takeover" in d["summary"]]
    if not rows:
        return [*lines, "Not run in this report.", ""]
    how = {
        "kill": "killed (`labctl kill`: its qemu process dies, like a power loss; it boots again after the trial)",
        "freeze": "frozen (its qemu process SIGSTOPped: a hung host, silent on the network; resumed after the trial, "
        "when it takes the VIP back)",
    }
    modes = sorted({d.get("failure", "kill") for _, d in rows})
    lines += [
        "The master director's VM is " + " or ".join(how[m] for m in modes) + ". A probe on "
        "the client VM opens a new connection to the VIP every 50 ms from each of 3 source addresses (0.5 s "
        "timeout each); 4 keep-alive connections per source, established before the kill, send a request every "
        "0.5 s (15 s timeout each) for 40 s. Gap: the longest time between two answers across the kill, on the "
        "client's clock. Survived: established connections that answered every request to the end.",
        "",
        "| config | VIP on the backup (s) | client gap (s) | failed probes | established connections surviving (%) |",
        "|---|---|---|---|---|",
    ]
    for c, d in rows:
        s = d["summary"]
        lines.append(
            f"| {CONFIG_LABELS[c]} | {spread(s, 'vip_takeover')} | {spread(s, 'client_gap')} | "
            f"{spread(s, 'client_failed_probes', 0)} | {spread(s, 'held_survived_pct', 0)} |"
        )
    ours = dict(rows).get("ours")
    if ours:
        s = ours["summary"]
        gap = s.get("client_gap", {}).get("median")
        surv = s.get("held_survived_pct", {}).get("min")
        lines += [
            "",
            f"Goals, our defaults: gap ≤ {GOALS['gap']:.0f} s: {fmt(gap)} s, "
            f"{verdict(gap is not None and gap <= GOALS['gap'])}; 100 % of established connections surviving "
            f"(worst trial): "
            + (f"{surv:.0f} %, {verdict(surv >= GOALS['survival'])}." if surv is not None else "not measured."),
        ]
        lines += [
            "",
            "Caveat on the configurations without the sync daemon: their new master has no connection entries, and "
            "with `sloppy_tcp` it schedules each established connection's next packet afresh (wlc, a new persistence "
            "template). The connection survives only if that choice is the node it was on. In this idle lab both "
            "directors start from the same empty counts and see the sources in the same order, so wlc can repeat "
            "the old master's choices and connections survive by coincidence; with real traffic the choices differ "
            "(about 1 in 3 per source with 3 nodes). The sync daemon is what makes survival certain: the backup "
            "holds the master's entries before it takes over.",
        ]
        if gap is not None and gap > GOALS["gap"]:
            adv, version = ours["params"]["advert_int"], ours["params"]["vrrp_version"]
            backup = min(ours["priorities"].values())
            down = 3 * adv + (256 - backup) * adv / 256
            lines += [
                "",
                f"Why the gap goal is missed by our defaults: with VRRPv{version} adverts every {adv:g} s the backup "
                f"(priority {backup}) declares the master down after 3 x {adv:g} s plus its skew "
                f"((256 - {backup}) x {adv:g} / 256 s): {down:.2f} s, whatever the rest of the stack does (VRRPv2 "
                "takes whole seconds only). VRRPv3 with 0.2 s adverts (the fast profile) brings that to about 0.7 s. "
                "The defaults stay slower because a master that is starved of CPU for that long (a loaded or "
                "emulated host) would lose the VIP; set `lvs_director_vrrp_version: 3` and "
                "`lvs_director_advert_int: 0.2` where the directors have CPU to spare.",
            ]
    fig, (ax1, ax2) = pyplot.subplots(1, 2, figsize=(9, 3.4))
    names = [CONFIG_LABELS[c].split(" (")[0] for c, _ in rows]
    med = [d["summary"]["client_gap"]["median"] for _, d in rows]
    lo = [m - d["summary"]["client_gap"]["min"] for m, (_, d) in zip(med, rows, strict=True)]
    hi = [d["summary"]["client_gap"]["max"] - m for m, (_, d) in zip(med, rows, strict=True)]
    ax1.bar(range(len(rows)), med, yerr=[lo, hi], color="#4c72b0", capsize=3)
    ax1.axhline(GOALS["gap"], color="k", ls=":", lw=1)
    ax1.set_xticks(range(len(rows)), names, fontsize=7, rotation=15)
    ax1.set_ylabel("client gap (s)")
    ax1.set_title("Failover gap (dotted: goal)")
    surv = [d["summary"].get("held_survived_pct", {}).get("median", 0) for _, d in rows]
    ax2.bar(range(len(rows)), surv, color="#55a868")
    ax2.set_ylim(0, 105)
    ax2.set_xticks(range(len(rows)), names, fontsize=7, rotation=15)
    ax2.set_ylabel("%")
    ax2.set_title("Established connections surviving")
    lines += ["", f"![director failover]({save(fig, 'failover.png')})", ""]
    return lines


# ------------------------------------------------------------------------------------------------ data plane
def data_plane(results):
    lines = ["## 3. Data plane", ""]
    d = load(results, "data_plane")
    if not d:
        return [*lines, "Not run in this report.", ""]
    w = d["wrk"]
    lines += [
        f"`wrk -t{w['threads']} -c{w['connections']} -d{w['duration_s']}s --latency` on {d['client']}, "
        f"`GET {d['path']}` of the node server on {d['backend']} (the node the VIP's persistence gives that "
        f"client, so every path has the same backend); nginx-light on {d['proxy_director']} as an L7 reverse "
        f"proxy with upstream keep-alive. {len(d['trials']['direct'])} trials, the three paths in rotated order "
        "in each. Median of the trials.",
        "",
        "| path | requests/s | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|",
    ]
    labels = {"direct": "direct to the node", "vip": "LVS VIP (DR)", "nginx": "nginx L7 proxy"}
    for name in ("direct", "vip", "nginx"):
        m = d["median"][name]
        lines.append(f"| {labels[name]} | {m['rps']:.1f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |")
    r = d["ratios"]
    ok = r["vip_over_direct_rps"] >= GOALS["vip_rps"] and r["vip_over_nginx_rps"] > 1
    lines += [
        "",
        f"Ratios: VIP / direct {r['vip_over_direct_rps']:.3f}, nginx / direct {r['nginx_over_direct_rps']:.3f}, "
        f"VIP / nginx {r['vip_over_nginx_rps']:.2f} (requests/s); p99 VIP / direct {r['vip_over_direct_p99']:.2f}, "
        f"nginx / direct {r['nginx_over_direct_p99']:.2f}.",
        "",
        f"Goal, VIP ≥ {GOALS['vip_rps']} x direct and above nginx: {verdict(ok)}.",
        "",
        "The backend, a Python server on an emulated CPU, limits every path: LVS-DR adds one kernel forwarding "
        "step for the inbound packets only (the answers go from the node straight to the client), while nginx "
        "terminates the connection and opens its own to the node, so its cost shows most in the tail latency.",
    ]
    fig, (ax1, ax2) = pyplot.subplots(1, 2, figsize=(8, 3.2))
    names = ["direct", "vip", "nginx"]
    for ax, key, title in ((ax1, "rps", "requests/s"), (ax2, "p99_ms", "p99 latency (ms)")):
        vals = [d["median"][n][key] for n in names]
        runs = [[t[key] for t in d["trials"][n]] for n in names]
        lo = [v - min(rs) for v, rs in zip(vals, runs, strict=True)]
        hi = [max(rs) - v for v, rs in zip(vals, runs, strict=True)]
        ax.bar(names, vals, yerr=[lo, hi], color=["#8172b2", "#4c72b0", "#c44e52"], capsize=3)
        ax.set_title(title)
    lines += ["", f"![data plane]({save(fig, 'data_plane.png')})", ""]
    return lines


# ------------------------------------------------------------------------------------------------ upgrade
# what a naive restart's failed requests mean, by a piece of their error text
UPGRADE_FAILURES = (
    (
        "shutting_down",
        "a new request reached the node after its SIGTERM and before keepalived's check took it out; the "
        "server refuses new work while it drains. That window is what draining before the restart closes.",
    ),
    (
        "exit status -15",
        "the request in flight at the restart: systemd's default KillMode signalled the engine's espeak-ng child "
        "too. Fixed after this run (the unit sets KillMode=mixed); not re-measured since.",
    ),
)


def upgrade(results):
    lines = ["## 4. Rolling upgrade vs a naive restart", ""]
    d = load(results, "upgrade")
    if not d:
        return [*lines, "Not run in this report.", ""]
    lines += [
        d.get("how", ""),
        "",
        "| run | total time (s) | requests | failed | of them to the upgraded node(s) |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("ours", "rolling_upgrade.yml"), ("naive", "naive: one node at a time, no drain")):
        r = d["runs"].get(name)
        if r:
            served = r.get("upgraded_nodes_served")
            to_upgraded = ", ".join(f"{n}: {c}" for n, c in served.items()) if served else "not recorded"
            lines.append(f"| {label} | {r['duration_s']:.0f} | {r['requests']} | {r['failed']} | {to_upgraded} |")
    ours, naive = d["runs"].get("ours"), d["runs"].get("naive")
    if ours:
        lines += ["", f"Goal, 0 failed requests with rolling_upgrade.yml: {verdict(ours['failed'] == 0)}."]
    if ours and naive:
        lines += [
            "",
            f"rolling_upgrade.yml took {ours['duration_s'] / naive['duration_s']:.2f}x the naive run's time "
            "(drain, wait for idle, a check synthesis before the node takes traffic again).",
        ]
        if naive["failed"]:
            errors = sorted({f["error"][:110] for f in naive.get("failures", [])})
            lines += ["", "What the naive run's callers got, and why:", ""]
            for e in errors:
                why = next((w for pattern, w in UPGRADE_FAILURES if pattern in e), "")
                lines.append(f"- `{e}`" + (f": {why}" if why else ""))
        # recorded for the nodes a --nodes run upgraded; without it, no claim either way
        served = naive.get("upgraded_nodes_served") or {}
        reached = all(c > 0 for c in served.values())
        if naive["failed"] == 0 and served and not reached:
            lines += [
                "",
                "Inconclusive: no caller of the naive run reached the upgraded node, so it could not lose a request.",
            ]
        elif naive["failed"] == 0 and served:
            lines += [
                "",
                "The naive restart lost no request either, and that is the node server's doing, not luck: at "
                "SIGTERM it fails /readyz first, finishes its queued and in-flight requests (`shutdown.grace_s`) "
                "and keeps answering for `shutdown.linger_s` (2 s) more before it exits (systemd's stop waits), "
                "and keepalived's HTTP_GET check (every second) takes the node out within that time, so no new "
                "connection meets a closed port. A server that exits at once, "
                "or a TCP_CHECK every 6 s as in the classic recipe, would lose the requests of that window. What "
                "rolling_upgrade.yml adds is not in this figure: it refuses to start without a healthy node to "
                "spare, checks each upgraded node with a synthesis before traffic returns to it, and stops at "
                "the first node that fails, where a naive run puts a broken release on every node.",
            ]
    return [*lines, ""]


# ------------------------------------------------------------------------------------------------ modules
def modules(results):
    lines = ["## 5. ipvs modules vs a per-rule command loop", ""]
    d = load(results, "ipvs_modules")
    if not d or "sizes" not in d:
        return [*lines, "Not run in this report.", ""]
    lines += [
        f"On {d['host']}: 1 service x N destinations, `cosyvoice.cluster.ipvs_table` (one `ipvsadm -R` process) vs "
        "the hand-written way (read `ipvsadm -S -n`, then one `ansible.builtin.command` item per missing "
        "destination). Wall time of `ansible-playbook`, start-up included, as a user sees it; "
        f"{d['trials']} trial(s) per size.",
        "",
        "| N | ipvs_table first | ipvs_table no-op | its task alone | command loop first | command loop no-op "
        "| loop / table (first) |",
        "|---|---|---|---|---|---|---|",
    ]
    sizes = sorted(d["sizes"], key=int)
    ratios, noops, tasks = [], [], []
    for n in sizes:
        m = d["sizes"][n]["median"]
        noops.append(m["table_noop"])
        if "loop_first" in m:
            ratio = m["loop_first"] / m["table_first"]
            ratios.append(ratio)
            loop = f"{m['loop_first']:.1f} s | {m['loop_noop']:.1f} s | {ratio:.0f}x"
        else:
            loop = "not run | not run | -"
        task = fmt(m.get("table_noop_task"), 2, " s")
        if m.get("table_noop_task") is not None:
            tasks.append(m["table_noop_task"])
        lines.append(f"| {n} | {m['table_first']:.1f} s | {m['table_noop']:.1f} s | {task} | {loop} |")
    skipped = [n for n in sizes if "loop_first" not in d["sizes"][n]["median"]]
    if skipped:
        per_item = [
            (d["sizes"][n]["median"]["loop_first"] - d["sizes"][n]["median"]["loop_noop"]) / int(n)
            for n in sizes
            if "loop_first" in d["sizes"][n]["median"]
        ]
        if per_item:
            each = statistics.median(per_item)
            est = ", ".join(f"{n}: about {int(n) * each:.0f} s" for n in skipped)
            lines += [
                "",
                f"The command loop was not run at {', '.join(skipped)} (TCG: {each:.2f} s per item). At that cost "
                f"per item it would take {est} (an estimate, not a measurement).",
            ]
    best = min(ratios) if ratios else None
    lines += [
        "",
        f"Goals: ≥ {GOALS['modules_ratio']:.0f}x faster than the loop: worst measured ratio "
        f"{fmt(best, 0, 'x')}, {verdict(best is not None and best >= GOALS['modules_ratio'])}; no-op re-run "
        f"≤ {GOALS['modules_noop']:.0f} s: {max(noops):.1f} s at worst, "
        f"{verdict(max(noops) <= GOALS['modules_noop'])} as the whole `ansible-playbook` run, its own "
        "start-up included"
        + (
            f"; the module's task alone (profile_tasks) took {max(tasks):.2f} s at worst, "
            f"{verdict(max(tasks) <= GOALS['modules_noop'])}."
            if tasks
            else "."
        ),
    ]
    fig, ax = pyplot.subplots(figsize=(6, 3.4))
    xs = [int(n) for n in sizes]
    ax.plot(xs, [d["sizes"][n]["median"]["table_first"] for n in sizes], "o-", label="ipvs_table, first")
    ax.plot(xs, [d["sizes"][n]["median"]["table_noop"] for n in sizes], "o--", label="ipvs_table, no-op")
    lx = [int(n) for n in sizes if "loop_first" in d["sizes"][n]["median"]]
    ax.plot(lx, [d["sizes"][str(n)]["median"]["loop_first"] for n in lx], "s-", label="command loop, first")
    ax.plot(lx, [d["sizes"][str(n)]["median"]["loop_noop"] for n in lx], "s--", label="command loop, no-op")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("destinations")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7)
    ax.set_title("IPVS table: module vs command loop")
    lines += ["", f"![ipvs modules]({save(fig, 'ipvs_modules.png')})", ""]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    sections = [eviction, failover, data_plane, upgrade, modules]
    body = []
    for section in sections:
        body += section(args.results)
    report = [
        "# Benchmark report",
        "",
        "`make bench` writes this file. Figures, not test assertions.",
        "",
        CONDITIONS,
        "",
    ]
    report += body
    if os.path.exists(LOADS):
        with open(LOADS, encoding="utf-8") as handle:
            report += ["", handle.read().rstrip("\n"), ""]
    with open(os.path.join(HERE, "REPORT.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(report).rstrip("\n") + "\n")
    print("\n".join(report))
    if not args.no_readme and os.path.exists(README):
        with open(README, encoding="utf-8") as handle:
            text = handle.read()
        if BEGIN in text and END in text:
            # the README shows the same tables; its image paths are relative to the repository root
            block = "\n".join(body).replace("](plots/", "](benchmarks/plots/")
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            with open(README, "w", encoding="utf-8") as handle:
                handle.write(f"{head}{BEGIN}\n{CONDITIONS}\n\n{block.rstrip()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
