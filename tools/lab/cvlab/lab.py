"""Bring a topology up, tear it down, and report on it.

Layout on the host for a lab named NAME:
- network namespace cosyvoice-lab-NAME holding bridge br0 (the cluster L2
  segment) and one tap per VM, so the host's br_netfilter and Docker's
  iptables FORWARD policy never see VM-to-VM traffic;
- one qemu process per VM, management over QEMU user networking with
  restrict=on and an ssh port forward on 127.0.0.1, the loopback mirror
  through guestfwd;
- state in <repo>/.lab/NAME/: overlays, pid files, serial logs, the ssh key.
"""

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import yaml

from . import LabError
from . import image as images
from .util import log, pid_alive, read_pid, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MIRROR_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mirror.py")
BOOT_TIMEOUT = int(os.environ.get("COSYVOICE_LAB_BOOT_TIMEOUT", "900"))
RUNTIME_TOOLS = ("qemu-system-x86_64", "qemu-img", "ip", "ssh", "ssh-keygen")
BUILD_TOOLS = ("debootstrap", "mkfs.ext4", "apt-ftparchive", "tar", "chroot")


class Lab:
    def __init__(self, topo):
        self.topo = topo
        self.state = os.path.join(REPO, ".lab", topo.name)
        self.inventory = os.path.join(REPO, topo.inventory)

    # ---------------------------------------------------------------- helpers
    def marker(self, host):
        return f"cvlab-{self.topo.name}-{host.name}"

    def pidfile(self, host):
        return os.path.join(self.state, f"{host.name}.pid")

    def running_pid(self, host):
        pid = read_pid(self.pidfile(host))
        return pid if pid and pid_alive(pid, f"-name {self.marker(host)} ") else None

    def key(self):
        return os.path.join(self.state, "id_ed25519")

    def netns_exists(self):
        return os.path.exists(f"/run/netns/{self.topo.netns}")

    def ssh_argv(self, host, *cmd, connect_timeout=5):
        return [
            "ssh",
            "-q",
            "-i",
            self.key(),
            "-p",
            str(host.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "root@127.0.0.1",
            *cmd,
        ]

    def ssh_ok(self, host):
        return (
            subprocess.run(
                self.ssh_argv(host, "true"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=30,
            ).returncode
            == 0
        )

    # ------------------------------------------------------------- preflight
    def preflight(self, need_build):
        missing = [t for t in RUNTIME_TOOLS + (BUILD_TOOLS if need_build else ()) if shutil.which(t) is None]
        if missing:
            raise LabError(
                f"missing on this machine: {', '.join(missing)}. Install them first "
                "(make deps installs qemu-system-x86, qemu-utils, debootstrap, apt-utils, iproute2, "
                "openssh-client)."
            )
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, taps, debootstrap)")
        to_start = [h for h in self.topo.hosts if not self.running_pid(h)]
        need_mb = sum(h.memory for h in to_start)
        avail_mb = _mem_available_mb()
        if need_mb and need_mb + 1024 > avail_mb:
            raise LabError(
                f"not enough memory: {len(to_start)} VM(s) need {need_mb} MiB plus ~1 GiB headroom, "
                f"{avail_mb} MiB available. Lower 'memory' in {self.topo.path}."
            )
        for h in to_start:
            if _port_busy(h.ssh_port):
                raise LabError(
                    f"127.0.0.1:{h.ssh_port} (ssh of {h.name}) is already in use by another process; "
                    f"change ssh_port_base in {self.topo.path}"
                )

    def resolve_accel(self):
        accel = self.topo.accel
        if accel == "auto":
            # kvm_pvm (a paravirtual KVM) cannot boot a stock Debian kernel: only plain KVM counts.
            usable = os.access("/dev/kvm", os.R_OK | os.W_OK) and not os.path.exists("/sys/module/kvm_pvm")
            accel = "kvm" if usable else "tcg"
        return accel

    # -------------------------------------------------------------- network
    def net_up(self):
        ns = self.topo.netns
        if not self.netns_exists():
            run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        if (
            subprocess.run(
                ["ip", "-n", ns, "link", "show", "br0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            ).returncode
            != 0
        ):
            run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])

    def taps(self):
        found = []
        prefix = f"cvl{self.topo.name}"
        for where in ([], ["-n", self.topo.netns] if self.netns_exists() else None):
            if where is None:
                continue
            out = subprocess.run(
                ["ip", *where, "-o", "link", "show"], capture_output=True, text=True, check=False
            ).stdout
            for line in out.splitlines():
                name = line.split(":")[1].strip().split("@")[0]
                if name.startswith(prefix):
                    found.append((where, name))
        return found

    # ------------------------------------------------------------------ VMs
    def start_vm(self, host, vm, mirror_dir, accel):
        overlay = os.path.join(self.state, f"{host.name}.qcow2")
        base = os.path.join(vm, "base.img")
        if not os.path.exists(overlay) or _backing_file(overlay) != base:
            if os.path.exists(overlay):
                os.unlink(overlay)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay])
        tap = self.topo.tap(host)
        ns = self.topo.netns
        subprocess.run(["ip", "-n", ns, "link", "del", tap], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["ip", "link", "del", tap], stderr=subprocess.DEVNULL, check=False)
        octet = f"{host.octet:02x}"
        # -cpu max: TCG's default qemu64 model lacks SSE4.2/POPCNT (x86-64-v2), which numpy 2 requires.
        accel_args = ["-accel", "tcg,tb-size=256", "-cpu", "max"] if accel == "tcg" else ["-enable-kvm", "-cpu", "host"]
        mgmt = (
            f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{host.ssh_port}-:22,"
            f"guestfwd=tcp:10.0.2.100:80-cmd:{sys.executable} {MIRROR_SCRIPT} {mirror_dir}"
        )
        logfile = os.path.join(self.state, f"{host.name}.log")
        if os.path.exists(logfile):
            os.replace(logfile, logfile + ".1")
        argv = [
            "qemu-system-x86_64",
            "-name",
            self.marker(host),
            *accel_args,
            "-nodefaults",
            "-m",
            str(host.memory),
            "-smp",
            "1",
            "-display",
            "none",
            "-vga",
            "none",
            "-kernel",
            os.path.join(vm, "vmlinuz"),
            "-initrd",
            os.path.join(vm, "initrd.img"),
            "-append",
            f"root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet systemd.hostname={host.name} "
            f"lab.ip={host.ip}/{self.topo.subnet.prefixlen}",
            "-drive",
            f"file={overlay},if=virtio,format=qcow2,discard=unmap",
            "-object",
            "rng-random,filename=/dev/urandom,id=rng0",
            "-device",
            "virtio-rng-pci,rng=rng0",
            "-netdev",
            mgmt,
            "-device",
            f"virtio-net-pci,netdev=mgmt,mac=52:54:00:00:00:{octet}",
            "-netdev",
            f"tap,id=cluster,ifname={tap},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=cluster,mac=52:54:00:01:00:{octet}",
            "-serial",
            f"file:{logfile}",
            "-daemonize",
            "-pidfile",
            self.pidfile(host),
        ]
        run(argv)
        run(["ip", "link", "set", tap, "netns", ns])
        run(["ip", "-n", ns, "link", "set", tap, "master", "br0", "up"])

    def wait_ssh(self, hosts, t0):
        deadline = time.monotonic() + BOOT_TIMEOUT

        def wait(host):
            while time.monotonic() < deadline:
                if not self.running_pid(host):
                    raise LabError(f"{host.name}: qemu exited during boot; see {self.state}/{host.name}.log")
                try:
                    if self.ssh_ok(host):
                        return host.name, time.monotonic() - t0
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(1)
            raise LabError(f"{host.name}: no ssh after {BOOT_TIMEOUT} s; see {self.state}/{host.name}.log")

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
            for name, secs in pool.map(wait, hosts):
                log(f"{name}: ssh ready after {secs:.0f} s")

    # ------------------------------------------------------------- commands
    def up(self):
        topo = self.topo
        p = images.paths()
        need_build = not os.path.exists(os.path.join(p["vm"], "base.img"))
        self.preflight(need_build)
        accel = self.resolve_accel()
        p = images.ensure_vm_image()
        os.makedirs(self.state, exist_ok=True)
        state_file = os.path.join(self.state, "state.json")
        running = [h for h in topo.hosts if self.running_pid(h)]
        if running and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as fh:
                old = json.load(fh)
            if old.get("vm_image") != p["vm"]:
                raise LabError(f"lab {topo.name} runs an older image; run `labctl down` first")
        to_start = [h for h in topo.hosts if h not in running]
        shutil.copy(os.path.join(p["vm"], "id_ed25519"), self.key())
        os.chmod(self.key(), 0o600)
        with open(state_file, "w", encoding="utf-8") as fh:
            json.dump(
                {"topology": os.path.abspath(topo.path), "vm_image": p["vm"], "mirror": p["mirror"], "accel": accel},
                fh,
                indent=1,
            )
        if not to_start:
            log(f"lab {topo.name}: all {len(running)} VMs already running; nothing to start")
        else:
            fresh = not running
            t0 = time.monotonic()
            try:
                self.net_up()
                for h in to_start:
                    self.start_vm(h, p["vm"], p["mirror"], accel)
                log(
                    f"lab {topo.name}: started {', '.join(h.name for h in to_start)} ({accel.upper()}); "
                    f"waiting for ssh (TCG boots take 1-5 minutes)"
                )
                self.wait_ssh(to_start, t0)
            except (LabError, KeyboardInterrupt):
                if fresh:
                    log("up failed: tearing down what this run started")
                    self.down(quiet=True)
                raise
        self.write_inventory()
        self.write_ssh_config()
        log(f"lab {topo.name}: up. Inventory: {os.path.relpath(self.inventory, REPO)}; ssh: tools/lab/labctl ssh HOST")
        return 0

    def kill(self, name):
        """SIGKILL one VM's qemu: a crash with no clean shutdown (for failover drills)."""
        host = self.topo.host(name)
        pid = self.running_pid(host)
        if not pid:
            log(f"{name}: not running")
            return 0
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10)
        log(f"{name}: killed (pid {pid}); `labctl up` boots it again from its disk")
        return 0

    def down(self, quiet=False):
        pids = {h.name: self.running_pid(h) for h in self.topo.hosts}
        for pid in pids.values():
            if pid:
                os.kill(pid, signal.SIGTERM)
        for pid in pids.values():
            if pid and not _wait_gone(pid, 10):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        for where, tap in self.taps():
            subprocess.run(["ip", *where, "link", "del", tap], stderr=subprocess.DEVNULL, check=False)
        if self.netns_exists():
            run(["ip", "netns", "del", self.topo.netns])
        if os.path.isdir(self.state):
            shutil.rmtree(self.state)
        left = self.leftovers()
        if left:
            raise LabError(f"down left these behind: {left}")
        if not quiet:
            log(f"lab {self.topo.name}: down ({sum(1 for p in pids.values() if p)} VMs stopped)")
        return 0

    def leftovers(self):
        left = [f"qemu {h.name} pid {pid}" for h in self.topo.hosts if (pid := _find_qemu(self.marker(h)))]
        left += [f"tap {tap}" for _, tap in self.taps()]
        if self.netns_exists():
            left.append(f"netns {self.topo.netns}")
        return left

    def status(self):
        hosts = []
        for h in self.topo.hosts:
            pid = self.running_pid(h)
            hosts.append(
                {
                    "name": h.name,
                    "ip": h.ip,
                    "groups": h.groups,
                    "ssh_port": h.ssh_port,
                    "pid": pid,
                    "running": bool(pid),
                    "ssh": bool(pid) and os.path.exists(self.key()) and self.ssh_ok(h),
                }
            )
        n_up = sum(1 for h in hosts if h["running"])
        state = (
            "up"
            if n_up == len(hosts) and all(h["ssh"] for h in hosts)
            else ("down" if not n_up and not self.leftovers() else "partial")
        )
        return {
            "lab": self.topo.name,
            "state": state,
            "netns": self.netns_exists(),
            "inventory": os.path.relpath(self.inventory, REPO),
            "hosts": hosts,
            "leftovers": self.leftovers(),
        }

    # ----------------------------------------------------------- inventory
    def write_inventory(self):
        topo = self.topo
        all_vars = {
            "ansible_host": "127.0.0.1",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": self.key(),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "lab_name": topo.name,
            "lab_subnet": str(topo.subnet),
            **topo.vars,
        }
        hosts = {h.name: {"ansible_port": h.ssh_port, "cluster_ip": h.ip, **h.vars} for h in topo.hosts}
        children = {}
        for h in topo.hosts:
            for g in h.groups:
                children.setdefault(g, {"hosts": {}})["hosts"][h.name] = None
        inv = {"all": {"vars": all_vars, "hosts": hosts, "children": children}}
        text = (
            f"# Written by tools/lab/labctl from {os.path.relpath(os.path.abspath(topo.path), REPO)}.\n"
            "# Do not edit: edit the topology and run `make lab-up`.\n---\n"
            + yaml.safe_dump(inv, sort_keys=False, default_flow_style=False).replace(": null\n", ":\n")
        )
        os.makedirs(os.path.dirname(self.inventory), exist_ok=True)
        old = open(self.inventory, encoding="utf-8").read() if os.path.exists(self.inventory) else None
        if old != text:
            with open(self.inventory + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(self.inventory + ".tmp", self.inventory)

    def write_ssh_config(self):
        lines = []
        for h in self.topo.hosts:
            lines += [
                f"Host {h.name}",
                "  HostName 127.0.0.1",
                f"  Port {h.ssh_port}",
                "  User root",
                f"  IdentityFile {self.key()}",
                "  StrictHostKeyChecking no",
                "  UserKnownHostsFile /dev/null",
                "  LogLevel ERROR",
                "",
            ]
        with open(os.path.join(self.state, "ssh_config"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines))


def _mem_available_mb():
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def _port_busy(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _backing_file(overlay):
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", overlay], capture_output=True, text=True, check=False
    ).stdout
    try:
        return json.loads(out).get("backing-filename")
    except ValueError:
        return None


def _wait_gone(pid, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def _find_qemu(marker):
    """A qemu process whose -name is marker, found by scanning /proc (not by pid file)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_alive(int(entry), f"-name {marker} "):
            return int(entry)
    return None
