#!/usr/bin/env python3
"""Lab client for the LVS tests: runs on the client VM, prints JSON.

  spread URL --sources A,B,.. --count K   K requests from each source address;
                                           which node answered each, failures
  probe URL --duration S --interval I --timeout T
                                           one new connection per request until
                                           S seconds pass; failures, the longest
                                           gap between two successes, slowest
  stream URL --timeout T                   read a long streaming reply to its end;
                                           lines received, seconds
Every loop is bounded by its own arguments. Standard library only.
"""

import argparse
import http.client
import json
import os
import sys
import time
from urllib.parse import urlparse


def get(url, source=None, timeout=5.0):
    u = urlparse(url)
    conn = http.client.HTTPConnection(
        u.hostname, u.port or 80, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, body
    finally:
        conn.close()


def spread(args):
    answers, failures = {}, []
    for src in args.sources.split(","):
        answers[src] = []
        for _ in range(args.count):
            try:
                status, body = get(args.url, src, args.timeout)
                if status == 200:
                    answers[src].append(body.strip())
                else:
                    failures.append(f"{src}: HTTP {status}")
            except OSError as exc:
                failures.append(f"{src}: {exc}")
    nodes = sorted({n for v in answers.values() for n in v})
    return {"answers": answers, "nodes": nodes, "failures": failures, "requests": args.count * len(answers)}


def probe(args):
    start = time.monotonic()
    last_ok, max_gap, slowest, ok, failures = None, 0.0, 0.0, 0, []
    while time.monotonic() - start < args.duration:
        t0 = time.monotonic()
        try:
            status, _ = get(args.url, None, args.timeout)
            good = status == 200
            if not good:
                failures.append(f"{t0 - start:.2f}s HTTP {status}")
        except OSError as exc:
            good = False
            failures.append(f"{t0 - start:.2f}s {exc}")
        t1 = time.monotonic()
        slowest = max(slowest, t1 - t0)
        if good:
            ok += 1
            if last_ok is not None:
                max_gap = max(max_gap, t1 - last_ok)
            last_ok = t1
        time.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    return {"ok": ok, "failures": failures, "max_gap_s": round(max_gap, 3), "slowest_s": round(slowest, 3)}


def stream(args):
    u = urlparse(args.url)
    start = time.monotonic()
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=args.timeout)
    lines, error = [], None
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        resp = conn.getresponse()
        while True:
            line = resp.fp.readline()
            if not line:
                break
            lines.append(line.decode(errors="replace").strip())
    except OSError as exc:
        error = str(exc)
    finally:
        conn.close()
    nodes = sorted({ln.split()[0] for ln in lines if ln})
    return {"lines": len(lines), "nodes": nodes, "error": error, "seconds": round(time.monotonic() - start, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spread")
    s.add_argument("url")
    s.add_argument("--sources", required=True)
    s.add_argument("--count", type=int, default=3)
    s.add_argument("--timeout", type=float, default=5.0)
    s = sub.add_parser("probe")
    s.add_argument("url")
    s.add_argument("--duration", type=float, default=30.0)
    s.add_argument("--interval", type=float, default=0.2)
    s.add_argument("--timeout", type=float, default=15.0)
    s = sub.add_parser("stream")
    s.add_argument("url")
    s.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--out", help="write the JSON here as well")
    args = p.parse_args()
    result = {"spread": spread, "probe": probe, "stream": stream}[args.cmd](args)
    text = json.dumps(result, sort_keys=True)
    if args.out:
        with open(args.out + ".tmp", "w") as fh:
            fh.write(text + "\n")
        os.replace(args.out + ".tmp", args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
