# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cosyvoice.cluster.ipvs_service glue: exact ipvsadm argument lists, idempotence, check mode, diff, errors."""

import pytest
from ansible_collections.cosyvoice.cluster.plugins.modules import ipvs_service
from ipvs_harness import ok

SAVE = "-S -n"
V4 = "192.168.50.100"


def test_add_service(run_module, recorded):
    result, fake = run_module(
        ipvs_service,
        {"address": V4, "port": 9000, "scheduler": "sh", "scheduler_flags": ["sh-fallback"]},
        {SAVE: ok(recorded("traffic.save.txt")), "-A -t 192.168.50.100:9000 -s sh -b sh-fallback": ok()},
        diff=True,
    )
    assert fake.calls == [SAVE, "-A -t 192.168.50.100:9000 -s sh -b sh-fallback"]
    assert result["changed"] is True
    assert result["commands"] == ["ipvsadm -A -t 192.168.50.100:9000 -s sh -b sh-fallback"]
    assert result["diff"] == {"before": "", "after": "-A -t 192.168.50.100:9000 -s sh -b sh-fallback\n"}
    assert result["service"]["flags"] == ["sh-fallback"]
    assert run_module.bin_path_calls == [("ipvsadm", True)]


@pytest.mark.parametrize(
    "args",
    [
        {"address": V4, "port": 7860, "scheduler": "wlc", "persistence_timeout": 300},
        {"address": V4, "port": 8001, "scheduler": "sh", "scheduler_flags": ["sh-fallback", "sh-port"]},
        {
            "address": "192.168.50.101",
            "port": 443,
            "scheduler": "mh",
            "scheduler_flags": ["mh-port", "mh-fallback"],
            "persistence_timeout": 60,
            "persistence_netmask": "255.255.255.0",
        },
        {"protocol": "udp", "address": V4, "port": 53, "scheduler": "rr"},
        {
            "address": "2001:db8::100",
            "port": 80,
            "scheduler": "lc",
            "persistence_timeout": 120,
            "persistence_netmask": "64",
        },
        {"fwmark": 7, "scheduler": "wrr"},
        {"fwmark": 9, "family": "ipv6", "scheduler": "nq"},
    ],
)
def test_idempotent_on_recorded_table(run_module, recorded, args):
    result, fake = run_module(ipvs_service, args, {SAVE: ok(recorded("rich.save.txt"))}, diff=True)
    assert result["changed"] is False
    assert result["commands"] == []
    assert fake.calls == [SAVE]
    assert result["diff"]["before"] == result["diff"]["after"] != ""


def test_edit_in_place_never_deletes(run_module, recorded):
    edit = "-E -t 192.168.50.100:7860 -s sh -p 300 -b sh-fallback"
    args = {
        "address": V4,
        "port": 7860,
        "scheduler": "sh",
        "scheduler_flags": ["sh-fallback"],
        "persistence_timeout": 300,
    }
    result, fake = run_module(ipvs_service, args, {SAVE: ok(recorded("rich.save.txt")), edit: ok()}, diff=True)
    assert fake.calls == [SAVE, edit]
    assert result["changes"] == ["scheduler", "scheduler_flags"]
    assert result["diff"] == {
        "before": "-A -t 192.168.50.100:7860 -s wlc -p 300\n",
        "after": "-A -t 192.168.50.100:7860 -s sh -p 300 -b sh-fallback\n",
    }


def test_check_mode_only_plans(run_module, recorded):
    args = {"address": V4, "port": 7860, "scheduler": "rr"}
    result, fake = run_module(ipvs_service, args, {SAVE: ok(recorded("rich.save.txt"))}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["commands"] == ["ipvsadm -E -t 192.168.50.100:7860 -s rr"]
    assert fake.calls == [SAVE]
    assert result["service"]["scheduler"] == "rr"
    assert result["diff"]["after"] == "-A -t 192.168.50.100:7860 -s rr\n"


def test_absent(run_module, recorded):
    result, fake = run_module(
        ipvs_service,
        {"fwmark": 9, "family": "ipv6", "state": "absent"},
        {SAVE: ok(recorded("rich.save.txt")), "-D -f 9 -6": ok()},
        diff=True,
    )
    assert fake.calls == [SAVE, "-D -f 9 -6"]
    assert (result["changed"], result["service"]) == (True, None)
    assert result["diff"] == {"before": "-A -f 9 -6 -s nq\n", "after": ""}
    result, fake = run_module(ipvs_service, {"fwmark": 9, "state": "absent"}, {SAVE: ok(recorded("rich.save.txt"))})
    assert (result["changed"], fake.calls) == (False, [SAVE])


def test_ipvs_not_available(run_module, handwritten):
    result, fake = run_module(
        ipvs_service, {"address": V4, "port": 80}, {SAVE: (2, "", handwritten("no_ipvs.stderr.txt"))}
    )
    assert result["failed"] is True
    assert result["msg"].startswith("IPVS is not available on this host")
    assert "modprobe ip_vs" in result["msg"]
    assert fake.calls == [SAVE]


def test_scheduler_missing_in_kernel(run_module, recorded):
    add = "-A -t 192.168.50.100:9000 -s twos"
    result, fake = run_module(
        ipvs_service,
        {"address": V4, "port": 9000, "scheduler": "twos"},
        {SAVE: ok(recorded("rich.save.txt")), add: (255, "", "Scheduler or persistence engine not found\n")},
    )
    assert result["failed"] is True
    assert result["msg"].startswith("scheduler twos not available in this kernel (modprobe ip_vs_twos)")
    assert result["cmd"] == "ipvsadm " + add
    assert (result["changed"], result["commands"]) == (False, [])  # nothing was done
    assert fake.calls == [SAVE, add]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"address": "vip.example", "port": 80}, "invalid address 'vip.example'"),
        ({"address": V4, "port": 65536}, "invalid port 65536"),
        ({"address": V4, "port": 80, "scheduler": "rr", "scheduler_flags": ["mh-port"]}, "needs scheduler 'mh'"),
    ],
)
def test_invalid_input_fails_before_running_ipvsadm(run_module, args, message):
    result, fake = run_module(ipvs_service, args, {})
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake.calls == []


def test_argument_spec_rejects_address_with_fwmark(run_module):
    result, fake = run_module(ipvs_service, {"address": V4, "port": 80, "fwmark": 3}, {})
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    assert fake.calls == []


def test_unparseable_output_is_an_error(run_module):
    result, _ = run_module(ipvs_service, {"address": V4, "port": 80}, {SAVE: ok("-A -t what -s rr\n")})
    assert result["failed"] is True
    assert "cannot parse `ipvsadm -S -n` output, line 1" in result["msg"]
