"""Topology files: what the lab boots, validated before anything starts."""

import ipaddress
import os
import re
from dataclasses import dataclass, field

import yaml

from . import LabError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,6}$")
GROUP_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
MIN_MEMORY_MB = 256
TOP_KEYS = {"name", "subnet", "ssh_port_base", "memory", "accel", "inventory", "vars", "hosts"}
HOST_KEYS = {"name", "groups", "ip", "memory", "vars"}


@dataclass
class Host:
    name: str
    ip: str
    groups: list
    memory: int
    ssh_port: int
    vars: dict = field(default_factory=dict)

    @property
    def octet(self):
        return int(self.ip.rsplit(".", 1)[1])


@dataclass
class Topology:
    name: str
    subnet: ipaddress.IPv4Network
    accel: str
    inventory: str
    vars: dict
    hosts: list
    path: str = ""

    @property
    def netns(self):
        return f"cosyvoice-lab-{self.name}"

    def tap(self, host):
        return f"cvl{self.name}{host.octet}"

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"{self.path}: no host named {name!r} (hosts: {', '.join(h.name for h in self.hosts)})")


def _fail(path, msg):
    raise LabError(f"topology {path}: {msg}")


def _int(path, where, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        _fail(path, f"{where} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def parse(data, path="<topology>"):
    """Validate a topology mapping and return a Topology. Raises LabError."""
    if not isinstance(data, dict):
        _fail(path, "must be a mapping with keys name, subnet and hosts")
    unknown = set(data) - TOP_KEYS
    if unknown:
        _fail(path, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        _fail(path, f"name must match {LAB_NAME_RE.pattern} (it names taps and the namespace), got {name!r}")
    try:
        subnet = ipaddress.IPv4Network(str(data.get("subnet")), strict=True)
    except ValueError as exc:
        _fail(path, f"subnet must be an IPv4 network such as 192.168.50.0/24: {exc}")
    if not subnet.is_private or subnet.prefixlen < 16 or subnet.prefixlen > 29:
        _fail(path, f"subnet {subnet} must be a private network between /16 and /29")
    if subnet.overlaps(ipaddress.IPv4Network("10.0.2.0/24")):
        _fail(path, f"subnet {subnet} overlaps 10.0.2.0/24, which QEMU's management network uses")
    port_base = _int(path, "ssh_port_base", data.get("ssh_port_base", 2200), 1024, 65535 - 255)
    memory = _int(path, "memory", data.get("memory", 512), MIN_MEMORY_MB, 65536)
    accel = data.get("accel", "auto")
    if accel not in ("auto", "tcg", "kvm"):
        _fail(path, f"accel must be auto, tcg or kvm, got {accel!r}")
    inventory = data.get("inventory", f"inventories/{name}/hosts.yml")
    if not isinstance(inventory, str) or os.path.isabs(inventory) or ".." in inventory.split("/"):
        _fail(path, f"inventory must be a path inside the repository, got {inventory!r}")
    top_vars = data.get("vars", {}) or {}
    if not isinstance(top_vars, dict):
        _fail(path, "vars must be a mapping")
    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, list) or not raw_hosts:
        _fail(path, "hosts must be a non-empty list")
    hosts, names, ips = [], {}, {}
    for i, raw in enumerate(raw_hosts):
        where = f"hosts[{i}]"
        if not isinstance(raw, dict):
            _fail(path, f"{where} must be a mapping")
        unknown = set(raw) - HOST_KEYS
        if unknown:
            _fail(path, f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(HOST_KEYS)}")
        hname = raw.get("name")
        if not isinstance(hname, str) or not NAME_RE.match(hname):
            _fail(path, f"{where}: name must match {NAME_RE.pattern}, got {hname!r}")
        if hname in names:
            _fail(path, f"duplicate host name {hname!r} (hosts[{names[hname]}] and {where})")
        names[hname] = i
        try:
            ip = ipaddress.IPv4Address(str(raw.get("ip")))
        except ValueError:
            _fail(path, f"host {hname}: ip must be an IPv4 address, got {raw.get('ip')!r}")
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            _fail(
                path,
                f"host {hname}: address {ip} is outside the lab subnet {subnet} (or is its network/broadcast address)",
            )
        if str(ip) in ips:
            _fail(path, f"duplicate address {ip}: hosts {ips[str(ip)]} and {hname}")
        ips[str(ip)] = hname
        groups = raw.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) and GROUP_RE.match(g) for g in groups):
            _fail(path, f"host {hname}: groups must be a list of names matching {GROUP_RE.pattern}")
        if any(g in ("all", "ungrouped") for g in groups):
            _fail(path, f"host {hname}: 'all' and 'ungrouped' are Ansible's own groups")
        hmem = _int(path, f"host {hname}: memory", raw.get("memory", memory), MIN_MEMORY_MB, 65536)
        hvars = raw.get("vars", {}) or {}
        if not isinstance(hvars, dict):
            _fail(path, f"host {hname}: vars must be a mapping")
        hosts.append(Host(hname, str(ip), list(groups), hmem, port_base + int(ip) % 256, hvars))
    ports = {}
    for h in hosts:
        if h.ssh_port in ports:
            _fail(
                path,
                f"hosts {ports[h.ssh_port]} and {h.name} map to the same ssh port {h.ssh_port} "
                "(ssh port = ssh_port_base + last octet)",
            )
        ports[h.ssh_port] = h.name
    vip_like = [v for k, v in top_vars.items() if k.endswith("_vip")]
    for v in vip_like:
        if str(v) in ips:
            _fail(path, f"vars: address {v} is also host {ips[str(v)]}'s address")
    return Topology(name, subnet, accel, inventory, top_vars, hosts, path)


def load(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise LabError(f"topology file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise LabError(f"topology {path} is not valid YAML: {exc}") from None
    return parse(data, path)
