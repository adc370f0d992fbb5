#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: ipvs_table
short_description: Declare a set of IPVS services and destinations and apply the difference in one ipvsadm run
version_added: 0.1.0
author:
  - cosyvoice.cluster maintainers (@cosyvoice)
description:
  - Compares the desired services and destinations with the table (C(ipvsadm -S -n) and
    C(ipvsadm -L -n --thresholds)) and applies the whole change set in ONE C(ipvsadm -R) process, which reads the
    C(-A)/C(-E)/C(-D)/C(-a)/C(-e)/C(-d) lines on stdin. A change to 200 destinations costs one process, not 200.
  - C(ipvsadm -R) is restore I(without) flushing. C(ipvsadm-restore) is never used, because it clears the whole
    table (C(-C)) first and so drops every connection.
  - Changed services and destinations are edited in place (C(-E), C(-e)); nothing is deleted to be added again.
  - New services and destinations are added before anything is deleted, so a service whose destinations are all
    replaced always has one.
  - After the run the table is read again; if any change is missing (C(ipvsadm -R) reports only its last line's
    result in its exit status) the task fails and lists the missing commands.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cosyvoice.cluster.ipvs
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the whole table as C(ipvsadm -S) rules (thresholds included) before and after.
  platform:
    platforms: posix
options:
  services:
    description:
      - The desired virtual services, each with its destinations.
      - Each service is declared in full (options left out take ipvsadm's defaults), like
        M(cosyvoice.cluster.ipvs_service); so is each destination, like M(cosyvoice.cluster.ipvs_real_server).
    type: list
    elements: dict
    default: []
    suboptions:
      protocol:
        description: Protocol of an address:port service. Defaults to V(tcp) when O(services[].address) is given.
        type: str
        choices: [tcp, udp, sctp]
      address:
        description: Virtual IP address (IPv4 or IPv6). Exactly one of O(services[].address) and O(services[].fwmark).
        type: str
      port:
        description: Virtual port. Required with O(services[].address).
        type: int
      fwmark:
        description: Firewall mark of a fwmark service.
        type: int
      family:
        description: Address family of a fwmark service. Defaults to V(ipv4).
        type: str
        choices: [ipv4, ipv6]
      scheduler:
        description: Scheduler; see M(cosyvoice.cluster.ipvs_service).
        type: str
        default: wlc
        choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
      scheduler_flags:
        description: Scheduler flags (V(sh-*) need V(sh), V(mh-*) need V(mh)).
        type: list
        elements: str
        default: []
        choices: [sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3]
      persistence_timeout:
        description: Persistence timeout in seconds; V(0) is not persistent.
        type: int
        default: 0
      persistence_netmask:
        description: Persistence netmask (IPv4 netmask or prefix length; IPv6 prefix length).
        type: str
      one_packet_scheduling:
        description: One-packet scheduling (UDP and fwmark services).
        type: bool
        default: false
      persistence_engine:
        description: Alternative persistence engine.
        type: str
        choices: [sip]
      purge_destinations:
        description:
          - Delete the destinations of this service that are not in O(services[].destinations).
          - Defaults to the value of O(purge).
        type: bool
      destinations:
        description: The real servers of the service.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: Real server address.
            type: str
            required: true
          port:
            description:
              - Real server port. Defaults to the service port (V(0) for a fwmark service).
              - With V(dr) or V(tun) the service port is always used.
            type: int
          forward:
            description: Forwarding method.
            type: str
            default: dr
            choices: [dr, nat, tun]
          weight:
            description: Weight, 0 to 65535; V(0) drains (quiesces) the destination.
            type: int
            default: 1
          upper_threshold:
            description: Upper connection threshold, V(0) for none.
            type: int
            default: 0
          lower_threshold:
            description: Lower connection threshold.
            type: int
            default: 0
          tunnel_type:
            description: Tunnel type with O(services[].destinations[].forward=tun).
            type: str
            choices: [ipip, gue, gre]
          tunnel_port:
            description: GUE tunnel port.
            type: int
          tunnel_checksum:
            description: GUE/GRE checksum mode.
            type: str
            choices: [nocsum, csum, remcsum]
  purge:
    description:
      - V(true) makes the table exactly O(services), deleting every service that is not listed and every destination
        that is not listed under its service.
      - V(false) only adds and edits; see O(services[].purge_destinations) to make one service's destination list
        exact.
      - Deleting a destination this way is abrupt. For a graceful removal set its weight to 0 first and wait, or use
        M(cosyvoice.cluster.ipvs_real_server) with O(cosyvoice.cluster.ipvs_real_server#module:graceful=true).
    type: bool
    default: false
  timeouts:
    description:
      - IPVS connection timeouts in seconds (C(ipvsadm --set)); only the keys given are managed.
    type: dict
    suboptions:
      tcp:
        description: Timeout of established TCP connections.
        type: int
      tcpfin:
        description: Timeout of TCP connections after a FIN.
        type: int
      udp:
        description: Timeout of UDP flows.
        type: int
seealso:
  - module: cosyvoice.cluster.ipvs_service
  - module: cosyvoice.cluster.ipvs_real_server
  - module: cosyvoice.cluster.ipvs_info
"""

EXAMPLES = r"""
- name: The Gradio service on three GPU nodes, exactly these destinations
  cosyvoice.cluster.ipvs_table:
    services:
      - address: 192.168.50.100
        port: 7860
        scheduler: sh
        scheduler_flags: [sh-fallback]
        purge_destinations: true
        destinations:
          - {address: 192.168.50.21, weight: 100}
          - {address: 192.168.50.22, weight: 100}
          - {address: 192.168.50.23, weight: 0}  # drained

- name: The whole table, nothing else (removes services that are not listed)
  cosyvoice.cluster.ipvs_table:
    purge: true
    timeouts: {tcp: 900, tcpfin: 120, udp: 300}
    services:
      - address: 192.168.50.100
        port: 7860
        scheduler: wlc
        persistence_timeout: 600
        destinations: "{{ groups['gpu_nodes'] | map('extract', hostvars, 'cluster_ip')
                          | map('community.general.dict_kv', 'address') | list }}"
      - fwmark: 7
        scheduler: rr
        destinations:
          - {address: 192.168.50.21}
"""

RETURN = r"""
commands:
  description:
    - The changes as ipvsadm commands, in the order they are applied. They were (or in check mode would be) fed,
      without the leading C(ipvsadm), to one C(ipvsadm -R) process.
  returned: always
  type: list
  elements: str
  sample:
    - ipvsadm -A -t 192.168.50.100:7860 -s sh -b sh-fallback
    - ipvsadm -a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 100
    - ipvsadm -d -t 192.168.50.100:7860 -r 192.168.50.29:7860
services:
  description:
    - The services after the task (in check mode, as they would be), with their destinations; same keys as
      RV(cosyvoice.cluster.ipvs_info#module:services) without counters.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvsadm_cli as cli  # noqa: E402


def _argument_spec():
    destination = {"address": {"type": "str", "required": True}, "port": {"type": "int"}}
    destination.update(cli.destination_config_spec())
    service = cli.service_identity_spec()
    service.update(cli.service_config_spec())
    service["purge_destinations"] = {"type": "bool"}
    service["destinations"] = {"type": "list", "elements": "dict", "default": [], "options": destination}
    return {
        "services": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": service,
            "mutually_exclusive": cli.SERVICE_MUTUALLY_EXCLUSIVE,
            "required_one_of": cli.SERVICE_REQUIRED_ONE_OF,
            "required_together": cli.SERVICE_REQUIRED_TOGETHER,
        },
        "purge": {"type": "bool", "default": False},
        "timeouts": {
            "type": "dict",
            "options": {"tcp": {"type": "int"}, "tcpfin": {"type": "int"}, "udp": {"type": "int"}},
        },
    }


def desired_services(params):
    """Module parameters -> desired Services with destinations (raises IpvsValueError). Returns (services, warnings)."""
    services, warnings = [], []
    for i, sparams in enumerate(params["services"]):
        where = f"services[{i}]"
        service = ipvs.service_from_params(sparams, where)
        service.purge_destinations = sparams.get("purge_destinations")
        for j, dparams in enumerate(sparams.get("destinations") or []):
            dest, dwarnings = ipvs.destination_from_params(dparams, service, f"{where}.destinations[{j}]")
            if dest.key in service.destinations:
                raise ipvs.IpvsValueError(f"{where}: destination {dest.endpoint} is listed twice")
            service.destinations[dest.key] = dest
            warnings.extend(dwarnings)
        services.append(service)
    return services, warnings


def main():
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    params = module.params
    desired, warnings = cli.fail_on_value_error(module, desired_services, params)
    for warning in warnings:
        module.warn(warning)
    timeouts = {k: v for k, v in (params["timeouts"] or {}).items() if v is not None}
    if any(v < 0 for v in timeouts.values()):
        module.fail_json(msg="timeouts must not be negative")

    ipvsadm = cli.Ipvsadm(module)
    table = ipvsadm.read_table(thresholds=True, timeouts=bool(timeouts))
    ops = cli.fail_on_value_error(module, ipvs.plan_table, table, desired, params["purge"], timeouts)
    after = ipvs.apply_operations(table, ops)

    result = cli.base_result(ops)
    if module._diff:
        with_timeouts = bool(timeouts)
        result["diff"] = {
            "before": ipvs.render_rules(table, with_timeouts=with_timeouts),
            "after": ipvs.render_rules(after, with_timeouts=with_timeouts),
        }
    if ops and not module.check_mode:
        rc, out, err = ipvsadm.execute_batch(ops)
        applied = ipvsadm.read_table(thresholds=True, timeouts=bool(timeouts), result=result)
        residual = ipvs.plan_table(applied, desired, params["purge"], timeouts)
        if residual:
            result["changed"] = ipvs.render_rules(applied, with_timeouts=True) != ipvs.render_rules(
                table, with_timeouts=True
            )
            module.fail_json(
                msg=f"ipvsadm -R left {len(residual)} of {len(ops)} change(s) unapplied: "
                + ipvs.explain_failure(err, rc, ops),
                unapplied=ipvs.command_lines(residual),
                rc=rc,
                stdout=out,
                stderr=err,
                **result,
            )
        if rc != 0 or err.strip():
            module.warn(f"ipvsadm -R exited {rc} with: {err.strip()} (the table matches the desired state)")
        after = applied
    info = ipvs.table_to_info(after)
    result["services"] = info["services"]
    for service in result["services"]:
        service.pop("stats", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
