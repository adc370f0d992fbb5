# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure IPVS logic for the cosyvoice.cluster ipvs_* modules.

Everything here is free of side effects so it can be unit-tested against recorded ipvsadm output:

* parsers for ``ipvsadm -S -n`` (save format, the authoritative configuration), ``ipvsadm -L -n`` and its
  ``--stats``/``--rate``/``--thresholds``/``--persistent-conn`` variants, and ``ipvsadm -L --timeout``;
* builders that turn module parameters into a desired :class:`Service`/:class:`Destination` (validated);
* planners that compare the current table with the desired state and return a list of :class:`Operation`;
* renderers that turn an operation into an ipvsadm argument list or an ``ipvsadm -R`` stdin line;
* a simulator (:func:`apply_operations`) used for check mode, diffs and post-apply verification;
* the bounded drain wait loop, with the clock, the sleep and the table reader injected.

Runs on the managed node: Python 3.8 or later, standard library only.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
import time
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------------------------
# Constants (ipvsadm 1.31 / Linux IPVS)
# ---------------------------------------------------------------------------------------------------------------------

PROTOCOLS = ("tcp", "udp", "sctp")
FAMILIES = ("ipv4", "ipv6")
# Schedulers that ipvsadm 1.31 and Linux know of. Whether a given kernel has the ip_vs_<name> module is only known
# when ipvsadm tries to use it; that failure is translated by explain_failure().
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
SCHEDULER_FLAGS = ("sh-fallback", "sh-port", "mh-fallback", "mh-port", "flag-1", "flag-2", "flag-3")
FORWARD_METHODS = ("dr", "nat", "tun")
TUNNEL_TYPES = ("ipip", "gue", "gre")
TUNNEL_CHECKSUMS = ("nocsum", "csum", "remcsum")
PERSISTENCE_ENGINES = ("sip",)

DEFAULT_SCHEDULER = "wlc"
DEFAULT_WEIGHT = 1
DEFAULT_FORWARD = "dr"
DEFAULT_PERSISTENCE_TIMEOUT = 300  # what `-p` without a value means
MAX_PERSISTENCE_TIMEOUT = 86400 * 31  # ipvsadm MAX_TIMEOUT
MAX_WEIGHT = 65535
MAX_THRESHOLD = 2**31 - 1
MAX_FWMARK = 2**32 - 1
DEFAULT_NETMASK = {"ipv4": "255.255.255.255", "ipv6": "128"}

# ipvsadm -R stops on option errors and reports only the last line's kernel result in its exit status,
# so the whole batch is verified by reading the table back (see the glue in ipvsadm_cli.py).
ADD_SERVICE = "add-service"
EDIT_SERVICE = "edit-service"
DELETE_SERVICE = "delete-service"
ADD_SERVER = "add-server"
EDIT_SERVER = "edit-server"
DELETE_SERVER = "delete-server"
SET_TIMEOUT = "set-timeout"
ACTION_FLAG = {
    ADD_SERVICE: "-A",
    EDIT_SERVICE: "-E",
    DELETE_SERVICE: "-D",
    ADD_SERVER: "-a",
    EDIT_SERVER: "-e",
    DELETE_SERVER: "-d",
    SET_TIMEOUT: "--set",
}
# Order of a batch: create before removing, so that a service whose destinations are all replaced never passes
# through a state with no destination; edits of services before destinations; deletes of destinations before
# services (a deleted service takes its destinations with it, they are never listed separately).
ACTION_ORDER = (SET_TIMEOUT, ADD_SERVICE, EDIT_SERVICE, ADD_SERVER, EDIT_SERVER, DELETE_SERVER, DELETE_SERVICE)

_PROTO_OPTION = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
_OPTION_PROTO = {
    "-t": "tcp",
    "--tcp-service": "tcp",
    "-u": "udp",
    "--udp-service": "udp",
    "--sctp-service": "sctp",
}
_FORWARD_OPTION = {"dr": "-g", "nat": "-m", "tun": "-i"}
_OPTION_FORWARD = {
    "-g": "dr",
    "--gatewaying": "dr",
    "-m": "nat",
    "--masquerading": "nat",
    "-i": "tun",
    "--ipip": "tun",
}
_LIST_PROTOCOL = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "FWM": "fwmark"}
_PROTOCOL_LABEL = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "fwmark": "FWM"}
# "Local" is what old kernels showed for a destination that is a local address (it is saved as -g).
_LIST_FORWARD = {"Route": "dr", "Masq": "nat", "Tunnel": "tun", "Local": "dr"}
_CHECKSUM_OPTION = {"nocsum": "--tun-nocsum", "csum": "--tun-csum", "remcsum": "--tun-remcsum"}
_OPTION_CHECKSUM = {v: k for k, v in _CHECKSUM_OPTION.items()}
_TUNINFO_CHECKSUM = {"-c": "nocsum", "+c": "csum", "r+c": "remcsum"}

# Scheduler flags are three bits in the service flags; ipvsadm names them after the scheduler.
_FLAG_BIT = {
    "flag-1": 1,
    "flag-2": 2,
    "flag-3": 3,
    "sh-fallback": 1,
    "sh-port": 2,
    "mh-fallback": 1,
    "mh-port": 2,
}
_FLAG_NAMES = {
    "sh": {1: "sh-fallback", 2: "sh-port", 3: "flag-3"},
    "mh": {1: "mh-fallback", 2: "mh-port", 3: "flag-3"},
}
_GENERIC_FLAG_NAMES = {1: "flag-1", 2: "flag-2", 3: "flag-3"}

STAT_FIELDS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
RATE_FIELDS = ("cps", "inpps", "outpps", "inbps", "outbps")
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

IPVS_UNAVAILABLE = (
    "IPVS is not available on this host: ipvsadm says {detail!r}. Load the kernel module with `modprobe ip_vs` "
    "(the kernel needs CONFIG_IP_VS; in a container, IPVS must be loaded in the host kernel and the container "
    "needs CAP_NET_ADMIN)."
)


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


class IpvsError(Exception):
    """Base class of the errors raised here; str() is a message fit for fail_json."""


class IpvsValueError(IpvsError):
    """A desired state that ipvsadm would refuse (or silently change): invalid address, port, combination."""


class IpvsParseError(IpvsError):
    """ipvsadm printed something this parser does not understand."""

    def __init__(self, source, lineno, line, reason):
        self.source = source
        self.lineno = lineno
        self.line = line
        self.reason = reason
        super().__init__(f"cannot parse `{source}` output, line {lineno}: {reason}: {line!r}")


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Destination:
    """A real server of a service. Fields left None were not in the output that was parsed."""

    address: str
    port: int
    forward: str | None = None
    weight: int | None = None
    upper_threshold: int | None = None
    lower_threshold: int | None = None
    tunnel_type: str | None = None
    tunnel_port: int | None = None
    tunnel_checksum: str | None = None
    active_connections: int | None = None
    inactive_connections: int | None = None
    persistent_connections: int | None = None
    stats: dict | None = None
    rates: dict | None = None

    @property
    def family(self):
        return address_family(self.address)

    @property
    def key(self):
        return (self.address, self.port)

    @property
    def endpoint(self):
        return format_endpoint(self.address, self.port)


@dataclass
class Service:
    """A virtual service: protocol address:port, or a firewall mark (protocol ``fwmark``)."""

    protocol: str
    address: str | None = None
    port: int | None = None
    fwmark: int | None = None
    family: str = "ipv4"
    scheduler: str | None = None
    flags: tuple = ()
    persistence_timeout: int | None = None  # None: not persistent
    netmask: str | None = None  # persistence granularity: dotted quad (IPv4) or prefix length (IPv6)
    one_packet: bool = False
    persistence_engine: str | None = None
    destinations: dict = field(default_factory=dict)
    stats: dict | None = None
    rates: dict | None = None
    purge_destinations: bool | None = None  # ipvs_table only: None follows the module's purge

    @property
    def key(self):
        if self.protocol == "fwmark":
            return ("fwmark", self.fwmark, self.family)
        return (self.protocol, self.address, self.port)

    @property
    def persistent(self):
        return self.persistence_timeout is not None

    @property
    def effective_netmask(self):
        return self.netmask or DEFAULT_NETMASK[self.family]

    def identity(self):
        """A copy that carries only what identifies the service."""
        return Service(
            protocol=self.protocol, address=self.address, port=self.port, fwmark=self.fwmark, family=self.family
        )


@dataclass
class Table:
    services: dict = field(default_factory=dict)
    timeouts: dict | None = None
    version: str | None = None
    size: int | None = None
    warnings: list = field(default_factory=list)


@dataclass
class Operation:
    """One ipvsadm command. ``service`` carries the desired configuration for add/edit."""

    action: str
    service: Service | None = None
    destination: Destination | None = None
    timeouts: dict | None = None
    changes: tuple = ()

    def argv(self):
        return render_argv(self)

    def line(self):
        return " ".join(self.argv())


# ---------------------------------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------------------------------


def address_family(address):
    return "ipv6" if ":" in address else "ipv4"


def normalize_address(value, what="address"):
    """Return (canonical address, family) for an IP literal; raise IpvsValueError otherwise."""
    text = str(value).strip() if value is not None else ""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise IpvsValueError(
            f"invalid {what} {value!r}: not an IPv4 or IPv6 address (host names are not accepted: "
            "the table is read back numerically, so a name could never compare equal)"
        ) from None
    if getattr(addr, "scope_id", None):
        raise IpvsValueError(f"invalid {what} {value!r}: IPVS does not take scoped (link-local) addresses")
    return addr.compressed, ("ipv6" if addr.version == 6 else "ipv4")


def check_port(value, what="port"):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise IpvsValueError(f"invalid {what} {value!r}: not an integer") from None
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise IpvsValueError(f"invalid {what} {value!r}: must be 0..65535")
    return port


def format_endpoint(address, port):
    if address_family(address) == "ipv6":
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def parse_endpoint(text):
    """Parse ``a.b.c.d:port`` or ``[v6]:port`` as ipvsadm -n prints it. Raises ValueError."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"bad IPv6 endpoint {text!r}")
        host, port = text[1:close], text[close + 2 :]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"no port in {text!r}")
    if not port.isdigit():
        raise ValueError(f"bad port in {text!r}")
    address, family = normalize_address(host)
    return address, check_port(int(port)), family


def canonical_netmask(value, family, what="persistence_netmask"):
    """Dotted quad for IPv4 (a prefix length is converted), prefix length text for IPv6."""
    text = str(value).strip().lstrip("/")
    if family == "ipv6":
        if not text.isdigit() or not 1 <= int(text) <= 128:
            raise IpvsValueError(f"invalid {what} {value!r}: an IPv6 persistence netmask is a prefix length 1..128")
        return str(int(text))
    try:
        if text.isdigit():
            if not 0 <= int(text) <= 32:
                raise ValueError
            return str(ipaddress.IPv4Network(f"0.0.0.0/{int(text)}").netmask)
        return str(ipaddress.IPv4Network(f"0.0.0.0/{text}").netmask)
    except ValueError:
        raise IpvsValueError(
            f"invalid {what} {value!r}: give a contiguous IPv4 netmask (255.255.255.0) or a prefix length (24)"
        ) from None


# ---------------------------------------------------------------------------------------------------------------------
# Scheduler flags
# ---------------------------------------------------------------------------------------------------------------------


def flag_bits(flags):
    return frozenset(_FLAG_BIT[f] for f in flags if f in _FLAG_BIT)


def flag_names(scheduler, bits):
    """The names ipvsadm prints for these bits under this scheduler, in ipvsadm's order."""
    names = _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    return tuple(names[b] for b in sorted(bits))


def check_scheduler_flags(scheduler, flags, where=""):
    for name in flags:
        if name not in _FLAG_BIT:
            raise IpvsValueError(f"{where}invalid scheduler flag {name!r}; known flags: {', '.join(SCHEDULER_FLAGS)}")
        prefix = name.split("-", 1)[0]
        if prefix in ("sh", "mh") and scheduler != prefix:
            raise IpvsValueError(
                f"{where}scheduler flag {name!r} needs scheduler {prefix!r}, not {scheduler!r} "
                "(ipvsadm: incompatible scheduler flag)"
            )
    return flag_names(scheduler, flag_bits(flags))


# ---------------------------------------------------------------------------------------------------------------------
# Descriptions (messages, keys)
# ---------------------------------------------------------------------------------------------------------------------


def describe_service(service):
    if service.protocol == "fwmark":
        return f"FWM {service.fwmark}" + (" IPv6" if service.family == "ipv6" else "")
    return f"{_PROTOCOL_LABEL[service.protocol]} {format_endpoint(service.address, service.port)}"


def describe_destination(service, destination):
    return f"{destination.endpoint} of {describe_service(service)}"


def _service_sort_key(service):
    if service.protocol == "fwmark":
        return (1, service.family, service.fwmark, 0, 0)
    addr = ipaddress.ip_address(service.address)
    return (0, service.family, service.protocol, int(addr), service.port)


def _destination_sort_key(destination):
    addr = ipaddress.ip_address(destination.address)
    return (addr.version, int(addr), destination.port)


# ---------------------------------------------------------------------------------------------------------------------
# Parsing: ipvsadm -S -n (save format)
# ---------------------------------------------------------------------------------------------------------------------

_ADD_SERVICE_OPTIONS = ("-A", "--add-service")
_ADD_SERVER_OPTIONS = ("-a", "--add-server")
# Options that take a value; anything else starting with '-' and not known below is a flag.
_VALUE_OPTIONS = {
    "-s": "scheduler",
    "--scheduler": "scheduler",
    "-M": "netmask",
    "--netmask": "netmask",
    "-b": "flags",
    "--sched-flags": "flags",
    "--pe": "pe",
    "-r": "server",
    "--real-server": "server",
    "-w": "weight",
    "--weight": "weight",
    "-x": "upper",
    "--u-threshold": "upper",
    "-y": "lower",
    "--l-threshold": "lower",
    "--tun-type": "tun_type",
    "--tun-port": "tun_port",
}


@dataclass
class _Line:
    """Where a parser is: which command's output, which line. Builds the IpvsParseError."""

    source: str
    lineno: int
    text: str

    def error(self, reason):
        return IpvsParseError(self.source, self.lineno, self.text, reason)

    def int(self, token, what, lo=0, hi=None):
        if not token.isdigit():
            raise self.error(f"{what} is not a number: {token!r}")
        value = int(token)
        if value < lo or (hi is not None and value > hi):
            raise self.error(f"{what} {value} out of range")
        return value


def _parse_rule_tokens(tokens, where, warnings):
    """Parse one save-format rule into a dict of raw values."""
    rule = {"command": tokens[0], "protocol": None, "endpoint": None, "fwmark": None, "ipv6": False}
    rule.update({"persistent": None, "ops": False, "forward": None, "checksum": None})
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in _OPTION_PROTO or tok in ("-f", "--fwmark-service"):
            if i + 1 >= len(tokens):
                raise where.error(f"option {tok} needs a value")
            if rule["protocol"] is not None:
                raise where.error("more than one virtual service")
            if tok in _OPTION_PROTO:
                rule["protocol"] = _OPTION_PROTO[tok]
                rule["endpoint"] = tokens[i + 1]
            else:
                rule["protocol"] = "fwmark"
                rule["fwmark"] = where.int(tokens[i + 1], "fwmark", 1, MAX_FWMARK)
            i += 2
        elif tok in ("-6", "--ipv6"):
            rule["ipv6"] = True
            i += 1
        elif tok in ("-p", "--persistent"):
            # optional value, as in ipvsadm (POPT_ARGFLAG_OPTIONAL)
            if i + 1 < len(tokens) and tokens[i + 1].isdigit():
                rule["persistent"] = where.int(tokens[i + 1], "persistence timeout", 1)
                i += 2
            else:
                rule["persistent"] = DEFAULT_PERSISTENCE_TIMEOUT
                i += 1
        elif tok in ("-o", "--ops"):
            rule["ops"] = True
            i += 1
        elif tok in _OPTION_FORWARD:
            rule["forward"] = _OPTION_FORWARD[tok]
            i += 1
        elif tok in _OPTION_CHECKSUM:
            rule["checksum"] = _OPTION_CHECKSUM[tok]
            i += 1
        elif tok in _VALUE_OPTIONS:
            if i + 1 >= len(tokens):
                raise where.error(f"option {tok} needs a value")
            rule[_VALUE_OPTIONS[tok]] = tokens[i + 1]
            i += 2
        else:
            # Unknown token: be liberal (a newer ipvsadm may print more), keep going, but say so.
            warnings.append(f"{where.source} line {where.lineno}: ignored unknown token {tok!r} in {where.text!r}")
            i += 1
    if rule["protocol"] is None:
        raise where.error("no virtual service (-t, -u, --sctp-service or -f)")
    return rule


def _endpoint(text, where, what):
    try:
        return parse_endpoint(text)
    except (ValueError, IpvsValueError) as exc:
        raise where.error(f"bad {what} address: {exc}") from None


def _service_from_rule(rule, where):
    if rule["protocol"] == "fwmark":
        return Service(protocol="fwmark", fwmark=rule["fwmark"], family="ipv6" if rule["ipv6"] else "ipv4")
    address, port, family = _endpoint(rule["endpoint"], where, "virtual service")
    return Service(protocol=rule["protocol"], address=address, port=port, family=family)


def _saved_service(service, rule, where):
    scheduler = rule.get("scheduler") or DEFAULT_SCHEDULER
    service.scheduler = scheduler
    if rule.get("flags"):
        names = [f for f in rule["flags"].split(",") if f]
        unknown = [f for f in names if f not in _FLAG_BIT]
        if unknown:
            raise where.error(f"unknown scheduler flag(s) {unknown}")
        service.flags = flag_names(scheduler, flag_bits(names))
    service.persistence_timeout = rule["persistent"]
    if rule["persistent"] is not None:
        mask = rule.get("netmask") or DEFAULT_NETMASK[service.family]
        service.netmask = str(int(mask)) if service.family == "ipv6" and mask.isdigit() else mask
    service.one_packet = rule["ops"]
    service.persistence_engine = rule.get("pe")
    return service


def _saved_destination(rule, where):
    if not rule.get("server"):
        raise where.error("destination without -r")
    address, port, _family = _endpoint(rule["server"], where, "real server")
    dest = Destination(address=address, port=port)
    dest.forward = rule["forward"] or DEFAULT_FORWARD
    dest.weight = where.int(rule.get("weight") or "1", "weight", 0, MAX_WEIGHT)
    if rule.get("upper") is not None:  # not printed by ipvsadm 1.31, accepted if a later one does
        dest.upper_threshold = where.int(rule["upper"], "upper threshold")
    if rule.get("lower") is not None:
        dest.lower_threshold = where.int(rule["lower"], "lower threshold")
    if dest.forward == "tun":
        dest.tunnel_type = rule.get("tun_type") or "ipip"
        if rule.get("tun_port") is not None:
            dest.tunnel_port = where.int(rule["tun_port"], "tunnel port", 0, 65535)
        dest.tunnel_checksum = rule["checksum"]
    return dest


def parse_save(text):
    """Parse ``ipvsadm -S -n`` output into a Table (configuration only: no thresholds, no counters)."""
    table = Table()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()  # ipvsadm -R ignores everything after '#'
        if not line:
            continue
        where = _Line("ipvsadm -S -n", lineno, raw)
        tokens = line.split()
        if tokens[0] not in _ADD_SERVICE_OPTIONS + _ADD_SERVER_OPTIONS:
            raise where.error("expected a rule starting with -A or -a")
        rule = _parse_rule_tokens(tokens, where, table.warnings)
        ident = _service_from_rule(rule, where)
        if tokens[0] in _ADD_SERVICE_OPTIONS:
            if ident.key in table.services:
                table.warnings.append(f"ipvsadm -S -n line {lineno}: service {describe_service(ident)} listed twice")
            table.services[ident.key] = _saved_service(ident, rule, where)
            continue
        # -a: a destination of a service listed before it
        service = table.services.get(ident.key)
        if service is None:
            raise where.error(f"destination of {describe_service(ident)} before its service")
        dest = _saved_destination(rule, where)
        service.destinations[dest.key] = dest
    return table


# ---------------------------------------------------------------------------------------------------------------------
# Parsing: ipvsadm -L -n [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--exact]
# ---------------------------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^IP Virtual Server version (\S+) \(size=(\d+)\)")
_NUMBER_RE = re.compile(r"^(\d+)([KMGT]?)$")
_TIMEOUT_RE = re.compile(r"Timeout \(tcp tcpfin udp\):\s*(\d+)\s+(\d+)\s+(\d+)")


def _listing_kind(tokens):
    if "Conns" in tokens:
        return "stats"
    if "CPS" in tokens:
        return "rate"
    if "Uthreshold" in tokens:
        return "thresholds"
    if "PersistConn" in tokens:
        return "persistent-conn"
    if "Scheduler" in tokens:
        return "list"
    return None


def _parse_counters(tokens, names, where):
    """Counters as ipvsadm prints them: exact with --exact, else rounded with a K/M/G/T suffix past 10^8."""
    if len(tokens) != len(names):
        raise where.error(f"expected {len(names)} counters, got {len(tokens)}")
    values, exact = {}, True
    for i, name in enumerate(names):
        match = _NUMBER_RE.match(tokens[i])
        if not match:
            raise where.error(f"expected a number, got {tokens[i]!r}")
        values[name] = int(match.group(1)) * _SUFFIX[match.group(2)]
        exact = exact and not match.group(2)
    values["exact"] = exact
    return values


def _parse_listing_service(tokens, kind, where, warnings):
    protocol = _LIST_PROTOCOL[tokens[0]]
    if len(tokens) < 2:
        raise where.error("service line without address")
    if protocol == "fwmark":
        fwmark = where.int(tokens[1], "fwmark", 1, MAX_FWMARK)
        i = 2
        family = "ipv4"
        if i < len(tokens) and tokens[i] == "IPv6":
            family = "ipv6"
            i += 1
        service = Service(protocol="fwmark", fwmark=fwmark, family=family)
    else:
        address, port, family = _endpoint(tokens[1], where, "virtual service")
        service = Service(protocol=protocol, address=address, port=port, family=family)
        i = 2
    rest = tokens[i:]
    if kind == "stats":
        service.stats = _parse_counters(rest, STAT_FIELDS, where)
        return service
    if kind == "rate":
        service.rates = _parse_counters(rest, RATE_FIELDS, where)
        return service
    # list, thresholds, persistent-conn: "<sched> [(flags)] [persistent N [mask M] [pe NAME]] [ops]"
    if not rest:
        raise where.error("service line without scheduler")
    service.scheduler = rest[0]
    j = 1
    while j < len(rest):
        tok = rest[j]
        if tok.startswith("(") and tok.endswith(")"):
            names = [f for f in tok[1:-1].split(",") if f]
            service.flags = flag_names(service.scheduler, flag_bits(names))
            j += 1
        elif tok == "persistent" and j + 1 < len(rest):
            service.persistence_timeout = where.int(rest[j + 1], "persistence timeout")
            service.netmask = DEFAULT_NETMASK[service.family]
            j += 2
        elif tok == "mask" and j + 1 < len(rest):
            service.netmask = rest[j + 1]
            j += 2
        elif tok == "pe" and j + 1 < len(rest):
            service.persistence_engine = rest[j + 1]
            j += 2
        elif tok == "ops":
            service.one_packet = True
            j += 1
        else:
            warnings.append(f"{where.source} line {where.lineno}: ignored unknown token {tok!r}")
            j += 1
    return service


def _parse_listing_destination(tokens, kind, tun_info, where):
    address, port, _family = _endpoint(tokens[1], where, "real server")
    dest = Destination(address=address, port=port)
    rest = tokens[2:]
    if kind == "stats":
        dest.stats = _parse_counters(rest, STAT_FIELDS, where)
    elif kind == "rate":
        dest.rates = _parse_counters(rest, RATE_FIELDS, where)
    elif kind == "thresholds":
        if len(rest) != 4:
            raise where.error("expected Uthreshold Lthreshold ActiveConn InActConn")
        values = [where.int(t, "counter") for t in rest]
        dest.upper_threshold, dest.lower_threshold, dest.active_connections, dest.inactive_connections = values
    elif kind == "persistent-conn":
        if len(rest) != 4:
            raise where.error("expected Weight PersistConn ActiveConn InActConn")
        values = [where.int(t, "counter") for t in rest]
        dest.weight, dest.persistent_connections, dest.active_connections, dest.inactive_connections = values
    else:
        expected = 5 if tun_info else 4
        if len(rest) != expected or rest[0] not in _LIST_FORWARD:
            raise where.error("expected Forward [TunnelInfo] Weight ActiveConn InActConn")
        dest.forward = _LIST_FORWARD[rest[0]]
        if tun_info:
            _apply_tun_info(dest, rest[1])
            rest = [rest[0], *rest[2:]]
        values = [where.int(t, "counter") for t in rest[1:]]
        dest.weight, dest.active_connections, dest.inactive_connections = values
    return dest


def _apply_tun_info(dest, info):
    if info == "n/a":
        return
    parts = info.split(":")
    dest.tunnel_type = parts[0]
    if len(parts) == 3:
        dest.tunnel_port = int(parts[1]) if parts[1].isdigit() else None
        dest.tunnel_checksum = _TUNINFO_CHECKSUM.get(parts[2])


def parse_listing(text, source="ipvsadm -L -n"):
    """Parse any ``ipvsadm -L -n`` variant into a Table holding what that variant shows."""
    table = Table()
    kind = None
    tun_info = False
    current = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        where = _Line(source, lineno, raw)
        tokens = line.split()
        match = _VERSION_RE.match(line)
        if match:
            table.version, table.size = match.group(1), int(match.group(2))
            continue
        if tokens[0] == "Prot":
            kind = _listing_kind(tokens)
            if kind is None:
                raise where.error("unknown listing header")
            continue
        if tokens[0] == "->":
            if len(tokens) >= 2 and tokens[1] == "RemoteAddress:Port":
                tun_info = "TunnelInfo" in tokens
                continue
            if current is None:
                raise where.error("destination before any service")
            if len(tokens) < 2:
                raise where.error("destination line without address")
            dest = _parse_listing_destination(tokens, kind, tun_info, where)
            current.destinations[dest.key] = dest
            continue
        if tokens[0] in _LIST_PROTOCOL:
            if kind is None:
                raise where.error("service line before the column header")
            current = _parse_listing_service(tokens, kind, where, table.warnings)
            table.services[current.key] = current
            continue
        raise where.error("unexpected line")
    return table


def parse_timeouts(text):
    """Parse ``ipvsadm -L --timeout``: ``Timeout (tcp tcpfin udp): 900 120 300``."""
    match = _TIMEOUT_RE.search(text)
    if not match:
        raise IpvsParseError("ipvsadm -L --timeout", 1, text.strip(), "expected 'Timeout (tcp tcpfin udp): N N N'")
    tcp, tcpfin, udp = (int(g) for g in match.groups())
    return {"tcp": tcp, "tcpfin": tcpfin, "udp": udp}


# ---------------------------------------------------------------------------------------------------------------------
# Building the current table from several reads
# ---------------------------------------------------------------------------------------------------------------------


def merge_listing(table, listing):
    """Copy what a listing knows (counters, thresholds, connections) onto the save-format table, in place.

    Services or destinations that appear in only one of the two reads (the table changed between the two ipvsadm
    runs) are skipped: the save-format read is the authority on what exists.
    """
    if listing.version:
        table.version, table.size = listing.version, listing.size
    table.warnings.extend(listing.warnings)
    for key, lsvc in listing.services.items():
        service = table.services.get(key)
        if service is None:
            continue
        if lsvc.stats is not None:
            service.stats = lsvc.stats
        if lsvc.rates is not None:
            service.rates = lsvc.rates
        for dkey, ldest in lsvc.destinations.items():
            dest = service.destinations.get(dkey)
            if dest is None:
                continue
            for name in (
                "upper_threshold",
                "lower_threshold",
                "active_connections",
                "inactive_connections",
                "persistent_connections",
                "stats",
                "rates",
            ):
                value = getattr(ldest, name)
                if value is not None:
                    setattr(dest, name, value)
    return table


def build_table(save_text, listings=(), timeout_text=None):
    """Save format + any number of listing outputs + optional timeouts -> one Table."""
    table = parse_save(save_text)
    for source, text in listings:
        merge_listing(table, parse_listing(text, source))
    if timeout_text is not None:
        table.timeouts = parse_timeouts(timeout_text)
    return table


# ---------------------------------------------------------------------------------------------------------------------
# Desired state from module parameters
# ---------------------------------------------------------------------------------------------------------------------


def _where(where):
    return f"{where}: " if where else ""


def _prefixed(prefix, check, *args):
    """Run a check; its error message gets the location prefix (``services[2].destinations[0]: ``)."""
    try:
        return check(*args)
    except IpvsValueError as exc:
        raise IpvsValueError(f"{prefix}{exc}") from None


def service_identity_from_params(params, where=""):
    """The service identified by protocol/address/port or fwmark/family."""
    w = _where(where)
    address, fwmark = params.get("address"), params.get("fwmark")
    if (address is None) == (fwmark is None):
        raise IpvsValueError(f"{w}give either address (with protocol and port) or fwmark")
    family_param = params.get("family")
    if fwmark is not None:
        if isinstance(fwmark, bool) or not 1 <= int(fwmark) <= MAX_FWMARK:
            raise IpvsValueError(f"{w}invalid fwmark {fwmark!r}: must be 1..{MAX_FWMARK}")
        if params.get("port") is not None:
            raise IpvsValueError(f"{w}port does not apply to a fwmark service")
        return Service(protocol="fwmark", fwmark=int(fwmark), family=family_param or "ipv4")
    address, family = _prefixed(w, normalize_address, address, "address")
    if family_param and family_param != family:
        raise IpvsValueError(f"{w}family {family_param} does not match address {address}")
    if params.get("port") is None:
        raise IpvsValueError(f"{w}port is required with address")
    protocol = params.get("protocol") or "tcp"
    if protocol not in PROTOCOLS:
        raise IpvsValueError(f"{w}invalid protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    port = _prefixed(w, check_port, params["port"])
    return Service(protocol=protocol, address=address, port=port, family=family)


def service_from_params(params, where=""):
    """A fully specified desired service: every option left out takes ipvsadm's default."""
    w = _where(where)
    service = service_identity_from_params(params, where)
    scheduler = params.get("scheduler") or DEFAULT_SCHEDULER
    if scheduler not in SCHEDULERS:
        raise IpvsValueError(f"{w}unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    service.scheduler = scheduler
    service.flags = check_scheduler_flags(scheduler, params.get("scheduler_flags") or (), w)
    timeout = params.get("persistence_timeout")
    if timeout:
        if isinstance(timeout, bool) or not 1 <= int(timeout) <= MAX_PERSISTENCE_TIMEOUT:
            raise IpvsValueError(
                f"{w}invalid persistence_timeout {timeout!r}: must be 1..{MAX_PERSISTENCE_TIMEOUT} (0 disables)"
            )
        service.persistence_timeout = int(timeout)
        netmask = params.get("persistence_netmask")
        service.netmask = canonical_netmask(netmask, service.family) if netmask is not None else None
        service.netmask = service.netmask or DEFAULT_NETMASK[service.family]
    elif params.get("persistence_netmask") is not None:
        raise IpvsValueError(f"{w}persistence_netmask needs persistence_timeout")
    if service.protocol != "fwmark" and service.port == 0 and not service.persistent:
        raise IpvsValueError(
            f"{w}port 0 is only allowed for a persistent service (ipvsadm: Zero port specified for "
            "non-persistent service)"
        )
    service.one_packet = bool(params.get("one_packet_scheduling"))
    if service.one_packet and service.protocol not in ("udp", "fwmark"):
        raise IpvsValueError(f"{w}one_packet_scheduling is only for UDP (or fwmark) services")
    engine = params.get("persistence_engine")
    if engine is not None and engine not in PERSISTENCE_ENGINES:
        raise IpvsValueError(f"{w}unknown persistence_engine {engine!r}")
    service.persistence_engine = engine
    return service


def destination_from_params(params, service, where="", prefix=""):
    """A fully specified desired destination of ``service``. Returns (Destination, warnings).

    ``prefix`` is the name prefix of the address/port options (``server_`` in ipvs_real_server).
    """
    w = _where(where)
    warnings = []
    aname, pname = f"{prefix}address", f"{prefix}port"
    address, family = _prefixed(w, normalize_address, params.get(aname), aname)
    forward = params.get("forward") or DEFAULT_FORWARD
    if forward not in FORWARD_METHODS:
        raise IpvsValueError(f"{w}invalid forward {forward!r}; use one of {', '.join(FORWARD_METHODS)}")
    if family != service.family and forward != "tun":
        raise IpvsValueError(
            f"{w}{aname} {address} is {family} but {describe_service(service)} is {service.family}: "
            "only tunnel (tun) forwarding may mix address families"
        )
    port = params.get(pname)
    if service.protocol == "fwmark":
        port = _prefixed(w, check_port, port, pname) if port is not None else 0
    else:
        port = _prefixed(w, check_port, port, pname) if port is not None else service.port
        if forward in ("dr", "tun") and port != service.port:
            warnings.append(
                f"{w}{pname} {port} ignored: with forward {forward} the destination port is always the service "
                f"port {service.port} (ipvsadm forces it)"
            )
            port = service.port
    dest = Destination(address=address, port=port, forward=forward)
    weight = params.get("weight")
    dest.weight = DEFAULT_WEIGHT if weight is None else int(weight)
    if not 0 <= dest.weight <= MAX_WEIGHT:
        raise IpvsValueError(f"{w}invalid weight {weight!r}: must be 0..{MAX_WEIGHT}")
    for name in ("upper_threshold", "lower_threshold"):
        value = params.get(name)
        value = 0 if value is None else int(value)
        if not 0 <= value <= MAX_THRESHOLD:
            raise IpvsValueError(f"{w}invalid {name} {value!r}: must be 0..{MAX_THRESHOLD}")
        setattr(dest, name, value)
    ttype, tport, tcsum = params.get("tunnel_type"), params.get("tunnel_port"), params.get("tunnel_checksum")
    if forward != "tun":
        if ttype is not None or tport is not None or tcsum is not None:
            raise IpvsValueError(f"{w}tunnel_type, tunnel_port and tunnel_checksum need forward: tun")
    else:
        dest.tunnel_type = ttype or "ipip"
        if dest.tunnel_type not in TUNNEL_TYPES:
            raise IpvsValueError(f"{w}invalid tunnel_type {ttype!r}")
        if dest.tunnel_type == "ipip" and (tport is not None or tcsum is not None):
            raise IpvsValueError(f"{w}tunnel_port and tunnel_checksum apply to tunnel_type gue or gre only")
        if dest.tunnel_type == "gue" and tport is None:
            raise IpvsValueError(f"{w}tunnel_type gue needs tunnel_port")
        if dest.tunnel_type == "gre" and tport is not None:
            raise IpvsValueError(f"{w}tunnel_port does not apply to tunnel_type gre")
        if tport is not None:
            dest.tunnel_port = _prefixed(w, check_port, tport, "tunnel_port")
        if tcsum is not None and tcsum not in TUNNEL_CHECKSUMS:
            raise IpvsValueError(f"{w}invalid tunnel_checksum {tcsum!r}")
        dest.tunnel_checksum = tcsum or ("nocsum" if dest.tunnel_type != "ipip" else None)
    return dest, warnings


def destination_key_from_params(params, service, prefix=""):
    """Only the key (address, port) of a destination, for absent/drained where nothing else matters.

    Without a port the key takes the service port (0 for a fwmark service), as ipvsadm does; find_destination()
    also matches a DR/TUN destination, which always carries the service port.
    """
    aname, pname = f"{prefix}address", f"{prefix}port"
    address, _family = normalize_address(params.get(aname), aname)
    port = params.get(pname)
    if port is not None:
        return (address, check_port(port, pname))
    return (address, 0 if service.protocol == "fwmark" else service.port)


def find_destination(service, key):
    """Look a destination up by key; a DR/TUN destination stored under the service port also matches."""
    if service is None:
        return None
    dest = service.destinations.get(key)
    if dest is None and service.protocol != "fwmark" and key[1] != service.port:
        candidate = service.destinations.get((key[0], service.port))
        if candidate is not None and candidate.forward in ("dr", "tun"):
            dest = candidate
    return dest


# ---------------------------------------------------------------------------------------------------------------------
# Comparison and planning
# ---------------------------------------------------------------------------------------------------------------------


def service_changes(current, desired):
    """Names of the configuration fields that differ (defaults normalised)."""
    changes = []
    if (current.scheduler or DEFAULT_SCHEDULER) != desired.scheduler:
        changes.append("scheduler")
    if flag_bits(current.flags) != flag_bits(desired.flags):
        changes.append("scheduler_flags")
    if current.persistence_timeout != desired.persistence_timeout:
        changes.append("persistence_timeout")
    if desired.persistent and current.persistent and current.effective_netmask != desired.effective_netmask:
        changes.append("persistence_netmask")
    if bool(current.one_packet) != bool(desired.one_packet):
        changes.append("one_packet_scheduling")
    if (current.persistence_engine or None) != (desired.persistence_engine or None):
        changes.append("persistence_engine")
    return changes


def destination_changes(current, desired):
    changes = []
    if (current.forward or DEFAULT_FORWARD) != desired.forward:
        changes.append("forward")
    if (DEFAULT_WEIGHT if current.weight is None else current.weight) != desired.weight:
        changes.append("weight")
    # Thresholds are None when they were not read (ipvsadm -S does not print them): then they cannot be compared.
    for name in ("upper_threshold", "lower_threshold"):
        value = getattr(current, name)
        if value is not None and value != getattr(desired, name):
            changes.append(name)
    if desired.forward == "tun":
        if (current.tunnel_type or "ipip") != desired.tunnel_type:
            changes.append("tunnel_type")
        if desired.tunnel_type != "ipip":
            if current.tunnel_port != desired.tunnel_port:
                changes.append("tunnel_port")
            if (current.tunnel_checksum or "nocsum") != (desired.tunnel_checksum or "nocsum"):
                changes.append("tunnel_checksum")
    return changes


def plan_service(table, desired, state):
    """ipvs_service: add (-A), edit in place (-E) or delete (-D) one service. Destinations are not touched."""
    current = table.services.get(desired.key)
    if state == "absent":
        return [Operation(DELETE_SERVICE, desired.identity())] if current is not None else []
    if current is None:
        return [Operation(ADD_SERVICE, _config_only(desired))]
    changes = service_changes(current, desired)
    if changes:
        return [Operation(EDIT_SERVICE, _config_only(desired), changes=tuple(changes))]
    return []


def plan_destination(table, service, desired, state, *, key=None, allow_missing_service=False):
    """ipvs_real_server: add (-a), edit (-e), drain (-e -w 0) or delete (-d) one destination.

    ``desired`` is a full Destination for ``present``; for ``absent``/``drained`` only ``key`` is used.
    """
    current_service = table.services.get(service.key)
    if current_service is None:
        if state == "present" and not allow_missing_service:
            raise IpvsValueError(
                f"virtual service {describe_service(service)} does not exist: create it first "
                "(cosyvoice.cluster.ipvs_service)"
            )
        if state == "present":
            return [Operation(ADD_SERVER, service.identity(), desired)]
        return []
    ident = current_service.identity()
    key = desired.key if desired is not None else key
    current = find_destination(current_service, key)
    if state == "present":
        if current is None:
            return [Operation(ADD_SERVER, ident, desired)]
        changes = destination_changes(current, desired)
        return [Operation(EDIT_SERVER, ident, desired, changes=tuple(changes))] if changes else []
    if current is None:
        return []
    if state == "drained":
        if current.weight == 0:
            return []
        return [Operation(EDIT_SERVER, ident, _drained(current), changes=("weight",))]
    if state == "absent":
        return [Operation(DELETE_SERVER, ident, Destination(address=current.address, port=current.port))]
    raise IpvsValueError(f"unknown state {state!r}")


def plan_graceful_removal(table, service, key):
    """absent + graceful: (drain ops, delete ops). The caller waits for connections between the two."""
    drain = plan_destination(table, service, None, "drained", key=key)
    delete = plan_destination(table, service, None, "absent", key=key)
    return drain, delete


def plan_table(table, desired_services, purge=False, timeouts=None):
    """ipvs_table: the change set that makes the table match ``desired_services``.

    Each desired Service carries its destinations and an attribute ``purge_destinations`` (None: same as ``purge``).
    With ``purge`` services that are not listed are deleted.
    """
    ops = []
    seen = set()
    for desired in desired_services:
        if desired.key in seen:
            raise IpvsValueError(f"service {describe_service(desired)} is listed twice")
        seen.add(desired.key)
        current = table.services.get(desired.key)
        if current is None:
            ops.append(Operation(ADD_SERVICE, _config_only(desired)))
            current_dests = {}
        else:
            changes = service_changes(current, desired)
            if changes:
                ops.append(Operation(EDIT_SERVICE, _config_only(desired), changes=tuple(changes)))
            current_dests = current.destinations
        ident = desired.identity()
        for dkey, dest in desired.destinations.items():
            cur = current_dests.get(dkey)
            if cur is None:
                ops.append(Operation(ADD_SERVER, ident, dest))
            else:
                changes = destination_changes(cur, dest)
                if changes:
                    ops.append(Operation(EDIT_SERVER, ident, dest, changes=tuple(changes)))
        purge_dests = desired.purge_destinations
        if purge_dests is None:
            purge_dests = purge
        if purge_dests:
            for dkey, cur in current_dests.items():
                if dkey not in desired.destinations:
                    ops.append(Operation(DELETE_SERVER, ident, Destination(address=cur.address, port=cur.port)))
    if purge:
        for key, current in table.services.items():
            if key not in seen:
                ops.append(Operation(DELETE_SERVICE, current.identity()))
    if timeouts:
        current = table.timeouts or {}
        wanted = {k: v for k, v in timeouts.items() if v is not None}
        if any(current.get(k) != v for k, v in wanted.items()):
            ops.append(Operation(SET_TIMEOUT, timeouts=wanted))
    return sort_operations(ops)


def sort_operations(ops):
    order = {action: i for i, action in enumerate(ACTION_ORDER)}
    return sorted(ops, key=lambda op: order[op.action])  # stable: keeps the desired order within an action


def _config_only(service):
    svc = copy.copy(service)
    svc.destinations = {}
    return svc


def _drained(dest):
    drained = copy.deepcopy(dest)
    drained.weight = 0
    return drained


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _service_args(service):
    if service.protocol == "fwmark":
        return ["-f", str(service.fwmark)] + (["-6"] if service.family == "ipv6" else [])
    return [_PROTO_OPTION[service.protocol], format_endpoint(service.address, service.port)]


def _service_config_args(service):
    args = ["-s", service.scheduler or DEFAULT_SCHEDULER]
    if service.persistent:
        args += ["-p", str(service.persistence_timeout)]
        if service.effective_netmask != DEFAULT_NETMASK[service.family]:
            args += ["-M", service.effective_netmask]
    if service.persistence_engine:
        args += ["--pe", service.persistence_engine]
    if service.one_packet:
        args.append("-o")
    if service.flags:
        args += ["-b", ",".join(flag_names(service.scheduler or DEFAULT_SCHEDULER, flag_bits(service.flags)))]
    return args


def _destination_config_args(dest):
    forward = dest.forward or DEFAULT_FORWARD
    args = [_FORWARD_OPTION[forward], "-w", str(DEFAULT_WEIGHT if dest.weight is None else dest.weight)]
    if dest.upper_threshold:
        args += ["-x", str(dest.upper_threshold)]
    if dest.lower_threshold:
        args += ["-y", str(dest.lower_threshold)]
    if forward == "tun" and dest.tunnel_type and dest.tunnel_type != "ipip":
        args += ["--tun-type", dest.tunnel_type]
        if dest.tunnel_port is not None and dest.tunnel_type == "gue":
            args += ["--tun-port", str(dest.tunnel_port)]
        if dest.tunnel_checksum:
            args.append(_CHECKSUM_OPTION[dest.tunnel_checksum])
    return args


def render_argv(op):
    """The ipvsadm arguments (without the program) for one operation."""
    flag = ACTION_FLAG[op.action]
    if op.action == SET_TIMEOUT:
        t = op.timeouts or {}
        return [flag, *(str(t.get(name) or 0) for name in ("tcp", "tcpfin", "udp"))]  # 0 keeps the current value
    args = [flag, *_service_args(op.service)]
    if op.action in (ADD_SERVICE, EDIT_SERVICE):
        return args + _service_config_args(op.service)
    if op.action == DELETE_SERVICE:
        return args
    args += ["-r", op.destination.endpoint]
    if op.action in (ADD_SERVER, EDIT_SERVER):
        args += _destination_config_args(op.destination)
    return args


def render_restore(ops):
    """stdin for one ``ipvsadm -R`` process (restore WITHOUT flushing: never ipvsadm-restore)."""
    return "".join(op.line() + "\n" for op in ops)


def command_lines(ops, program="ipvsadm"):
    return [f"{program} {op.line()}" for op in ops]


def render_rules(table, keys=None, with_destinations=True, with_timeouts=False):
    """Canonical save-format text (sorted, thresholds included) for diffs."""
    services = [s for k, s in table.services.items() if keys is None or k in keys]
    lines = []
    if with_timeouts and table.timeouts:
        lines.append(" ".join(["--set", *(str(table.timeouts.get(n, 0)) for n in ("tcp", "tcpfin", "udp"))]))
    for service in sorted(services, key=_service_sort_key):
        lines.append(" ".join(["-A", *_service_args(service), *_service_config_args(service)]))
        if with_destinations:
            for dest in sorted(service.destinations.values(), key=_destination_sort_key):
                lines.append(render_destination_rule(service, dest).rstrip("\n"))
    return "".join(line + "\n" for line in lines)


def render_destination_rule(service, dest):
    if dest is None:
        return ""
    return " ".join(["-a", *_service_args(service), "-r", dest.endpoint, *_destination_config_args(dest)]) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Simulation (check mode, diff, verification)
# ---------------------------------------------------------------------------------------------------------------------


def apply_operations(table, ops):
    """A new Table: ``table`` after ``ops``, as the kernel would make it (configuration fields only)."""
    result = copy.deepcopy(table)
    for op in ops:
        if op.action == SET_TIMEOUT:
            timeouts = dict(result.timeouts or {})
            timeouts.update({k: v for k, v in (op.timeouts or {}).items() if v})
            result.timeouts = timeouts
            continue
        key = op.service.key
        if op.action == ADD_SERVICE:
            result.services[key] = _config_only(copy.deepcopy(op.service))
        elif op.action == EDIT_SERVICE:
            svc = copy.deepcopy(op.service)
            old = result.services.get(key)
            svc.destinations = old.destinations if old is not None else {}
            svc.stats = old.stats if old is not None else None
            result.services[key] = svc
        elif op.action == DELETE_SERVICE:
            result.services.pop(key, None)
        else:
            svc = result.services.get(key)
            if svc is None:
                svc = result.services[key] = _config_only(copy.deepcopy(op.service))
            dkey = op.destination.key
            if op.action == DELETE_SERVER:
                svc.destinations.pop(dkey, None)
            else:
                old = svc.destinations.get(dkey)
                dest = copy.deepcopy(op.destination)
                if old is not None:
                    dest.active_connections = old.active_connections
                    dest.inactive_connections = old.inactive_connections
                    dest.stats = old.stats
                else:  # a new destination starts without connections
                    dest.active_connections = dest.inactive_connections = 0
                svc.destinations[dkey] = dest
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Structured output (ipvs_info and the modules' return values)
# ---------------------------------------------------------------------------------------------------------------------


def destination_to_dict(dest):
    data = {
        "address": dest.address,
        "port": dest.port,
        "family": dest.family,
        "forward": dest.forward,
        "weight": dest.weight,
        "upper_threshold": dest.upper_threshold,
        "lower_threshold": dest.lower_threshold,
        "active_connections": dest.active_connections,
        "inactive_connections": dest.inactive_connections,
    }
    if dest.forward == "tun":
        data.update(tunnel_type=dest.tunnel_type, tunnel_port=dest.tunnel_port, tunnel_checksum=dest.tunnel_checksum)
    if dest.persistent_connections is not None:
        data["persistent_connections"] = dest.persistent_connections
    if dest.stats is not None:
        data["stats"] = dict(dest.stats)
    return data


def service_to_dict(service, with_destinations=True):
    data = {
        "protocol": service.protocol,
        "address": service.address,
        "port": service.port,
        "fwmark": service.fwmark,
        "family": service.family,
        "scheduler": service.scheduler,
        "flags": list(service.flags),
        "persistent": service.persistent,
        "persistence_timeout": service.persistence_timeout,
        "netmask": service.effective_netmask if service.persistent else None,
        "one_packet_scheduling": bool(service.one_packet),
        "persistence_engine": service.persistence_engine,
    }
    if with_destinations:
        dests = sorted(service.destinations.values(), key=_destination_sort_key)
        data["destinations"] = [destination_to_dict(d) for d in dests]
        active = [d.active_connections for d in dests if d.active_connections is not None]
        inactive = [d.inactive_connections for d in dests if d.inactive_connections is not None]
        data["active_connections"] = sum(active) if active else (0 if not dests else None)
        data["inactive_connections"] = sum(inactive) if inactive else (0 if not dests else None)
    if service.stats is not None:
        data["stats"] = dict(service.stats)
    return data


def table_to_info(table):
    services = sorted(table.services.values(), key=_service_sort_key)
    return {
        "services": [service_to_dict(s) for s in services],
        "timeouts": table.timeouts,
        "version": table.version,
        "table_size": table.size,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Error translation
# ---------------------------------------------------------------------------------------------------------------------


def explain_failure(stderr, rc=None, ops=()):
    """Turn ipvsadm's terse stderr into a message that says what to do."""
    text = (stderr or "").strip()
    first = text.splitlines()[0] if text else ""
    if "Can't initialize ipvs" in text or first == "Protocol not available":
        return IPVS_UNAVAILABLE.format(detail=first or text)
    if "Scheduler not found" in text or "Scheduler or persistence engine not found" in text:
        parts = []
        for op in ops:
            if op.action in (ADD_SERVICE, EDIT_SERVICE):
                sched = op.service.scheduler or DEFAULT_SCHEDULER
                part = f"scheduler {sched} not available in this kernel (modprobe ip_vs_{sched})"
                if op.service.persistence_engine:
                    engine = op.service.persistence_engine
                    part += f", or persistence engine {engine} not available (modprobe ip_vs_pe_{engine})"
                if part not in parts:
                    parts.append(part)
        if parts:
            return "; ".join(parts) + f" [ipvsadm: {first}]"
        return f"a scheduler is not available in this kernel (modprobe ip_vs_<scheduler>) [ipvsadm: {first}]"
    if "Permission denied" in text:
        return f"ipvsadm needs root (CAP_NET_ADMIN): run the task with become [ipvsadm: {first}]"
    if "Invalid operation" in text:
        return (
            "the kernel refused the change: a real server address must be a unicast address that is local or "
            f"reachable (not multicast, broadcast or link-local) [ipvsadm: {first}]"
        )
    if "address family" in text:
        return f"the kernel refused mixing address families (only tunnel forwarding may) [ipvsadm: {first}]"
    for marker in ("already exists", "No such service", "Service not defined", "No such destination"):
        if marker in text:
            return (
                "the IPVS table changed while this task ran (another tool such as keepalived manages it too?); "
                f"run the task again [ipvsadm: {first}]"
            )
    if "illegal" in text or "invalid" in text or "Illegal" in text:
        return f"ipvsadm rejected the arguments: {text}"
    return f"ipvsadm failed (rc={rc}): {text or 'no error message'}"


# ---------------------------------------------------------------------------------------------------------------------
# Draining
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class DrainResult:
    drained: bool
    active: int
    inactive: int
    present: bool
    elapsed: float
    polls: int


def connection_counts(table, service_key, dest_key):
    """(active, inactive, present) of one destination in a listing; a missing one counts as 0 connections."""
    service = table.services.get(service_key)
    dest = find_destination(service, dest_key) if service is not None else None
    if dest is None:
        return 0, 0, False
    return dest.active_connections or 0, dest.inactive_connections or 0, True


def wait_for_drain(
    read_table, service_key, dest_key, timeout, interval, *, include_inactive=False, clock=None, sleep=None
):
    """Poll ``read_table()`` until the destination has no (active, optionally inactive) connections.

    Bounded two ways: by ``timeout`` seconds of ``clock`` and by a poll count derived from it, so a frozen clock
    cannot loop forever.
    """
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    if interval <= 0:
        raise IpvsValueError("poll_interval must be greater than 0")
    if timeout < 0:
        raise IpvsValueError("timeout must not be negative")
    max_polls = math.ceil(timeout / interval) + 2
    start = clock()
    polls = 0
    while True:
        active, inactive, present = connection_counts(read_table(), service_key, dest_key)
        polls += 1
        elapsed = clock() - start
        remaining = active + (inactive if include_inactive else 0)
        if remaining == 0:
            return DrainResult(True, active, inactive, present, elapsed, polls)
        if elapsed >= timeout or polls >= max_polls:
            return DrainResult(False, active, inactive, present, elapsed, polls)
        sleep(min(interval, max(timeout - elapsed, 0.0)))


def drain_timeout_message(service, dest_key, result, timeout, include_inactive):
    endpoint = format_endpoint(*dest_key)
    waited_for = "active and inactive" if include_inactive else "active"
    return (
        f"timed out after {timeout} s waiting for destination {endpoint} of {describe_service(service)} to drain: "
        f"{result.active} active and {result.inactive} inactive connection(s) still connected "
        f"(waited for {waited_for} connections to reach 0; its weight is 0, so no new connection goes there)"
    )
