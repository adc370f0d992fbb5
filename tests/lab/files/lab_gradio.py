#!/opt/cvlab-client/bin/python
"""Lab client that talks to the node server's Gradio app with the real gradio_client.

Runs on the client VM with /opt/cvlab-client's Python (gradio_client pinned in
tools/lab/image/requirements-client.txt) and prints JSON.

  once URL --source A                      one synthesis; the node that served
                                           it, the seconds it took and the audio
  load URL --sources A,B,.. --callers N --duration S [--stop-file F]
                                           N processes, each a gradio_client
                                           Client bound to its own source
                                           address, synthesize back to back
                                           until S seconds pass or F exists;
                                           every request's outcome and node

Each call is one `Client.predict` of the app's /synthesize endpoint: the
prompt upload, the queue join, the event stream and the result download, each
a new connection through the VIP. A request fails when gradio_client raises
or the audio it downloaded is not a WAV. "Session not found" (a queue join
and its event stream answered by two different nodes) is counted apart.
Every loop is bounded by its own arguments. Installed next to lab_client.py,
whose prompt clip and output it shares.
"""

import argparse
import inspect
import multiprocessing
import os
import sys
import tempfile
import time
import wave

import lab_client


def bind_source(address):
    """Make every httpx connection of this process leave from `address`.

    gradio_client opens its connections through httpx's module functions,
    which take no transport; the transport's default is the one place left.
    """
    import httpx

    original = httpx.HTTPTransport.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("local_address", address)
        original(self, *args, **kwargs)

    httpx.HTTPTransport.__init__ = init


def prompt_clip(directory):
    """lab_client's prompt clip (1.5 s of a quiet tone) as a file: gradio_client uploads files."""
    path = os.path.join(directory, "prompt.wav")
    with open(path, "wb") as fh:
        fh.write(lab_client.prompt_wav())
    return path


def client_for(url, directory):
    from gradio_client import Client

    wanted = {"verbose": False, "download_files": directory, "analytics_enabled": False}
    params = inspect.signature(Client.__init__).parameters
    return Client(url.rstrip("/") + "/", **{k: v for k, v in wanted.items() if k in params})


def synthesize(client, prompt, text, seed, timeout):
    """One predict; returns {ok, node, seconds, audio_s, error}."""
    from gradio_client import handle_file

    t0 = time.monotonic()
    out = {"ok": False, "node": None, "error": None}
    try:
        job = client.submit(
            text, "zero_shot", handle_file(prompt), "a test tone", "", seed, True, api_name="/synthesize"
        )
        path, info = job.result(timeout=timeout)
        out["node"] = (info or {}).get("node")
        with wave.open(path, "rb") as w:
            out["audio_s"] = round(w.getnframes() / w.getframerate(), 3)
        os.unlink(path)
        out["ok"] = out["audio_s"] > 0
        if not out["ok"]:
            out["error"] = "empty audio"
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def caller(index, url, source, deadline, stop_file, timeout, queue):
    if source:
        bind_source(source)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        prompt = prompt_clip(scratch)
        client = None
        for _ in range(5):  # fetching the app's config can time out on a busy lab: each try counts
            try:
                client = client_for(url, scratch)
                break
            except Exception as exc:
                error = f"Client(): {type(exc).__name__}: {exc}"[:300]
                results.append({"source": source, "ok": False, "node": None, "t": round(time.time(), 3)})
                results[-1]["error"] = error
                time.sleep(1)
        if client is None:
            queue.put(results)
            return
        n = 0
        while time.time() < deadline and not (stop_file and os.path.exists(stop_file)):
            n += 1
            started = time.time()
            r = synthesize(client, prompt, f"Lab load, caller {index}, request {n}.", 1 + index * 100000 + n, timeout)
            r.update(source=source, t=round(started, 3))
            results.append(r)
            if not r["ok"]:
                time.sleep(0.5)
        if hasattr(client, "close"):
            client.close()
    queue.put(results)


def summary(results, started):
    failures = [r for r in results if not r["ok"]]
    per_node, per_source = {}, {}
    for r in results:
        if r["ok"]:
            per_node[r["node"]] = per_node.get(r["node"], 0) + 1
            per_source.setdefault(r["source"], set()).add(r["node"])
    seconds = sorted(r["seconds"] for r in results if r["ok"])
    return {
        "requests": len(results),
        "ok": len(results) - len(failures),
        "failed": len(failures),
        "session_not_found": sum("session not found" in (r["error"] or "").lower() for r in failures),
        "failures": failures,
        "per_node": per_node,
        "nodes_per_source": {k: sorted(v) for k, v in per_source.items()},
        "median_s": seconds[len(seconds) // 2] if seconds else None,
        "started": round(started, 3),
        "seconds": round(time.time() - started, 3),
    }


def load(args):
    sources = args.sources.split(",") if args.sources else [None]
    started = time.time()
    deadline = started + args.duration
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=caller,
            args=(i, args.url, sources[i % len(sources)], deadline, args.stop_file, args.timeout, queue),
        )
        for i in range(args.callers)
    ]
    for p in procs:
        p.start()
    results = []
    for _ in procs:  # every caller puts exactly one list, bounded by deadline + timeout
        results.extend(queue.get(timeout=args.duration + args.timeout + 120))
    for p in procs:
        p.join(timeout=30)
    return summary(results, started)


def once(args):
    if args.source:
        bind_source(args.source)
    with tempfile.TemporaryDirectory() as scratch:
        client = client_for(args.url, scratch)
        r = synthesize(client, prompt_clip(scratch), args.text, 1, args.timeout)
    r["source"] = args.source
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the JSON here as well")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("once")
    s.add_argument("url")
    s.add_argument("--source")
    s.add_argument("--text", default="Hello from the lab, through the VIP.")
    s.add_argument("--timeout", type=float, default=120.0)
    s = sub.add_parser("load")
    s.add_argument("url")
    s.add_argument("--sources", default="")
    s.add_argument("--callers", type=int, default=4)
    s.add_argument("--duration", type=float, default=60.0)
    s.add_argument("--stop-file")
    s.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    result = {"once": once, "load": load}[args.cmd](args)
    lab_client.emit(result, args.out)
    return 0 if args.cmd == "load" or result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
