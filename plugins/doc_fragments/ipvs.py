# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Option documentation shared by the cosyvoice.cluster ipvs_* modules."""


class ModuleDocFragment:
    # Requirements, the backend choice and the action group: every ipvs_* module.
    DOCUMENTATION = r"""
options: {}
requirements:
  - C(ipvsadm) 1.26 or later on the target (Debian, Ubuntu and RHEL 9 ship 1.31).
  - The Linux IPVS kernel module (C(ip_vs)) on the target, and root (C(become=true)).
  - Python 3.8 or later on the target.
notes:
  - >-
    Why ipvsadm and not pyroute2: the modules run C(ipvsadm) and parse its numeric output instead of speaking netlink
    through C(pyroute2.IPVS). C(ipvsadm) is on every director that runs keepalived's LVS, while the netlink IPVS API of
    pyroute2 needs pyroute2 0.8 or later and Debian 12 ships python3-pyroute2 0.7.2, so it would mean a pip install on
    each director, often from an air-gapped mirror. The save format (C(ipvsadm -S -n)) is stable across ipvsadm
    releases and is the text operators read, so the C(commands) the modules return can be audited or replayed by
    hand, and C(ipvsadm -R) applies a whole change set in one process, which removes the per-command cost that a
    netlink library would save. The price of parsing text is contained: output is requested with C(-n), C(--exact)
    and C(LANG=C), the parsers stop with a clear error on any line they do not understand, and they are unit-tested
    against output recorded from a real kernel. One gap of the save format (it omits destination thresholds) is
    filled by an extra C(ipvsadm -L -n --thresholds) read.
  - >-
    Commands are run as argument lists with C(LANG=C LC_ALL=C), never through a shell. In check mode only the plan is
    computed: nothing is changed.
  - >-
    If IPVS is missing the modules fail with a message saying so and suggesting C(modprobe ip_vs); if a scheduler's
    kernel module cannot be loaded they report C(scheduler X not available in this kernel (modprobe ip_vs_X)).
seealso:
  - name: ipvsadm(8)
    description: The command these modules drive.
    link: https://manpages.debian.org/bookworm/ipvsadm/ipvsadm.8.en.html
attributes:
  action_group:
    description: Use C(group/cosyvoice.cluster.ipvs) in C(module_defaults) to set defaults for all ipvs modules.
    support: full
    membership:
      - cosyvoice.cluster.ipvs
"""

    # Identifies one virtual service (ipvs_service, ipvs_real_server).
    SERVICE = r"""
options:
  protocol:
    description:
      - Protocol of an address:port virtual service. Not used with O(fwmark).
      - Defaults to V(tcp) when O(address) is given.
    type: str
    choices: [tcp, udp, sctp]
  address:
    description:
      - Virtual IP address of the service, IPv4 or IPv6 (with or without brackets).
      - Must be an IP literal; host names are refused because the table is read back numerically.
      - Exactly one of O(address) and O(fwmark) is required.
    type: str
  port:
    description:
      - Virtual port of the service, 0 to 65535. Required with O(address).
      - V(0) (all ports) is only allowed for a persistent service, as in ipvsadm.
    type: int
  fwmark:
    description:
      - Firewall mark of a fwmark service (C(ipvsadm -f)), 1 to 4294967295.
      - Exactly one of O(address) and O(fwmark) is required.
    type: int
  family:
    description:
      - Address family of a O(fwmark) service (C(ipvsadm -f N -6) for V(ipv6)). Defaults to V(ipv4).
      - For an O(address) service the family follows from the address; if given it must match.
    type: str
    choices: [ipv4, ipv6]
"""

    # Configuration of a virtual service (ipvs_service).
    SERVICE_CONFIG = r"""
options:
  scheduler:
    description:
      - Scheduling algorithm. The kernel loads C(ip_vs_<scheduler>) on first use; if it cannot, the task fails with
        C(scheduler X not available in this kernel (modprobe ip_vs_X)).
      - V(sh) (source hashing) or V(mh) (Maglev hashing) give client affinity without persistence templates.
    type: str
    default: wlc
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
  scheduler_flags:
    description:
      - Scheduler flags (C(ipvsadm -b)). V(sh-fallback) and V(sh-port) need O(scheduler=sh), V(mh-fallback) and
        V(mh-port) need O(scheduler=mh).
      - With V(sh-fallback)/V(mh-fallback) a client that hashes to a destination of weight 0 is sent to another one
        instead of getting no destination.
      - The service is declared in full, so an empty list removes flags that are set.
    type: list
    elements: str
    default: []
    choices: [sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3]
  persistence_timeout:
    description:
      - Persistence timeout in seconds (C(ipvsadm -p)), 1 to 2678400. V(0) means not persistent.
      - While persistent, a client keeps going to the same destination, even one of weight 0, unless the sysctl
        C(net.ipv4.vs.expire_quiescent_template=1) is set.
    type: int
    default: 0
  persistence_netmask:
    description:
      - Persistence granularity (C(ipvsadm -M)). For IPv4 a netmask such as V(255.255.255.0) or a prefix length such
        as V(24); for IPv6 a prefix length. Defaults to a single client address (V(255.255.255.255) or V(128)).
      - Needs O(persistence_timeout).
    type: str
  one_packet_scheduling:
    description:
      - One-packet scheduling (C(ipvsadm -o)), for UDP and fwmark services only.
    type: bool
    default: false
  persistence_engine:
    description:
      - Alternative persistence engine (C(ipvsadm --pe)).
    type: str
    choices: [sip]
"""

    # Configuration of a destination (ipvs_real_server).
    DESTINATION_CONFIG = r"""
options:
  forward:
    description:
      - Forwarding method. V(dr) is direct routing (C(-g), LVS-DR), V(nat) is masquerading (C(-m)), V(tun) is
        IP-in-IP or GUE/GRE tunnelling (C(-i)).
      - With V(dr) and V(tun) the destination port is always the service port (ipvsadm forces it).
    type: str
    default: dr
    choices: [dr, nat, tun]
  weight:
    description:
      - Weight, 0 to 65535. V(0) quiesces the destination - no new connections, established ones go on.
    type: int
    default: 1
  upper_threshold:
    description:
      - Upper connection threshold (C(ipvsadm -x)); above it the destination gets no new connections. V(0) is no limit.
    type: int
    default: 0
  lower_threshold:
    description:
      - Lower connection threshold (C(ipvsadm -y)); below it an overloaded destination takes connections again.
    type: int
    default: 0
  tunnel_type:
    description:
      - Tunnel type with O(forward=tun). Defaults to V(ipip).
    type: str
    choices: [ipip, gue, gre]
  tunnel_port:
    description:
      - Destination UDP port of a V(gue) tunnel (required with it).
    type: int
  tunnel_checksum:
    description:
      - Checksum mode of a V(gue) or V(gre) tunnel. Defaults to V(nocsum).
    type: str
    choices: [nocsum, csum, remcsum]
"""
