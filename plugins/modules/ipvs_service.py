#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: ipvs_service
short_description: Manage one IPVS virtual service
version_added: 0.1.0
author:
  - cosyvoice.cluster maintainers (@cosyvoice)
description:
  - Creates, edits or deletes one IPVS virtual service with C(ipvsadm) - a TCP, UDP or SCTP C(address:port)
    (IPv4 or IPv6) or a firewall mark.
  - The service is declared in full - every option left out takes ipvsadm's default - and compared with what
    C(ipvsadm -S -n) reports, so a second run changes nothing.
  - A service whose options differ is edited in place (C(ipvsadm -E)); it is never deleted and added again, which
    would drop its destinations and every connection through it.
  - Destinations are not touched; manage them with M(cosyvoice.cluster.ipvs_real_server) or
    M(cosyvoice.cluster.ipvs_table).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cosyvoice.cluster.ipvs
  - cosyvoice.cluster.ipvs.service
  - cosyvoice.cluster.ipvs.service_config
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the service as an C(ipvsadm -S) rule before and after.
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) adds the service or edits it in place; V(absent) deletes it with its destinations (C(ipvsadm -D)).
    type: str
    default: present
    choices: [present, absent]
seealso:
  - module: cosyvoice.cluster.ipvs_real_server
  - module: cosyvoice.cluster.ipvs_table
  - module: cosyvoice.cluster.ipvs_info
"""

EXAMPLES = r"""
- name: TCP service with source-hash affinity that falls back when a replica is drained
  cosyvoice.cluster.ipvs_service:
    protocol: tcp
    address: 192.168.50.100
    port: 7860
    scheduler: sh
    scheduler_flags: [sh-fallback]

- name: Persistent service, one template per /24 of clients
  cosyvoice.cluster.ipvs_service:
    address: 192.168.50.100
    port: 8000
    scheduler: wlc
    persistence_timeout: 300
    persistence_netmask: 255.255.255.0

- name: IPv6 service
  cosyvoice.cluster.ipvs_service:
    address: "2001:db8::100"
    port: 443
    scheduler: mh
    scheduler_flags: [mh-fallback, mh-port]

- name: Firewall-mark service (mark set by nftables)
  cosyvoice.cluster.ipvs_service:
    fwmark: 1
    scheduler: rr

- name: Remove a service (and its destinations)
  cosyvoice.cluster.ipvs_service:
    address: 192.168.50.100
    port: 8000
    state: absent
"""

RETURN = r"""
commands:
  description: The ipvsadm commands that were run, or would be run in check mode.
  returned: always
  type: list
  elements: str
  sample: ["ipvsadm -E -t 192.168.50.100:7860 -s sh -b sh-fallback"]
service:
  description:
    - The service after the task (in check mode, as it would be), without counters. V(null) when absent.
    - Same keys as a service in RV(cosyvoice.cluster.ipvs_info#module:services), without C(destinations).
  returned: always
  type: dict
  sample:
    protocol: tcp
    address: 192.168.50.100
    port: 7860
    fwmark: null
    family: ipv4
    scheduler: sh
    flags: [sh-fallback]
    persistent: false
    persistence_timeout: null
    netmask: null
    one_packet_scheduling: false
    persistence_engine: null
changes:
  description: The options that differed and were edited in place (C(ipvsadm -E)).
  returned: always
  type: list
  elements: str
  sample: [scheduler, scheduler_flags]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvsadm_cli as cli  # noqa: E402


def main():
    argument_spec = cli.service_identity_spec()
    argument_spec.update(cli.service_config_spec())
    argument_spec["state"] = {"type": "str", "default": "present", "choices": ["present", "absent"]}
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=cli.SERVICE_MUTUALLY_EXCLUSIVE,
        required_one_of=cli.SERVICE_REQUIRED_ONE_OF,
        required_together=cli.SERVICE_REQUIRED_TOGETHER,
    )
    state = module.params["state"]
    builder = ipvs.service_from_params if state == "present" else ipvs.service_identity_from_params
    desired = cli.fail_on_value_error(module, builder, module.params)

    ipvsadm = cli.Ipvsadm(module)
    table = ipvsadm.read_table()
    ops = ipvs.plan_service(table, desired, state)
    after = ipvs.apply_operations(table, ops)

    result = cli.base_result(ops)
    result["changes"] = [c for op in ops for c in op.changes]
    if module._diff:
        keys = {desired.key}
        result["diff"] = {
            "before": ipvs.render_rules(table, keys, with_destinations=False),
            "after": ipvs.render_rules(after, keys, with_destinations=False),
        }
    if ops and not module.check_mode:
        ipvsadm.execute(ops, result)
    service = after.services.get(desired.key)
    result["service"] = ipvs.service_to_dict(service, with_destinations=False) if service else None
    module.exit_json(**result)


if __name__ == "__main__":
    main()
