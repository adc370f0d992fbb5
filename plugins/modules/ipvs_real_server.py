#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: ipvs_real_server
short_description: Manage, drain or gracefully remove one destination of an IPVS virtual service
version_added: 0.1.0
author:
  - cosyvoice.cluster maintainers (@cosyvoice)
description:
  - Adds, edits (C(ipvsadm -e)), drains or deletes one destination (real server) of an existing IPVS virtual service.
  - V(drained) sets the weight to 0 and keeps every other attribute, so established connections go on and no new
    connection is scheduled there. With O(wait=true) the task then waits until the destination's active connections
    (and with O(wait_inactive=true) its inactive ones too) reach 0, or fails after O(timeout) seconds saying what is
    still connected.
  - V(absent) with O(graceful=true) drains first, waits the same way, then deletes, so no established connection is
    blackholed.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cosyvoice.cluster.ipvs
  - cosyvoice.cluster.ipvs.service
  - cosyvoice.cluster.ipvs.destination_config
attributes:
  check_mode:
    support: full
    details:
      - Check mode computes the commands only; it never waits for connections to drain.
      - Adding a destination to a service that does not exist yet is reported as a change (a service created by an
        earlier task that also ran in check mode); outside check mode it is an error.
  diff_mode:
    support: full
    details: The diff shows the destination as an C(ipvsadm -S) rule before and after.
  platform:
    platforms: posix
options:
  server_address:
    description:
      - Address of the real server, IPv4 or IPv6. It must have the service's address family unless O(forward=tun).
    type: str
    required: true
  server_port:
    description:
      - Port of the real server. Defaults to the service port (V(0) for a fwmark service).
      - With O(forward=dr) or O(forward=tun) ipvsadm always uses the service port; another value is ignored with a
        warning.
    type: int
  state:
    description:
      - V(present) adds the destination or edits it in place (every destination option is declared, defaults
        included).
      - V(drained) sets weight 0 on an existing destination and leaves its other attributes as they are; the
        destination options are ignored. A destination that does not exist is left alone.
      - V(absent) deletes the destination (C(ipvsadm -d)); see O(graceful).
    type: str
    default: present
    choices: [present, absent, drained]
  wait:
    description:
      - With O(state=drained), wait until the destination's active connections reach 0 (see O(wait_inactive)),
        polling C(ipvsadm -L -n) every O(poll_interval) seconds for at most O(timeout) seconds.
      - On timeout the task fails and reports the active and inactive connection counts.
      - O(graceful=true) always waits.
    type: bool
    default: false
  wait_inactive:
    description:
      - Also wait for the inactive connections (every TCP state but ESTABLISHED, such as TIME_WAIT) to reach 0.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for the connections to drain before failing.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two reads of the connection counters while waiting.
    type: float
    default: 1.0
  graceful:
    description:
      - With O(state=absent), drain first (weight 0), wait as for O(wait=true), and delete only then. If the wait
        times out the destination stays, drained, and the task fails.
    type: bool
    default: false
notes:
  - In LVS-DR the director sees only the inbound half of a connection, so C(ActiveConn) drops when the client closes
    or the IPVS connection times out (C(ipvsadm --set)); a client that keeps a connection open keeps it counted.
  - With persistence, a client template can still send a returning client to a weight-0 destination unless the sysctl
    C(net.ipv4.vs.expire_quiescent_template=1) is set.
seealso:
  - module: cosyvoice.cluster.ipvs_service
  - module: cosyvoice.cluster.ipvs_table
  - module: cosyvoice.cluster.ipvs_info
"""

EXAMPLES = r"""
- name: Add a direct-routing real server with weight 100
  cosyvoice.cluster.ipvs_real_server:
    address: 192.168.50.100
    port: 7860
    server_address: 192.168.50.21
    forward: dr
    weight: 100

- name: NAT real server on another port, with connection thresholds
  cosyvoice.cluster.ipvs_real_server:
    protocol: tcp
    address: 192.168.50.100
    port: 80
    server_address: 10.0.0.11
    server_port: 8080
    forward: nat
    upper_threshold: 500
    lower_threshold: 400

- name: Drain a node before its upgrade and wait for its requests to finish
  cosyvoice.cluster.ipvs_real_server:
    address: 192.168.50.100
    port: 7860
    server_address: 192.168.50.21
    state: drained
    wait: true
    timeout: 600

- name: Remove a node without cutting its established connections
  cosyvoice.cluster.ipvs_real_server:
    address: 192.168.50.100
    port: 7860
    server_address: 192.168.50.21
    state: absent
    graceful: true
    timeout: 120

- name: Destination of a firewall-mark service
  cosyvoice.cluster.ipvs_real_server:
    fwmark: 1
    server_address: 192.168.50.22
"""

RETURN = r"""
commands:
  description: The ipvsadm commands that were run, or would be run in check mode.
  returned: always
  type: list
  elements: str
  sample: ["ipvsadm -e -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 0"]
changes:
  description: The destination options that differed and were edited in place (C(ipvsadm -e)).
  returned: always
  type: list
  elements: str
  sample: [weight]
destination:
  description:
    - The destination after the task (in check mode, as it would be). V(null) when absent.
    - Same keys as a destination in RV(cosyvoice.cluster.ipvs_info#module:services).
  returned: always
  type: dict
  sample:
    address: 192.168.50.21
    port: 7860
    family: ipv4
    forward: dr
    weight: 0
    upper_threshold: 0
    lower_threshold: 0
    active_connections: 0
    inactive_connections: 3
connections:
  description:
    - Active and inactive connections of the destination at the last read (after the wait when there was one).
    - On a wait timeout (the task fails) it holds the counts that were still there.
  returned: when the destination existed
  type: dict
  sample: {active: 0, inactive: 3}
waited:
  description: Seconds spent waiting for the connections to drain.
  returned: when the task waited
  type: float
  sample: 4.02
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs  # noqa: E402
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvsadm_cli as cli  # noqa: E402


def _wait(module, ipvsadm, service, key, result):
    params = module.params
    outcome = cli.fail_on_value_error(
        module,
        ipvs.wait_for_drain,
        ipvsadm.read_listing,
        service.key,
        key,
        params["timeout"],
        params["poll_interval"],
        include_inactive=params["wait_inactive"],
    )
    result["connections"] = {"active": outcome.active, "inactive": outcome.inactive}
    result["waited"] = round(outcome.elapsed, 2)
    if not outcome.drained:
        msg = ipvs.drain_timeout_message(service, key, outcome, params["timeout"], params["wait_inactive"])
        module.fail_json(msg=msg, **result)


def main():
    argument_spec = cli.service_identity_spec()
    argument_spec.update(cli.destination_config_spec())
    argument_spec.update(
        server_address={"type": "str", "required": True},
        server_port={"type": "int"},
        state={"type": "str", "default": "present", "choices": ["present", "absent", "drained"]},
        wait={"type": "bool", "default": False},
        wait_inactive={"type": "bool", "default": False},
        timeout={"type": "int", "default": 300},
        poll_interval={"type": "float", "default": 1.0},
        graceful={"type": "bool", "default": False},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=cli.SERVICE_MUTUALLY_EXCLUSIVE,
        required_one_of=cli.SERVICE_REQUIRED_ONE_OF,
        required_together=cli.SERVICE_REQUIRED_TOGETHER,
    )
    params = module.params
    state = params["state"]
    if params["timeout"] < 0 or params["poll_interval"] <= 0:
        module.fail_json(msg="timeout must be 0 or more and poll_interval greater than 0")
    service = cli.fail_on_value_error(module, ipvs.service_identity_from_params, params)
    desired = None
    if state == "present":
        desired, warnings = cli.fail_on_value_error(
            module, ipvs.destination_from_params, params, service, prefix="server_"
        )
        for warning in warnings:
            module.warn(warning)
        key = desired.key
    else:
        key = cli.fail_on_value_error(module, ipvs.destination_key_from_params, params, service, prefix="server_")

    ipvsadm = cli.Ipvsadm(module)
    table = ipvsadm.read_table(thresholds=True)
    graceful = state == "absent" and params["graceful"]
    if graceful:
        drain_ops, delete_ops = ipvs.plan_graceful_removal(table, service, key)
        ops = drain_ops + delete_ops
    else:
        ops = cli.fail_on_value_error(
            module,
            ipvs.plan_destination,
            table,
            service,
            desired,
            state,
            key=key,
            allow_missing_service=module.check_mode,
        )
    after = ipvs.apply_operations(table, ops)
    current_service = table.services.get(service.key)
    current = ipvs.find_destination(current_service, key)
    after_service = after.services.get(service.key)
    after_dest = ipvs.find_destination(after_service, key)

    result = cli.base_result(ops)
    result["changes"] = [c for op in ops for c in op.changes]
    if module._diff:
        ident = current_service or service
        result["diff"] = {
            "before": ipvs.render_destination_rule(ident, current),
            "after": ipvs.render_destination_rule(ident, after_dest),
        }
    if current is not None:
        result["connections"] = {"active": current.active_connections, "inactive": current.inactive_connections}
    wants_wait = current is not None and (graceful or (state == "drained" and params["wait"]))
    if params["wait"] and state == "present":
        module.warn("wait applies to state=drained (and graceful removal); it is ignored with state=present")

    if not module.check_mode:
        if graceful:
            result["commands"] = ipvs.command_lines(drain_ops)
            result["changed"] = bool(drain_ops)
            ipvsadm.execute(drain_ops, result)
            if wants_wait:
                _wait(module, ipvsadm, current_service, current.key, result)
            ipvsadm.execute(delete_ops, result, done=drain_ops)
            result["commands"] = ipvs.command_lines(ops)
            result["changed"] = bool(ops)
        else:
            ipvsadm.execute(ops, result)
            if wants_wait:
                _wait(module, ipvsadm, current_service, current.key, result)

    if after_dest is not None and "waited" in result:
        after_dest.active_connections = result["connections"]["active"]
        after_dest.inactive_connections = result["connections"]["inactive"]
    result["destination"] = ipvs.destination_to_dict(after_dest) if after_dest is not None else None
    module.exit_json(**result)


if __name__ == "__main__":
    main()
