#!/usr/bin/env python3
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: how fast the keepalived/LVS pair reacts to a dead node, a hung node and a dead director.

Runs against the QEMU lab (tools/lab/labctl) once the lvs_director role has configured keepalived there, and
prints figures (median, min, max and each trial's value next to what keepalived's settings predict). Not a
test: it asserts no timing. Measurements:

  1. dead node: `systemctl stop cosyvoice-tts` on a node; seconds until the MASTER director's IPVS table shows the
     node at weight 0, then `systemctl start` and seconds until its weight is back (return to rotation);
  2. hung node: `systemctl kill -s SIGSTOP cosyvoice-tts` (the socket stays open, handshakes still complete), the
     same two figures, back after SIGCONT;
  3. director failover: a probe loop on the client VM sends GET /livez to the VIP every 50 ms from one or more
     source addresses while the bench runs `labctl kill` on the MASTER director; the gap is the longest time
     between two successful responses around the kill, on the client's own clock. Then `labctl up` boots the
     director again and the bench waits until the VIP and the IPVS table have settled.

    benchmarks/lvs_failover/bench.py [--trials 3] [--failover-trials 1] [--skip-failover] [--json]
    benchmarks/lvs_failover/bench.py --check        # read-only: lab state, settings, latencies, expectations

Timing: node figures use the host's monotonic clock at both ends, from the return of the command that stops
the node (over a persistent ssh session) to the arrival of a line from a watcher that polls the master's IPVS
table (/proc/net/ip_vs: what `ipvsadm -Ln` shows, read without starting a process) over its own ssh session;
the ssh channel round trips and the watcher's poll period are printed as the error bar.

It restores what it changes (cosyvoice-tts started and resumed, client addresses removed, a killed VM booted
again) whatever happens, and every wait has a deadline. Traffic goes only from the client VM to lab addresses.
"""

import argparse
import concurrent.futures
import inspect
import ipaddress
import itertools
import json
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
LABCTL = os.path.join(REPO, "tools", "lab", "labctl")
DEFAULT_TOPOLOGY = os.path.join(REPO, "tools", "lab", "topologies", "default.yml")
DEFAULT_JSON = os.path.join(REPO, "benchmarks", "results", "lvs_failover.json")
RC_MARK = "__lvs_bench_rc="
POLL_S = 0.025  # the watchers' sleep between two polls

ROWS = (
    ("dead_evict", "dead node out of rotation (weight 0)"),
    ("dead_back", "dead node back after start"),
    ("hung_evict", "hung node out of rotation (weight 0)"),
    ("hung_back", "hung node back after SIGCONT"),
    ("dead_not_evicted", "dead node NOT out within (s)"),
    ("hung_not_evicted", "hung node NOT out within (s)"),
    ("vip_takeover", "VIP on the backup after the kill"),
    ("client_gap", "client: longest gap between answers"),
    ("client_recovery", "client: first answer after the kill"),
    ("client_failed_probes", "client: failed probes (a count)"),
    ("held_survived_pct", "established connections surviving (%)"),
)

# What the brief of the lab's lvs_director role sets; used where a value is not found in keepalived.conf.
DEFAULT_PARAMS = {
    "delay_loop": 1.0,
    "connect_timeout": 2.0,
    "retry": 1,
    "delay_before_retry": 1.0,
    "advert_int": 1.0,
    "vrrp_version": 2,
}

# The lab's own description, asked of tools/lab/cvlab (it needs PyYAML, which this file does without).
LAB_INFO = """
import json, sys
sys.path.insert(0, sys.argv[1])
from cvlab import topology
from cvlab.lab import Lab
lab = Lab(topology.load(sys.argv[2]))
hosts = [{"name": h.name, "ip": h.ip, "groups": h.groups, "ssh": lab.ssh_argv(h), "pidfile": lab.pidfile(h),
          "marker": lab.marker(h)} for h in lab.topo.hosts]
print(json.dumps({"name": lab.topo.name, "subnet": str(lab.topo.subnet), "vars": lab.topo.vars, "hosts": hosts},
                 default=str))
"""


class BenchError(Exception):
    """Something the lab did not do in time, or a state the bench cannot measure from."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lab_python():
    venv = os.path.join(REPO, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


# --------------------------------------------------------------------------------------------------- the lab
class Lab:
    def __init__(self, topology):
        self.topology = topology
        try:
            out = subprocess.run(
                [lab_python(), "-c", LAB_INFO, os.path.join(REPO, "tools", "lab"), topology],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        except subprocess.CalledProcessError as exc:
            raise BenchError(f"cannot read the lab topology {topology}: {exc.stderr.strip()[-2000:]}") from None
        info = json.loads(out)
        self.name = info["name"]
        self.subnet = ipaddress.IPv4Network(info["subnet"])
        self.vars = info["vars"]
        self.hosts = {h["name"]: h for h in info["hosts"]}

    def group(self, name):
        return [h for h in self.hosts.values() if name in h["groups"]]

    def host(self, name):
        if name not in self.hosts:
            raise BenchError(f"no host {name!r} in {self.topology} (hosts: {', '.join(self.hosts)})")
        return self.hosts[name]

    def in_lab(self, address):
        addr = ipaddress.IPv4Address(address)
        return addr in self.subnet and addr not in (self.subnet.network_address, self.subnet.broadcast_address)

    def ssh(self, host, command, timeout=30, check=True):
        """One ssh command (a fresh connection); returns (rc, output)."""
        try:
            proc = subprocess.run(
                [*host["ssh"], command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"{host['name']}: no answer within {timeout} s to: {command}") from None
        if check and proc.returncode != 0:
            raise BenchError(
                f"{host['name']}: `{command}` exited {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}"
            )
        return proc.returncode, proc.stdout

    def labctl(self, *args, timeout):
        argv = [lab_python(), LABCTL, "-t", self.topology, *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"labctl {' '.join(args)}: not done after {timeout} s") from None
        if proc.returncode != 0:
            raise BenchError(f"labctl {' '.join(args)} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")

    def qemu_pid(self, host):
        """The pid of host's running qemu (its command line names the VM), or None."""
        try:
            with open(host["pidfile"], encoding="utf-8") as handle:
                pid = int(handle.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return pid if f"-name {host['marker']} " in cmdline else None


def pid_dead(pid):
    """True once the process is gone or a zombie (so a slow reaper does not delay the answer)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


# ------------------------------------------------------------------------------------------------ ssh streams
class Stream:
    """An ssh process whose output lines are stamped with the host's monotonic clock as they arrive."""

    def __init__(self, argv, what, stdin_text=None, interactive=False):
        self.what = what
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if (interactive or stdin_text is not None) else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if stdin_text is not None:
            try:
                self.proc.stdin.write(stdin_text)
                self.proc.stdin.close()
            except BrokenPipeError:
                pass  # ssh failed; next_line reports its output

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def next_line(self, deadline):
        try:
            stamp, line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise BenchError(f"{self.what}: nothing within the deadline") from None
        if line is None:
            self.proc.wait(5)
            raise BenchError(f"{self.what}: ssh ended (rc {self.proc.returncode})")
        return stamp, line

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Session(Stream):
    """A persistent `sh` over ssh: run() returns when the command has, with the host time its answer arrived."""

    def __init__(self, host):
        super().__init__([*host["ssh"], "sh 2>&1"], f"{host['name']} session", interactive=True)
        self.name = host["name"]
        self.run("true", timeout=30)

    def run(self, command, timeout=30):
        """(arrival time of the end mark, exit status, output lines)."""
        try:
            self.proc.stdin.write(f"{{ {command}\n}} </dev/null\necho {RC_MARK}$?\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"{self.name}: ssh session ended") from None
        deadline = time.monotonic() + timeout
        out = []
        while True:
            stamp, line = self.next_line(deadline)
            before, mark, rc = line.partition(RC_MARK)
            if mark:
                if before:
                    out.append(before)
                return stamp, int(rc), out
            out.append(line)

    def check(self, command, timeout=30):
        stamp, rc, out = self.run(command, timeout)
        if rc != 0:
            raise BenchError(f"{self.name}: `{command}` exited {rc}: {' '.join(out)[-800:]}")
        return stamp, out

    def round_trips(self, count):
        """Seconds from writing `true` to the arrival of its end mark, count times."""
        samples = []
        for _ in range(count):
            start = time.monotonic()
            stamp, _, _ = self.run("true")
            samples.append(stamp - start)
        return samples


def holds_snippet(vip):
    """Shell: 1 if this host has the address vip on any interface, else 0."""
    return (
        f"ip -o -4 addr show | awk -v a={vip} '{{ split($4, p, \"/\"); if (p[1] == a) n = 1 }} END {{ print n + 0 }}'"
    )


def ip_vs_form(address, port):
    """address:port as /proc/net/ip_vs writes it (C0A83215:1EB4)."""
    return f"{int(ipaddress.IPv4Address(address)):08X}:{port:04X}"


def watch(kind, target, period, lifetime):
    """Runs ON A DIRECTOR (bench.py sends this function's source over ssh). Prints "VALUE POLLS SECONDS" at
    once, each time VALUE changes and at least once a second (so that it dies of SIGPIPE soon after the bench
    hangs up), polling every `period` s; stops after `lifetime` s. It rereads one open /proc file and starts no
    process: a few % of a TCG vCPU at 25 ms (opening the file each time cost several times that).
    kind "weight": target is [service, real server] as /proc/net/ip_vs writes them ("TCP C0A83264:1EB4",
    "C0A83215:1EB4"), VALUE the real server's weight (what `ipvsadm -Ln` shows) or "absent".
    kind "vip": target is an IPv4 address, VALUE 1 while it is a local address of this host, else 0."""
    path = "/proc/net/ip_vs" if kind == "weight" else "/proc/net/fib_trie"
    fd = os.open(path, os.O_RDONLY) if os.path.exists(path) else None

    def lines():
        chunks, offset = [], 0
        while fd is not None:
            chunk = os.pread(fd, 65536, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks).decode("ascii", "replace").splitlines()

    def weight():
        service = None
        for line in lines():
            parts = line.split()
            if parts[:1] == ["->"]:
                if service == target[0] and parts[1] == target[1]:
                    return parts[3]
            elif parts:
                service = " ".join(parts[:2])
        return "absent"

    def local():
        rows = lines()
        for index, line in enumerate(rows):
            if line.strip() == f"|-- {target}":
                for info in rows[index + 1 :]:
                    if "--" in info:
                        break
                    if "host LOCAL" in info:
                        return "1"
        return "0"

    read = weight if kind == "weight" else local
    start = time.monotonic()
    polls, last, shown = 0, None, start
    while time.monotonic() - start < lifetime:
        value = read()
        polls += 1
        now = time.monotonic()
        if value != last or now - shown >= 1:
            print(f"{value} {polls} {now - start:.3f}", flush=True)
            last, shown = value, now
        time.sleep(period)


def remote_script(func, *args):
    """Python source that runs func(*args) on a VM: the function may use only the modules imported here."""
    head = "import json\nimport os\nimport re\nimport socket\nimport threading\nimport time\n\n\n"
    return head + inspect.getsource(func) + f"\n\n{func.__name__}(*{list(args)!r})\n"


class Watcher(Stream):
    """watch() on a director over ssh; tracks its real poll period from the lines it prints."""

    def __init__(self, host, kind, target, lifetime):
        super().__init__(
            [*host["ssh"], f"timeout {int(lifetime) + 10} python3 -"],
            f"{kind} watcher on {host['name']}",
            stdin_text=remote_script(watch, kind, target, POLL_S, lifetime),
        )
        self.host = host["name"]
        self.period = None

    def wait(self, wanted, deadline):
        """(arrival time, value) of the first value for which wanted(value) holds."""
        while True:
            stamp, line = self.next_line(deadline)
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit():
                continue  # not the watcher's (a warning from ssh)
            if int(parts[1]) > 1:
                self.period = float(parts[2]) / (int(parts[1]) - 1)
            if wanted(parts[0]):
                return stamp, parts[0]


def wait_for(stream, wanted, deadline):
    """(arrival time, line) of the first line of stream for which wanted(line) holds, before deadline."""
    while True:
        stamp, line = stream.next_line(deadline)
        if wanted(line.strip()):
            return stamp, line.strip()


def in_rotation(value):
    return value.isdigit() and int(value) > 0


def evicted(value):
    return value == "absent" or (value.isdigit() and int(value) == 0)


# -------------------------------------------------------------------------------------------- keepalived
def strip_comments(text):
    return "\n".join(re.split(r"[#!]", line, maxsplit=1)[0] for line in text.splitlines())


def block(text, header_re):
    """The text inside the braces of the first block whose header matches header_re, or None."""
    for match in re.finditer(header_re, text):
        start = text.find("{", match.end() - 1)
        if start < 0:
            continue
        depth = 0
        for pos in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                return text[start + 1 : pos]
    return None


def number(text, keys):
    if text is None:
        return None
    match = re.search(r"^\s*(?:" + "|".join(keys) + r")\s+([0-9.]+)\s*$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def vrrp_instance(text, vip):
    """The body of the vrrp_instance whose virtual_ipaddress holds vip, or None."""
    for match in re.finditer(r"\bvrrp_instance\s+\S+\s*\{", text):
        body = block(text[match.start() :], r"\bvrrp_instance\s+\S+\s*\{")
        if body and re.search(rf"(?<![0-9.]){re.escape(vip)}(?![0-9.])", body):
            return body
    return None


def keepalived_params(text, vip, port):
    """Checker and VRRP settings for vip:port from one director's configuration, with their sources."""
    text = strip_comments(text)
    vs = block(text, rf"\bvirtual_server\s+{re.escape(vip)}\s+{port}\s*\{{")
    instance = vrrp_instance(text, vip)
    found = {
        "delay_loop": number(vs, ["delay_loop"]),
        "connect_timeout": number(vs, ["connect_timeout"]),
        "retry": number(vs, ["retry", "nb_get_retry"]),
        "delay_before_retry": number(vs, ["delay_before_retry"]),
        "advert_int": number(instance, ["advert_int"]),
        "vrrp_version": number(text, ["vrrp_version"]),
        "priority": number(instance, ["priority"]),
    }
    params, source = {}, {}
    for key, value in found.items():
        if value is not None:
            params[key], source[key] = value, "keepalived.conf"
        elif key in DEFAULT_PARAMS:
            params[key], source[key] = DEFAULT_PARAMS[key], "default"
    for key in ("retry", "vrrp_version", "priority"):
        if key in params:
            params[key] = int(params[key])
    params["preempt"] = instance is None or not re.search(r"^\s*nopreempt\s*$", instance, re.MULTILINE)
    params["virtual_server_found"] = vs is not None
    params["vrrp_instance_found"] = instance is not None
    return params, source


def expectations(params, backup_priority, probe_interval):
    """What keepalived's settings predict, in seconds: {key: (low, high, formula)}; low None = an upper bound."""
    dl, ct, retry, dbr = (params[k] for k in ("delay_loop", "connect_timeout", "retry", "delay_before_retry"))
    adv = params["advert_int"]
    out = {
        "dead_evict": (None, dl + retry * dbr, "delay_loop + retry*delay_before_retry (refused at once)"),
        "dead_back": (None, dl, "delay_loop, plus the service's start"),
        "hung_evict": (
            None,
            dl + ct + retry * (dbr + ct),
            "delay_loop + connect_timeout + retry*(delay_before_retry + connect_timeout)",
        ),
        "hung_back": (None, dl, "delay_loop"),
    }
    if backup_priority is not None:
        down = 3 * adv + (256 - backup_priority) * adv / 256
        why = f"master-down = 3*advert_int + (256-{int(backup_priority)})*advert_int/256, less up to one advert_int"
        out["vip_takeover"] = (down - adv, down, why)
        out["client_gap"] = (down - adv, down + probe_interval, why + ", plus up to one probe interval")
        out["client_recovery"] = (down - adv, down + probe_interval, why + ", plus up to one probe interval")
    return out


def expected_text(expected):
    if not expected:
        return ""
    low, high, _ = expected
    return f"<= {high:.2f}" if low is None else f"{low:.2f}..{high:.2f}"


# ------------------------------------------------------------------------------------------------ the probe
def probe_loop(cfg):
    """Runs ON THE CLIENT VM (bench.py sends this function's source over ssh): one GET /livez per source address every
    cfg["interval"] s for cfg["duration"] s, each on a new connection with cfg["timeout"] s for connect + read.
    Prints "ready" first, then one line "result JSON" with every request as [source index, start, end, outcome,
    node], times in seconds on the client's monotonic clock from the "ready" line."""
    vip, port, limit = cfg["vip"], cfg["port"], cfg["timeout"]
    request = f"GET /livez HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode()
    results, lock = [], threading.Lock()
    origin = time.monotonic()

    def one(index, source):
        start = time.monotonic()
        outcome, node = "ok", ""
        try:
            with socket.create_connection((vip, port), timeout=limit, source_address=(source, 0)) as sock:
                sock.sendall(request)
                data = b""
                while True:
                    left = start + limit - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1:2]
            if status != [b"200"]:
                outcome = "http " + b"".join(status).decode(errors="replace")
            else:
                text = body.decode(errors="replace").strip()
                try:  # the node server's /livez: {"node": ...}
                    node = str(json.loads(text).get("node", text))
                except (ValueError, AttributeError):
                    node = text
        except TimeoutError:
            outcome = "timeout"
        except OSError as exc:
            outcome = type(exc).__name__
        end = time.monotonic()
        with lock:
            results.append([index, round(start - origin, 4), round(end - origin, 4), outcome, node])

    held, held_threads = [], []

    def hold(index, source):
        """One established keep-alive connection: a request every held_interval s until the probe ends; the
        first error (reset, timeout, bad answer) ends it. Row: [source index, requests ok, lost at or None,
        error, [nodes]]."""
        row = [index, 0, None, "", []]
        try:
            sock = socket.create_connection((vip, port), timeout=cfg["held_timeout"], source_address=(source, 0))
        except OSError as exc:
            row[2], row[3] = round(time.monotonic() - origin, 4), "connect: " + type(exc).__name__
            with lock:
                held.append(row)
            return
        ask = f"GET /livez HTTP/1.1\r\nHost: {vip}\r\n\r\n".encode()
        try:
            with sock:
                sock.settimeout(cfg["held_timeout"])
                while time.monotonic() - origin < cfg["duration"]:
                    sock.sendall(ask)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionResetError("closed by the peer")
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
                    while len(body) < length:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionResetError("closed by the peer")
                        body += chunk
                    if head.split(b" ", 2)[1:2] != [b"200"]:
                        raise ValueError("http " + head.split(b" ", 2)[1].decode(errors="replace"))
                    node = str(json.loads(body[:length].decode()).get("node", ""))
                    if node not in row[4]:
                        row[4].append(node)
                    row[1] += 1
                    time.sleep(cfg["held_interval"])
        except (OSError, ValueError, AttributeError) as exc:
            row[2], row[3] = round(time.monotonic() - origin, 4), type(exc).__name__ + ": " + str(exc)[:80]
        with lock:
            held.append(row)

    for index, source in enumerate(cfg["sources"]):
        for _ in range(cfg["held"]):
            thread = threading.Thread(target=hold, args=(index, source), daemon=True)
            thread.start()
            held_threads.append(thread)
    time.sleep(1.0)  # the held connections are established (and answered once) before "ready"
    print("ready", flush=True)
    threads, tick = [], 0
    while tick * cfg["interval"] <= cfg["duration"]:
        delay = origin + tick * cfg["interval"] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for index, source in enumerate(cfg["sources"]):
            thread = threading.Thread(target=one, args=(index, source), daemon=True)
            thread.start()
            threads.append(thread)
        tick += 1
    deadline = time.monotonic() + 2 * limit + 5
    for thread in threads + held_threads:
        thread.join(max(deadline + cfg["held_timeout"] - time.monotonic(), 0))
    with lock:
        done = sorted(results, key=lambda r: (r[1], r[0]))
        kept = sorted(held)
    result = {"sources": cfg["sources"], "end": round(time.monotonic() - origin, 4), "results": done, "held": kept}
    print("result " + json.dumps(result, separators=(",", ":")), flush=True)


def analyse_probe(data, kill_at, margin=0.5):
    """The failover as the client saw it. kill_at: the kill on the client's clock (estimated from the host's).

    Per source: the longest time between two successive successful responses where the later one came after
    kill_at - margin (the outage; if none came after the kill, probe end - last answer, a lower bound), the
    largest such gap before that (baseline jitter), the end of the first successful request sent after the kill
    (recovery), and the failures by kind."""
    per_source = []
    for index, source in enumerate(data["sources"]):
        rows = [r for r in data["results"] if r[0] == index]
        ok = sorted(r[2] for r in rows if r[3] == "ok")
        before = [b - a for a, b in itertools.pairwise(ok) if b < kill_at - margin]
        after = [(b - a, a, b) for a, b in itertools.pairwise(ok) if b >= kill_at - margin]
        last_before = max((t for t in ok if t < kill_at), default=None)
        recovery = min((r[2] for r in rows if r[3] == "ok" and r[1] >= kill_at), default=None)
        recovered = any(t > kill_at for t in ok)
        if recovered and after:
            gap, gap_from, gap_to = max(after)
        elif last_before is not None:
            gap, gap_from, gap_to = data["end"] - last_before, last_before, None
        else:
            gap, gap_from, gap_to = None, None, None
        failures = {}
        for row in rows:
            if row[3] != "ok":
                key = ("before kill: " if row[1] < kill_at else "") + row[3]
                failures[key] = failures.get(key, 0) + 1
        nodes = sorted({r[4] for r in rows if r[3] == "ok"})
        per_source.append(
            {
                "source": source,
                "requests": len(rows),
                "ok": len(ok),
                "ok_before_kill": sum(1 for t in ok if t < kill_at),
                "failed": sum(failures.values()),
                "failures": failures,
                "gap_s": gap,
                "recovered": recovered,
                "gap_from_kill_s": None if gap_from is None else gap_from - kill_at,
                "gap_to_kill_s": None if gap_to is None else gap_to - kill_at,
                "recovery_after_kill_s": None if recovery is None else recovery - kill_at,
                "largest_gap_before_kill_s": max(before, default=None),
                "nodes": nodes,
            }
        )
    return per_source


# ------------------------------------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, args, lab):
        self.args, self.lab = args, lab
        self.vip, self.port = args.vip, args.port
        self.directors = lab.group("lvs_directors")
        self.nodes = lab.group("cosyvoice_nodes")
        if len(self.directors) < 2 or not self.nodes:
            raise BenchError("the topology needs two lvs_directors and at least one cosyvoice_nodes host")
        self.node = lab.host(args.node) if args.node else self.nodes[0]
        clients = [lab.host(args.client)] if args.client else lab.group("lab_clients")
        if not clients:
            raise BenchError("the topology has no lab_clients host: give --client")
        self.client = clients[0]
        for address in (self.vip, self.node["ip"], self.client["ip"]):
            if not lab.in_lab(address):
                raise BenchError(f"{address} is not in the lab subnet {lab.subnet}; the bench sends nothing there")
        self.sources = self.client_sources(args.clients)
        self.values = {}
        self.details = {"node": [], "failover": []}
        self.touched_node = False
        self.added_sources = []
        self.killed = None
        self.frozen_pid = None
        self.master_name, self.backup_priority, self.client_dev = None, None, "eth1"
        self.params, self.priorities, self.latency = dict(DEFAULT_PARAMS), {}, {}

    def client_sources(self, count):
        used = {h["ip"] for h in self.lab.hosts.values()} | {self.vip}
        base = ipaddress.IPv4Address(self.client["ip"])
        sources = [self.client["ip"]]
        for i in range(1, count):
            extra = str(base + i)
            if not self.lab.in_lab(extra) or extra in used:
                raise BenchError(f"extra client address {extra} is outside the lab subnet or taken: lower --clients")
            sources.append(extra)
        return sources

    def record(self, key, value):
        self.values.setdefault(key, []).append(value)

    # ------------------------------------------------------------------ lab state
    def director_state(self, director):
        command = (
            f"printf 'vip=%s\\n' \"$({holds_snippet(self.vip)})\"; "
            f"ipvsadm -Ln -t {self.vip}:{self.port} 2>/dev/null | "
            'awk \'$1 == "->" && $2 ~ /^[0-9]/ { print "rs=" $2 "=" $4 }\'; '
            "printf 'keepalived=%s\\n' \"$(systemctl is-active keepalived)\""
        )
        try:
            rc, out = self.lab.ssh(director, command, timeout=20, check=False)
        except BenchError as exc:
            return {"reachable": False, "why": str(exc)}
        if rc == 255:
            return {"reachable": False, "why": out.strip()[-200:] or "ssh failed"}
        state = {"reachable": True, "vip": False, "weights": {}, "keepalived": "?"}
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key == "vip":
                state["vip"] = value.strip() == "1"
            elif key == "rs":
                address, _, weight = value.rpartition("=")
                state["weights"][address.rsplit(":", 1)[0]] = int(weight) if weight.isdigit() else 0
            elif key == "keepalived":
                state["keepalived"] = value.strip()
        return state

    def lab_state(self):
        with concurrent.futures.ThreadPoolExecutor(len(self.directors)) as pool:
            futures = {d["name"]: pool.submit(self.director_state, d) for d in self.directors}
            states = {name: future.result() for name, future in futures.items()}
        holders = [name for name, s in states.items() if s.get("vip")]
        problem = None
        down = [name for name, s in states.items() if not s["reachable"] or s["keepalived"] != "active"]
        if down:
            problem = "keepalived not active (or no ssh) on " + ", ".join(down)
        elif len(holders) != 1:
            problem = f"{len(holders)} directors hold the VIP {self.vip} ({', '.join(holders) or 'none'})"
        else:
            weights = states[holders[0]]["weights"]
            out = [n["name"] for n in self.nodes if weights.get(n["ip"], 0) <= 0]
            if out:
                problem = f"not in rotation on {holders[0]} (weight 0 or absent): {', '.join(out)}"
        return (holders[0] if not problem else None), problem, states

    def wait_settled(self, timeout, stable):
        """The master director once exactly one holds the VIP and every node is in its table with weight > 0,
        and that has held (same master) for `stable` seconds."""
        deadline = time.monotonic() + timeout
        since, master, problem = None, None, None
        while True:
            current, problem, _ = self.lab_state()
            now = time.monotonic()
            if current and current == master:
                if now - since >= stable:
                    return self.lab.host(master)
            elif current:
                since, master = now, current
            else:
                since, master = None, None
            if now > deadline:
                raise BenchError(f"the lab did not settle within {timeout} s: {problem}")
            time.sleep(0.5)

    def director_params(self, director):
        rc, text = self.lab.ssh(
            director, "find /etc/keepalived -type f -name '*.conf' -exec cat {} + 2>/dev/null", timeout=20, check=False
        )
        return keepalived_params(text if rc == 0 else "", self.vip, self.port)

    # ------------------------------------------------------------------ preflight
    def preflight(self, strict):
        """Read the lab (read-only); return what stands in the way of measuring, or None."""
        log(f"lab {self.lab.name}: VIP {self.vip}:{self.port}, node {self.node['name']}, client {self.client['name']}")
        self.master_name, problem, states = self.lab_state()
        for name, state in states.items():
            if state["reachable"]:
                weights = " ".join(f"{a}={w}" for a, w in sorted(state["weights"].items())) or "no virtual service"
                holds = "held" if state["vip"] else "not held"
                log(f"  {name}: keepalived {state['keepalived']}, VIP {holds}, {weights}")
            else:
                log(f"  {name}: unreachable ({state['why']})")
        params = {d["name"]: self.director_params(d) for d in self.directors}
        self.params, source = params[self.master_name or self.directors[0]["name"]]
        self.priorities = {name: p.get("priority") for name, (p, _) in params.items()}
        log(
            "  keepalived: "
            + ", ".join(
                f"{k} {v}" + (" (default)" if source.get(k) == "default" else "")
                for k, v in self.params.items()
                if k != "priority"
            )
        )
        log("  priorities: " + ", ".join(f"{n} {p if p is not None else '?'}" for n, p in self.priorities.items()))
        self.latency = {}
        for host in [self.node, self.client, *self.directors]:
            samples = []
            for _ in range(self.args.ssh_samples):
                start = time.monotonic()
                rc, _ = self.lab.ssh(host, "true", timeout=30, check=False)
                if rc == 0:
                    samples.append(time.monotonic() - start)
            if not samples:
                raise BenchError(f"{host['name']}: no ssh (is the lab up? `tools/lab/labctl status`)")
            self.latency[f"fresh_ssh_{host['name']}"] = samples
        watched = self.lab.host(self.master_name) if self.master_name else self.directors[0]
        for host in (self.node, self.client, watched):
            session = Session(host)
            try:
                self.latency[f"channel_{host['name']}"] = session.round_trips(self.args.ssh_samples)
            finally:
                session.close()
        self.latency["poll_period"] = [self.poll_period(watched)]
        for key, samples in self.latency.items():
            log(f"  {key}: median {statistics.median(samples) * 1000:.0f} ms over {len(samples)}")
        _, out = self.lab.ssh(self.node, "systemctl is-active cosyvoice-tts", timeout=20, check=False)
        self.client_dev = self.lab.ssh(
            self.client,
            f"ip -o -4 addr show | awk -v a={self.client['ip']} '{{ split($4, p, \"/\"); if (p[1] == a) print $2 }}'",
            timeout=20,
        )[1].strip()
        fatal = []
        if out.strip() != "active" and not self.args.skip_nodes:
            fatal.append(f"cosyvoice-tts is {out.strip() or 'unknown'} on {self.node['name']}")
        if not any(s.get("weights") for s in states.values()):
            fatal.append(f"no director has the virtual service {self.vip}:{self.port}: configure the lab first")
        if not self.client_dev and not self.args.skip_failover:
            fatal.append(f"{self.client['ip']} is on no interface of {self.client['name']}")
        if fatal and strict:
            raise BenchError("; ".join(fatal))
        problem = "; ".join([*fatal, problem] if problem else fatal)
        if problem:
            log(f"  not ready to measure: {problem}")
        return problem or None

    def poll_period(self, director):
        """Seconds between two polls of a weight watcher on director, over about 2 s."""
        watcher = Watcher(director, "weight", self.weight_target(self.node), 30)
        try:
            deadline = time.monotonic() + 60
            watcher.wait(lambda value: True, deadline)
            started = time.monotonic()
            while time.monotonic() < started + 2:
                watcher.wait(lambda value: True, deadline)
        finally:
            watcher.close()
        return watcher.period

    def weight_target(self, node):
        return [f"TCP {ip_vs_form(self.vip, self.port)}", ip_vs_form(node["ip"], self.port)]

    # ------------------------------------------------------------------ 1 and 2: a node
    def node_trial(self, kind, trial):
        stop, resume = {
            "dead": ("systemctl stop cosyvoice-tts", "systemctl start cosyvoice-tts"),
            "hung": ("systemctl kill -s SIGSTOP cosyvoice-tts", "systemctl kill -s SIGCONT cosyvoice-tts"),
        }[kind]
        timeout = self.args.timeout
        master = self.wait_settled(timeout=self.args.settle_timeout, stable=2)
        node = self.node
        session = watcher = None
        try:
            session = Session(node)
            watcher = Watcher(master, "weight", self.weight_target(node), 2 * timeout + 60)
            _, first = watcher.wait(lambda value: True, time.monotonic() + 60)
            if not in_rotation(first):
                raise BenchError(f"{node['name']} has weight {first!r} on {master['name']} before the trial")
            self.touched_node = True
            t_stop, _ = session.check(stop, timeout=timeout)
            try:
                t_evicted, value = watcher.wait(evicted, t_stop + timeout)
            except BenchError:  # e.g. TCP_CHECK and a hung node: the kernel still completes the handshake
                t_evicted, value = None, "still in rotation"
            t_resume, _ = session.check(resume, timeout=timeout)
            if t_evicted is None:
                t_back = t_resume
            else:
                t_back, _ = watcher.wait(in_rotation, t_resume + timeout)
            self.touched_node = False
        finally:
            for stream in (watcher, session):
                if stream:
                    stream.close()
        if t_evicted is None:
            self.record(f"{kind}_not_evicted", timeout)
            self.details["node"].append(
                {"kind": kind, "trial": trial, "master": master["name"], "node": node["name"], "evicted_as": None}
            )
            log(f"{kind} node trial {trial}: {node['name']} NOT out of rotation on {master['name']} within {timeout} s")
            return
        evict, back = t_evicted - t_stop, t_back - t_resume
        self.record(f"{kind}_evict", evict)
        self.record(f"{kind}_back", back)
        self.details["node"].append(
            {
                "kind": kind,
                "trial": trial,
                "master": master["name"],
                "node": node["name"],
                "evicted_as": value,
                "poll_s": watcher.period,
            }
        )
        log(
            f"{kind} node trial {trial}: {node['name']} out of rotation on {master['name']} after {evict:.2f} s "
            f"(weight {value}), back {back:.2f} s after `{resume}`"
        )

    # ------------------------------------------------------------------ 3: the director
    def failover_trial(self, trial):
        args = self.args
        master = self.wait_settled(timeout=args.settle_timeout, stable=args.settle)
        others = [d for d in self.directors if d["name"] != master["name"]]
        backup_priority = max((self.priorities.get(d["name"]) or 0 for d in others), default=0) or None
        pid = self.lab.qemu_pid(master)
        if not pid or pid_dead(pid):
            raise BenchError(f"no running qemu for {master['name']} (pid file {master['pidfile']})")
        lifetime = args.probe_duration + 60
        watchers, probe = {}, None
        cfg = {
            "vip": self.vip,
            "port": self.port,
            "sources": self.sources,
            "interval": args.probe_interval,
            "timeout": args.probe_timeout,
            "duration": args.probe_duration,
            "held": args.held,
            "held_interval": args.held_interval,
            "held_timeout": args.held_timeout,
        }
        try:
            for d in others:
                watchers[d["name"]] = Watcher(d, "vip", self.vip, lifetime)
            for name, watcher in watchers.items():
                _, value = watcher.wait(lambda value: True, time.monotonic() + 60)
                if value != "0":
                    raise BenchError(f"{name} holds the VIP {self.vip} too before the kill")
            probe = Stream(
                [*self.client["ssh"], f"timeout {int(lifetime)} python3 -"],
                f"probe on {self.client['name']}",
                stdin_text=remote_script(probe_loop, cfg),
            )
            t_ready, _ = wait_for(probe, lambda line: line == "ready", time.monotonic() + 60)
            time.sleep(args.warmup)
            t_start = time.monotonic()
            self.killed = master
            if args.failure == "freeze":
                # the whole VM stops at once (its qemu process SIGSTOPped): a hung host, gone from the network
                self.frozen_pid = pid
                os.kill(pid, signal.SIGSTOP)
                t_kill = time.monotonic()
            else:
                killer = subprocess.Popen(
                    [lab_python(), LABCTL, "-t", self.lab.topology, "kill", master["name"]],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                # labctl starts Python and reads the topology first: the kill is when the qemu process dies
                while not pid_dead(pid) and time.monotonic() < t_start + 30:
                    time.sleep(0.002)
                t_kill = time.monotonic()
                try:
                    killer.wait(60)
                except subprocess.TimeoutExpired:
                    killer.kill()
                    raise BenchError(f"labctl kill {master['name']}: not done after 60 s") from None
                if not pid_dead(pid):
                    raise BenchError(f"labctl kill {master['name']}: qemu pid {pid} still alive")
            takeover, new_master = None, None
            for name, watcher in watchers.items():
                try:
                    stamp, _ = watcher.wait(lambda value: value == "1", t_kill + args.timeout)
                except BenchError as exc:
                    log(f"  {exc}")
                    continue
                if takeover is None or stamp - t_kill < takeover:
                    takeover, new_master = stamp - t_kill, name
            _, line = wait_for(probe, lambda text: text.startswith("result "), t_ready + lifetime + 30)
            data = json.loads(line[len("result ") :])
        finally:
            for stream in [*watchers.values(), probe]:
                if stream:
                    stream.close()
        # "ready" left the client at its time 0 and arrived about half a channel round trip later
        one_way = statistics.median(self.latency.get(f"channel_{self.client['name']}", [0])) / 2
        kill_at = t_kill - t_ready + one_way
        per_source = analyse_probe(data, kill_at)
        if any(s["ok_before_kill"] == 0 for s in per_source):
            raise BenchError(f"the client got no answer from {self.vip} before the kill: {per_source}")
        worst = max(per_source, key=lambda s: s["gap_s"])
        self.record("client_gap", worst["gap_s"])
        if all(s["recovery_after_kill_s"] is not None for s in per_source):
            self.record("client_recovery", max(s["recovery_after_kill_s"] for s in per_source))
        if takeover is not None:
            self.record("vip_takeover", takeover)
        failed = sum(s["failed"] for s in per_source)
        self.record("client_failed_probes", failed)
        # established connections: opened (and answered) before the kill, still answering at the end
        held = [h for h in data.get("held", []) if h[1] > 0 and (h[2] is None or h[2] >= kill_at)]
        survived = [h for h in held if h[2] is None]
        if held:
            self.record("held_survived_pct", 100.0 * len(survived) / len(held))
        self.backup_priority = backup_priority
        self.details["failover"].append(
            {
                "trial": trial,
                "killed": master["name"],
                "new_master": new_master,
                "backup_priority": backup_priority,
                "labctl_kill_s": t_kill - t_start,
                "kill_at_client_s": kill_at,
                "vip_takeover_s": takeover,
                "per_source": per_source,
                "held": data.get("held", []),
                "held_established": len(held),
                "held_survived": len(survived),
            }
        )
        log(
            f"failover trial {trial}: {'froze' if args.failure == 'freeze' else 'killed'} {master['name']}; "
            f"VIP on {new_master or '?'} after "
            f"{'?' if takeover is None else f'{takeover:.2f}'} s; client gap {worst['gap_s']:.2f} s"
            f"{'' if worst['recovered'] else ' (NOT recovered within the probe: a lower bound)'}; "
            f"{failed} failed probes; {len(survived)} of {len(held)} established connections survived"
        )
        for h in held:
            if h[2] is not None:
                log(f"  held connection from {self.sources[h[0]]} lost {h[2] - kill_at:+.2f} s after the kill: {h[3]}")
        for s in per_source:
            log(f"  from {s['source']}: gap {s['gap_s']:.2f} s, failed {s['failures']}, nodes {', '.join(s['nodes'])}")
        self.bring_back()

    def bring_back(self):
        if not self.killed:
            return
        start = time.monotonic()
        if self.frozen_pid:
            log(f"resuming {self.killed['name']} (SIGCONT) and waiting for the VIP to settle ...")
            os.kill(self.frozen_pid, signal.SIGCONT)
            self.frozen_pid = None
        else:
            log(f"booting {self.killed['name']} again (labctl up) and waiting for the VIP to settle ...")
            self.lab.labctl("up", timeout=self.args.boot_timeout)
        self.killed = None
        master = self.wait_settled(timeout=self.args.settle_timeout, stable=self.args.settle)
        log(f"  settled after {time.monotonic() - start:.0f} s; master {master['name']}")

    # ------------------------------------------------------------------ client addresses
    def add_sources(self):
        dev, prefix = self.client_dev, self.lab.subnet.prefixlen
        for address in self.sources[1:]:
            rc, _ = self.lab.ssh(self.client, f"ip -o -4 addr show dev {dev} | grep -q ' {address}/'", check=False)
            if rc == 0:
                continue  # already there: not ours to remove
            self.lab.ssh(self.client, f"ip addr add {address}/{prefix} dev {dev}")
            self.added_sources.append(address)
        if self.added_sources:
            log(f"added {', '.join(self.added_sources)} to {dev} on {self.client['name']} (removed at the end)")

    def restore(self):
        """Best effort, each step on its own: what the bench may have changed goes back."""
        if self.touched_node:
            try:
                self.lab.ssh(
                    self.node,
                    "systemctl kill -s SIGCONT cosyvoice-tts 2>/dev/null; systemctl start cosyvoice-tts",
                    timeout=60,
                    check=False,
                )
                log(f"restored cosyvoice-tts on {self.node['name']}")
            except BenchError as exc:
                log(f"could not restore cosyvoice-tts on {self.node['name']}: {exc}")
        for address in list(self.added_sources):
            try:
                prefix = self.lab.subnet.prefixlen
                self.lab.ssh(self.client, f"ip addr del {address}/{prefix} dev {self.client_dev}", check=False)
                self.added_sources.remove(address)
            except BenchError as exc:
                log(f"could not remove {address} from {self.client['name']}: {exc}")
        if self.killed:
            try:
                self.bring_back()
            except BenchError as exc:
                log(f"could not bring {self.killed['name']} back: {exc}; run `tools/lab/labctl up`")

    # ------------------------------------------------------------------ report
    def report(self):
        backup = self.backup_priority
        if backup is None:
            master = self.master_name or self.directors[0]["name"]
            backup = max((p for n, p in self.priorities.items() if p is not None and n != master), default=None)
        expected = expectations(self.params, backup, self.args.probe_interval)
        summary = {}
        if self.values:
            print(
                f"\n{'measurement':40}{'median s':>9}{'min':>8}{'max':>8}{'trials':>7}  {'expected s':<12}  each trial"
            )
        for key, label in ROWS:
            values = self.values.get(key)
            if not values:
                continue
            med, low, high = statistics.median(values), min(values), max(values)
            summary[key] = {"median": med, "min": low, "max": high, "n": len(values), "values": values}
            exp_text = expected_text(expected.get(key))
            digits = 0 if key in ("client_failed_probes", "held_survived_pct") else 2
            each = " ".join(f"{v:.{digits}f}" for v in values)
            print(
                f"{label:40}{med:>9.{digits}f}{low:>8.{digits}f}{high:>8.{digits}f}{len(values):>7}  {exp_text:<12}  "
                + each
            )
        print(
            "\nexpected from keepalived's settings"
            + (
                " (some are defaults: not found in keepalived.conf)"
                if not self.params.get("virtual_server_found")
                else ""
            )
            + ":"
        )
        for key, exp in expected.items():
            print(f"  {key:16} {expected_text(exp):<12} {exp[2]}")
        ms = {k: statistics.median(v) * 1000 for k, v in self.latency.items()}
        node_half = ms.get(f"channel_{self.node['name']}", 0) / 2
        master_half = max(
            (v for k, v in ms.items() if k.startswith("channel_") and k[8:] in self.priorities), default=0
        )
        master_half /= 2
        poll = ms.get("poll_period", 0)
        if "poll_period" in ms:
            print(
                f"error bar, node figures (host clock at both ends): the stop is stamped ~{node_half:.0f} ms late "
                f"(half a channel round trip to the node), the weight change ~{master_half:.0f} ms + up to "
                f"{poll:.0f} ms late (half a round trip to the director + one watcher poll): about "
                f"{master_half - node_half:+.0f}..{master_half - node_half + poll:+.0f} ms"
            )
        fresh = [f"{k[10:]} {v:.0f} ms" for k, v in ms.items() if k.startswith("fresh_ssh_")]
        if fresh:
            print("a fresh `ssh HOST true` (not used for timing) takes " + ", ".join(fresh))
        print(
            f"client figures: the client VM's own clock; a probe every {self.args.probe_interval * 1000:.0f} ms from "
            f"each of {len(self.sources)} source address(es), {self.args.probe_timeout:.1f} s per request; 'first "
            "answer after the kill' places the kill on the client's clock through the host's, to about "
            f"{ms.get('channel_' + self.client['name'], 0) / 2:.0f} ms"
        )
        return summary, expected

    def write_json(self, path, started):
        summary, expected = self.report()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                    "lab": self.lab.name,
                    "vip": f"{self.vip}:{self.port}",
                    "node": self.node["name"],
                    "sources": self.sources,
                    "failure": self.args.failure,
                    "params": self.params,
                    "priorities": self.priorities,
                    "latency_s": self.latency,
                    "values": self.values,
                    "summary": summary,
                    "expected": {k: {"low_s": v[0], "high_s": v[1], "formula": v[2]} for k, v in expected.items()},
                    "details": self.details,
                },
                handle,
                indent=1,
            )
        print(f"results written to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--topology", default=os.environ.get("LAB_TOPOLOGY", DEFAULT_TOPOLOGY))
    parser.add_argument("--trials", type=int, default=3, help="dead and hung node trials (default 3)")
    parser.add_argument("--failover-trials", type=int, default=1, help="director kills (default 1; each reboots)")
    parser.add_argument("--skip-nodes", action="store_true", help="no dead/hung node trials")
    parser.add_argument("--skip-failover", action="store_true", help="no director kill")
    parser.add_argument(
        "--failure",
        choices=("kill", "freeze"),
        default="kill",
        help="how the master is lost: kill its qemu (then boot it again), or freeze it (SIGSTOP, then SIGCONT)",
    )
    parser.add_argument("--check", action="store_true", help="read-only: state, settings, latencies; change nothing")
    parser.add_argument("--node", help="the node to stop and hang (default: the first cosyvoice_nodes host)")
    parser.add_argument("--client", help="the client VM (default: the first lab_clients host)")
    parser.add_argument(
        "--clients",
        type=int,
        default=3,
        help="source addresses on the client (default 3: its own "
        "and the next ones, added to eth1 and removed at the end; 1 adds none)",
    )
    parser.add_argument("--vip", help="default: the topology's lab_vip")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each change (default 60)")
    parser.add_argument("--probe-duration", type=float, default=40, help="seconds the client probes (default 40)")
    parser.add_argument("--probe-interval", type=float, default=0.05)
    parser.add_argument("--probe-timeout", type=float, default=0.5, help="connect + read, seconds (default 0.5)")
    parser.add_argument(
        "--held", type=int, default=4, help="established keep-alive connections per source address (default 4)"
    )
    parser.add_argument("--held-interval", type=float, default=0.5, help="seconds between their requests")
    parser.add_argument("--held-timeout", type=float, default=15, help="per request on them, seconds (default 15)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of probing before the kill (default 5)")
    parser.add_argument("--settle", type=float, default=10, help="seconds the lab must stay settled (default 10)")
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--boot-timeout", type=int, default=1200, help="seconds for `labctl up` (default 1200)")
    parser.add_argument("--ssh-samples", type=int, default=3, help="round trips timed per host (default 3)")
    parser.add_argument("--json", nargs="?", const=DEFAULT_JSON, help=f"write the results (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.failover_trials < 1 or not 1 <= args.clients <= 9 or args.ssh_samples < 1:
        parser.error("--trials, --failover-trials and --ssh-samples must be >= 1, --clients 1..9")
    if args.warmup + 10 > args.probe_duration:
        parser.error("--probe-duration must leave at least 10 s after --warmup")

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        lab = Lab(args.topology)
        args.vip = args.vip or str(lab.vars.get("lab_vip", "192.168.50.100"))
        bench = Bench(args, lab)
        problem = bench.preflight(strict=not args.check)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.check:
        bench.report()
        return 1 if problem else 0
    started = time.time()
    try:
        if not args.skip_nodes:
            for trial in range(1, args.trials + 1):
                for kind in ("dead", "hung"):
                    bench.node_trial(kind, trial)
        if not args.skip_failover:
            bench.add_sources()
            for trial in range(1, args.failover_trials + 1):
                bench.failover_trial(trial)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        bench.restore()
        if bench.values and args.json:
            bench.write_json(args.json, started)
        elif bench.values:
            bench.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
