#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: ipvs_info
short_description: Read the whole IPVS table as structured data
version_added: 0.1.0
author:
  - cosyvoice.cluster maintainers (@cosyvoice)
description:
  - Returns every IPVS virtual service with its configuration, its destinations (forwarding method, weight,
    thresholds, active and inactive connections) and exact traffic counters, and the IPVS connection timeouts.
  - Reads C(ipvsadm -S -n) (configuration), C(ipvsadm -L -n --thresholds) (thresholds and connections),
    C(ipvsadm -L -n --stats --exact) (counters, unless O(stats=false)) and C(ipvsadm -L --timeout). Changes nothing.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cosyvoice.cluster.ipvs
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: N/A
    details: The module changes nothing.
  platform:
    platforms: posix
options:
  stats:
    description:
      - Read the traffic counters (C(ipvsadm -L -n --stats --exact)) into the C(stats) of each service and
        destination.
    type: bool
    default: true
notes:
  - The reads are separate ipvsadm runs. The first (C(ipvsadm -S -n)) decides which services and destinations are
    reported; the later ones add thresholds, connections and counters to them.
seealso:
  - module: cosyvoice.cluster.ipvs_service
  - module: cosyvoice.cluster.ipvs_real_server
  - module: cosyvoice.cluster.ipvs_table
"""

EXAMPLES = r"""
- name: Read the IPVS table
  cosyvoice.cluster.ipvs_info:
  register: ipvs

- name: Show weight and active connections of every destination of the Gradio service
  ansible.builtin.debug:
    msg: "{{ item.address }} weight {{ item.weight }} active {{ item.active_connections }}"
  loop: "{{ (ipvs.services | selectattr('port', 'equalto', 7860) | first).destinations }}"

- name: Fail unless every destination is in the table
  ansible.builtin.assert:
    that: >-
      ipvs.services | map(attribute='destinations') | flatten | map(attribute='address') | list
      is superset(['192.168.50.21', '192.168.50.22'])
"""

RETURN = r"""
services:
  description: Every virtual service, sorted (address services by family, protocol, address and port, then fwmarks).
  returned: always
  type: list
  elements: dict
  contains:
    protocol:
      description: V(tcp), V(udp), V(sctp), or V(fwmark) for a firewall-mark service.
      type: str
      sample: tcp
    address:
      description: Virtual address (V(null) for a fwmark service).
      type: str
      sample: 192.168.50.100
    port:
      description: Virtual port (V(null) for a fwmark service).
      type: int
      sample: 7860
    fwmark:
      description: Firewall mark (V(null) for an address service).
      type: int
      sample: null
    family:
      description: V(ipv4) or V(ipv6).
      type: str
      sample: ipv4
    scheduler:
      description: Scheduler name.
      type: str
      sample: sh
    flags:
      description: Scheduler flags, as ipvsadm names them.
      type: list
      elements: str
      sample: [sh-fallback, sh-port]
    persistent:
      description: Whether the service is persistent.
      type: bool
      sample: true
    persistence_timeout:
      description: Persistence timeout in seconds, V(null) if not persistent.
      type: int
      sample: 300
    netmask:
      description: Persistence netmask (dotted quad for IPv4, prefix length for IPv6), V(null) if not persistent.
      type: str
      sample: 255.255.255.255
    one_packet_scheduling:
      description: Whether one-packet scheduling is on.
      type: bool
      sample: false
    persistence_engine:
      description: Persistence engine, if any.
      type: str
      sample: null
    active_connections:
      description: Sum of the destinations' active connections.
      type: int
      sample: 12
    inactive_connections:
      description: Sum of the destinations' inactive connections.
      type: int
      sample: 3
    stats:
      description:
        - Exact counters since the service was added (C(ipvsadm -L -n --stats --exact)), with O(stats=true).
        - C(exact) is V(false) only if ipvsadm printed rounded K/M/G values.
      type: dict
      returned: when O(stats=true)
      sample: {conns: 52311, inpkts: 9034421, outpkts: 0, inbytes: 812345678, outbytes: 0, exact: true}
    destinations:
      description: The real servers of the service, sorted by address and port.
      type: list
      elements: dict
      contains:
        address:
          description: Real server address.
          type: str
          sample: 192.168.50.21
        port:
          description: Real server port.
          type: int
          sample: 7860
        family:
          description: V(ipv4) or V(ipv6).
          type: str
        forward:
          description: V(dr), V(nat) or V(tun).
          type: str
          sample: dr
        weight:
          description: Weight; 0 means drained (quiescent).
          type: int
          sample: 100
        upper_threshold:
          description: Upper connection threshold (0 is no limit).
          type: int
          sample: 0
        lower_threshold:
          description: Lower connection threshold.
          type: int
          sample: 0
        active_connections:
          description: Connections in ESTABLISHED state (ActiveConn).
          type: int
          sample: 12
        inactive_connections:
          description: Connections in any other state (InActConn).
          type: int
          sample: 3
        tunnel_type:
          description: Tunnel type of a V(tun) destination.
          type: str
          returned: when forward is V(tun)
        tunnel_port:
          description: GUE tunnel port.
          type: int
          returned: when forward is V(tun)
        tunnel_checksum:
          description: Tunnel checksum mode.
          type: str
          returned: when forward is V(tun)
        stats:
          description: Exact counters of the destination, same keys as the service's.
          type: dict
          returned: when O(stats=true)
timeouts:
  description: IPVS connection timeouts in seconds (C(ipvsadm -L --timeout)); the kernel defaults are 900 120 300.
  returned: always
  type: dict
  sample: {tcp: 900, tcpfin: 120, udp: 300}
version:
  description: IPVS version the kernel reports.
  returned: always
  type: str
  sample: 1.2.1
table_size:
  description: Size of the IPVS connection hash table.
  returned: always
  type: int
  sample: 4096
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvsadm_cli as cli  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec={"stats": {"type": "bool", "default": True}},
        supports_check_mode=True,
    )
    ipvsadm = cli.Ipvsadm(module)
    table = ipvsadm.read_table(thresholds=True, stats=module.params["stats"], timeouts=True)
    result = {"changed": False}
    result.update(ipvs.table_to_info(table))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
