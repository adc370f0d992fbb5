# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Glue shared by the ipvs_* modules: argument specs and running ipvsadm through AnsibleModule.

The logic (parsing, planning, rendering) lives in ipvs.py; this file only runs commands:
``module.get_bin_path('ipvsadm', required=True)``, ``module.run_command`` with argument lists (never a shell string)
and ``LANG=C LC_ALL=C``, and turns failures into fail_json with a message from ipvs.explain_failure().
"""

from __future__ import annotations

from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs

C_LOCALE = {"LANG": "C", "LC_ALL": "C"}

SAVE_ARGS = ["-S", "-n"]
LIST_ARGS = ["-L", "-n"]
THRESHOLDS_ARGS = ["-L", "-n", "--thresholds"]
STATS_ARGS = ["-L", "-n", "--stats", "--exact"]
TIMEOUT_ARGS = ["-L", "--timeout"]
RESTORE_ARGS = ["-R"]  # restore WITHOUT flushing; ipvsadm-restore (which runs -C first) is never used


# ---------------------------------------------------------------------------------------------------------------------
# Argument specs (documented in the cosyvoice.cluster.ipvs doc fragment)
# ---------------------------------------------------------------------------------------------------------------------


def service_identity_spec():
    return {
        "protocol": {"type": "str", "choices": list(ipvs.PROTOCOLS)},
        "address": {"type": "str"},
        "port": {"type": "int"},
        "fwmark": {"type": "int"},
        "family": {"type": "str", "choices": list(ipvs.FAMILIES)},
    }


def service_config_spec():
    return {
        "scheduler": {"type": "str", "default": ipvs.DEFAULT_SCHEDULER, "choices": list(ipvs.SCHEDULERS)},
        "scheduler_flags": {"type": "list", "elements": "str", "default": [], "choices": list(ipvs.SCHEDULER_FLAGS)},
        "persistence_timeout": {"type": "int", "default": 0},
        "persistence_netmask": {"type": "str"},
        "one_packet_scheduling": {"type": "bool", "default": False},
        "persistence_engine": {"type": "str", "choices": list(ipvs.PERSISTENCE_ENGINES)},
    }


def destination_config_spec():
    return {
        "forward": {"type": "str", "default": ipvs.DEFAULT_FORWARD, "choices": list(ipvs.FORWARD_METHODS)},
        "weight": {"type": "int", "default": ipvs.DEFAULT_WEIGHT},
        "upper_threshold": {"type": "int", "default": 0},
        "lower_threshold": {"type": "int", "default": 0},
        "tunnel_type": {"type": "str", "choices": list(ipvs.TUNNEL_TYPES)},
        "tunnel_port": {"type": "int"},
        "tunnel_checksum": {"type": "str", "choices": list(ipvs.TUNNEL_CHECKSUMS)},
    }


SERVICE_MUTUALLY_EXCLUSIVE = [("address", "fwmark"), ("port", "fwmark"), ("protocol", "fwmark")]
SERVICE_REQUIRED_ONE_OF = [("address", "fwmark")]
SERVICE_REQUIRED_TOGETHER = [("address", "port")]


# ---------------------------------------------------------------------------------------------------------------------
# Running ipvsadm
# ---------------------------------------------------------------------------------------------------------------------


class Ipvsadm:
    """ipvsadm through an AnsibleModule. Every failure ends the module with fail_json."""

    def __init__(self, module):
        self.module = module
        self.path = module.get_bin_path("ipvsadm", required=True, opt_dirs=["/usr/sbin", "/sbin"])

    def run(self, args, data=None):
        cmd = [self.path, *args]
        if data is None:
            return self.module.run_command(cmd, environ_update=C_LOCALE)
        return self.module.run_command(cmd, data=data, binary_data=True, environ_update=C_LOCALE)

    def fail(self, msg, result=None, **kwargs):
        data = dict(result or {})
        data.update(kwargs)
        self.module.fail_json(msg=msg, **data)

    def read(self, args, result=None):
        rc, out, err = self.run(args)
        if rc != 0:
            self.fail(
                ipvs.explain_failure(err, rc),
                result,
                rc=rc,
                stdout=out,
                stderr=err,
                cmd=" ".join(["ipvsadm", *args]),
            )
        return out

    def read_table(self, thresholds=False, listing=False, stats=False, timeouts=False, result=None):
        """The current table: ``-S -n`` is the authority on what exists, the listings add numbers to it."""
        save = self.read(SAVE_ARGS, result)
        listings = []
        if thresholds:
            listings.append(("ipvsadm -L -n --thresholds", self.read(THRESHOLDS_ARGS, result)))
        if listing:
            listings.append(("ipvsadm -L -n", self.read(LIST_ARGS, result)))
        if stats:
            listings.append(("ipvsadm -L -n --stats --exact", self.read(STATS_ARGS, result)))
        timeout_text = self.read(TIMEOUT_ARGS, result) if timeouts else None
        try:
            table = ipvs.build_table(save, listings, timeout_text)
        except ipvs.IpvsParseError as exc:
            self.fail(str(exc), result)
        for warning in table.warnings:
            self.module.warn(warning)
        return table

    def read_listing(self):
        """``ipvsadm -L -n`` alone: weights and ActiveConn/InActConn, for the drain wait loop."""
        try:
            return ipvs.parse_listing(self.read(LIST_ARGS), "ipvsadm -L -n")
        except ipvs.IpvsParseError as exc:
            self.fail(str(exc))
            return None

    def execute(self, ops, result, done=()):
        """One ipvsadm process per operation (ipvs_service, ipvs_real_server).

        On a failure ``changed`` and ``commands`` report what was done before it (``done``: operations run by an
        earlier call of the same task); ``cmd`` is the command that failed.
        """
        done = list(done)
        for op in ops:
            rc, out, err = self.run(op.argv())
            if rc != 0:
                failed = dict(result or {}, changed=bool(done), commands=ipvs.command_lines(done))
                self.fail(
                    ipvs.explain_failure(err, rc, [op]),
                    failed,
                    rc=rc,
                    stdout=out,
                    stderr=err,
                    cmd="ipvsadm " + op.line(),
                )
            done.append(op)

    def execute_batch(self, ops):
        """All operations in ONE ``ipvsadm -R`` process. Returns (rc, stdout, stderr): the caller verifies."""
        return self.run(RESTORE_ARGS, data=ipvs.render_restore(ops))


def base_result(ops):
    return {"changed": bool(ops), "commands": ipvs.command_lines(ops)}


def fail_on_value_error(module, func, *args, **kwargs):
    """Call a builder from ipvs.py; an IpvsValueError becomes fail_json before ipvsadm is ever run."""
    try:
        return func(*args, **kwargs)
    except ipvs.IpvsValueError as exc:
        module.fail_json(msg=str(exc))
        raise  # not reached: fail_json exits
