#!/usr/bin/env python3
"""Lab client for the LVS tests: runs on the client VM, prints JSON.

  spread URL --sources A,B,.. --count K   K requests from each source address;
                                           which node answered each (the "node"
                                           of a JSON answer such as /livez), failures
  probe URL --duration S --interval I --timeout T
                                           one new connection per request until
                                           S seconds pass; failures, the longest
                                           gap between two successes, slowest
  tts URL --text T --timeout S             one POST /v1/tts (a long one with the
                                           espeak engine's "[slow]" test marker);
                                           status, node, output, seconds
  load URL --sources A,B,.. --callers N --duration S [--stop-file F] [--pause P]
                                           N concurrent callers POST /v1/tts until
                                           S seconds pass (or F exists), each from its own source
                                           address, P seconds between a caller's requests
                                           (default 0: back to back); every request's
                                           outcome, node and output file stem
Every loop is bounded by its own arguments. Standard library only.
"""

import argparse
import base64
import http.client
import io
import json
import math
import os
import statistics
import struct
import sys
import threading
import time
import wave
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


def node_of(body):
    """The node that answered: the "node" of a JSON body, else the body itself."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()
    return str(doc.get("node", "")) if isinstance(doc, dict) else body.strip()


def prompt_wav(seconds=1.5, rate=16000):
    """A short prompt clip (a quiet 220 Hz tone): the engines want 1..30 s of audio."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = (int(3000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(int(seconds * rate)))
        w.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return buf.getvalue()


def post_tts(url, text, seed, prompt_b64, source=None, timeout=60.0):
    """One POST /v1/tts; returns a dict with status, node, output, seconds, error."""
    u = urlparse(url)
    body = json.dumps({"text": text, "mode": "cross_lingual", "seed": seed, "prompt_wav_b64": prompt_b64})
    t0 = time.monotonic()
    out = {"status": None, "node": None, "output": None, "error": None, "source": source}
    conn = http.client.HTTPConnection(
        u.hostname, u.port or 80, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("POST", u.path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        out["status"] = resp.status
        out["node"] = resp.getheader("X-TTS-Node")
        out["output"] = resp.getheader("X-TTS-Output")
        if resp.status != 200:
            out["error"] = f"HTTP {resp.status} {data[:200].decode(errors='replace')}"
        elif data[:4] != b"RIFF":
            out["error"] = "the answer is not a WAV"
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def spread(args):
    answers, failures = {}, []
    for src in args.sources.split(","):
        answers[src] = []
        for _ in range(args.count):
            try:
                status, body = get(args.url, src, args.timeout)
                if status == 200:
                    answers[src].append(node_of(body))
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


def tts(args):
    return post_tts(args.url, args.text, args.seed, base64.b64encode(prompt_wav()).decode(), None, args.timeout)


def load(args):
    prompt = base64.b64encode(prompt_wav()).decode()
    sources = args.sources.split(",") if args.sources else [None]
    start = time.monotonic()
    results, lock = [], threading.Lock()

    def caller(i):
        n = 0
        while time.monotonic() - start < args.duration and not (args.stop_file and os.path.exists(args.stop_file)):
            n += 1
            r = post_tts(
                args.url,
                f"Lab load, caller {i}, request {n}.",
                1 + i * 100000 + n,
                prompt,
                sources[i % len(sources)],
                args.timeout,
            )
            r["t"] = round(time.monotonic() - start, 3)
            with lock:
                results.append(r)
            time.sleep(max(args.pause, 0.5) if r["error"] else args.pause)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [r for r in results if r["error"]]
    per_node = {}
    for r in results:
        if not r["error"]:
            per_node[r["node"]] = per_node.get(r["node"], 0) + 1
    return {
        "requests": len(results),
        "ok": len(results) - len(failures),
        "failed": len(failures),
        "failures": failures,
        "per_node": per_node,
        "median_s": statistics.median(r["seconds"] for r in results if not r["error"]) if per_node else None,
        "outputs": sorted(r["output"] for r in results if not r["error"]),
        "seconds": round(time.monotonic() - start, 3),
    }


def emit(result, out=None):
    """Print the result as JSON and, with out, also write it there (atomically)."""
    text = json.dumps(result, sort_keys=True)
    if out:
        with open(out + ".tmp", "w") as fh:
            fh.write(text + "\n")
        os.replace(out + ".tmp", out)
    print(text)


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
    s = sub.add_parser("tts")
    s.add_argument("url")
    s.add_argument("--text", default="Hello from the lab.")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--timeout", type=float, default=60.0)
    s = sub.add_parser("load")
    s.add_argument("url")
    s.add_argument("--sources", default="")
    s.add_argument("--callers", type=int, default=4)
    s.add_argument("--duration", type=float, default=60.0)
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--stop-file", help="stop starting requests once this file exists")
    s.add_argument("--pause", type=float, default=0.0, help="seconds between one caller's requests")
    p.add_argument("--out", help="write the JSON here as well")
    args = p.parse_args()
    result = {"spread": spread, "probe": probe, "tts": tts, "load": load}[args.cmd](args)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
