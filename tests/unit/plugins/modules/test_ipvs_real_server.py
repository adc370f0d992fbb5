# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cosyvoice.cluster.ipvs_real_server glue: add/edit/drain/remove, the drain wait loop and graceful removal."""

import pytest
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs
from ansible_collections.cosyvoice.cluster.plugins.modules import ipvs_real_server
from ipvs_harness import ok

SAVE = "-S -n"
THRESHOLDS = "-L -n --thresholds"
LIST = "-L -n"
V4 = "192.168.50.100"
SERVICE = {"address": V4, "port": 7860}
DRAIN_21 = "-e -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 0"
DELETE_21 = "-d -t 192.168.50.100:7860 -r 192.168.50.21:7860"


class FakeTime:
    """Stands in for the time module inside ipvs.py: sleeping advances the clock, nothing really waits."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(ipvs, "time", fake)
    return fake


def rich(recorded):
    return {SAVE: ok(recorded("rich.save.txt")), THRESHOLDS: ok(recorded("rich.ln_thresholds.txt"))}


def active(recorded, handwritten):
    """The recorded `active` table: two TCP connections held open from the client, one on .21."""
    return {SAVE: ok(recorded("traffic.save.txt")), THRESHOLDS: ok(handwritten("active.ln_thresholds.txt"))}


def test_add_destination(run_module, recorded):
    add = "-a -t 192.168.50.100:7860 -r 192.168.50.24:7860 -g -w 100 -x 500 -y 400"
    args = dict(SERVICE, server_address="192.168.50.24", weight=100, upper_threshold=500, lower_threshold=400)
    result, fake = run_module(ipvs_real_server, args, {**rich(recorded), add: ok()}, diff=True)
    assert fake.calls == [SAVE, THRESHOLDS, add]
    assert result["changed"] is True
    assert result["commands"] == ["ipvsadm " + add]
    assert result["diff"] == {"before": "", "after": add + "\n"}
    assert result["destination"]["weight"] == 100


def test_idempotent_with_thresholds(run_module, recorded):
    args = dict(SERVICE, server_address="192.168.50.23", weight=50, upper_threshold=200, lower_threshold=10)
    result, fake = run_module(ipvs_real_server, args, rich(recorded), diff=True)
    assert (result["changed"], result["commands"], fake.calls) == (False, [], [SAVE, THRESHOLDS])
    assert result["connections"] == {"active": 0, "inactive": 0}


def test_idempotent_nat_destination_on_its_own_port(run_module, recorded):
    args = {"address": "192.168.50.101", "port": 443, "server_address": "192.168.50.21", "server_port": 8443}
    args.update(forward="nat", weight=3)
    result, fake = run_module(ipvs_real_server, args, rich(recorded))
    assert (result["changed"], fake.calls) == (False, [SAVE, THRESHOLDS])


def test_edit_in_place(run_module, recorded):
    edit = "-e -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 50"
    args = dict(SERVICE, server_address="192.168.50.23", weight=50)
    result, fake = run_module(ipvs_real_server, args, {**rich(recorded), edit: ok()})
    assert fake.calls == [SAVE, THRESHOLDS, edit]
    assert result["changes"] == ["upper_threshold", "lower_threshold"]


def test_check_mode_only_plans(run_module, recorded):
    args = dict(SERVICE, server_address="192.168.50.21", weight=7)
    result, fake = run_module(ipvs_real_server, args, rich(recorded), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["commands"] == ["ipvsadm -e -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 7"]
    assert fake.calls == [SAVE, THRESHOLDS]
    assert result["diff"]["before"] == "-a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 100\n"
    assert result["diff"]["after"] == "-a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 7\n"


def test_drained_keeps_thresholds(run_module, recorded):
    drain = "-e -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 0 -x 200 -y 10"
    args = dict(SERVICE, server_address="192.168.50.23", state="drained")
    result, fake = run_module(ipvs_real_server, args, {**rich(recorded), drain: ok()})
    assert fake.calls == [SAVE, THRESHOLDS, drain]
    assert result["destination"]["weight"] == 0
    result, fake = run_module(ipvs_real_server, dict(args, server_address="192.168.50.22"), rich(recorded))
    assert (result["changed"], fake.calls) == (False, [SAVE, THRESHOLDS])  # already weight 0


def test_drained_wait_polls_until_active_is_zero(run_module, recorded, handwritten, fake_time):
    polls = [ok(recorded("active.ln.txt")), ok(recorded("drained.ln.txt")), ok(recorded("traffic.ln.txt"))]
    args = dict(SERVICE, server_address="192.168.50.21", state="drained", wait=True, timeout=30)
    result, fake = run_module(ipvs_real_server, args, {**active(recorded, handwritten), DRAIN_21: ok(), LIST: polls})
    assert fake.calls == [SAVE, THRESHOLDS, DRAIN_21, LIST, LIST, LIST]
    assert result["changed"] is True
    assert result["connections"] == {"active": 0, "inactive": 10}
    assert result["waited"] == 2.0
    assert fake_time.sleeps == [1.0, 1.0]
    assert result["destination"]["active_connections"] == 0


def test_drained_wait_timeout_reports_what_is_connected(run_module, recorded, handwritten, fake_time):
    args = dict(SERVICE, server_address="192.168.50.21", state="drained", wait=True, timeout=5, poll_interval=2)
    responses = {**active(recorded, handwritten), DRAIN_21: ok(), LIST: ok(recorded("drained.ln.txt"))}
    result, fake = run_module(ipvs_real_server, args, responses)
    assert result["failed"] is True
    assert result["changed"] is True  # the weight was set to 0 before the wait
    assert result["msg"].startswith(
        "timed out after 5 s waiting for destination 192.168.50.21:7860 of TCP 192.168.50.100:7860 to drain: "
        "1 active and 10 inactive connection(s) still connected"
    )
    assert result["connections"] == {"active": 1, "inactive": 10}
    assert fake.calls == [SAVE, THRESHOLDS, DRAIN_21, LIST, LIST, LIST, LIST]
    assert fake_time.sleeps == [2.0, 2.0, 1.0]


def test_wait_inactive(run_module, recorded, handwritten, fake_time):
    args = dict(SERVICE, server_address="192.168.50.21", state="drained", wait=True, wait_inactive=True, timeout=2)
    responses = {**active(recorded, handwritten), DRAIN_21: ok(), LIST: ok(recorded("traffic.ln.txt"))}
    result, _ = run_module(ipvs_real_server, args, responses)
    assert result["failed"] is True
    assert "0 active and 10 inactive" in result["msg"]
    assert "waited for active and inactive connections" in result["msg"]


def test_graceful_absent_drains_waits_then_deletes(run_module, recorded, handwritten, fake_time):
    polls = [ok(recorded("drained.ln.txt")), ok(recorded("traffic.ln.txt"))]
    args = dict(SERVICE, server_address="192.168.50.21", state="absent", graceful=True, timeout=10)
    responses = {**active(recorded, handwritten), DRAIN_21: ok(), LIST: polls, DELETE_21: ok()}
    result, fake = run_module(ipvs_real_server, args, responses, diff=True)
    assert fake.calls == [SAVE, THRESHOLDS, DRAIN_21, LIST, LIST, DELETE_21]
    assert result["commands"] == ["ipvsadm " + DRAIN_21, "ipvsadm " + DELETE_21]
    assert (result["changed"], result["destination"]) == (True, None)
    assert result["diff"]["after"] == ""


def test_graceful_absent_timeout_keeps_the_drained_destination(run_module, recorded, handwritten, fake_time):
    args = dict(SERVICE, server_address="192.168.50.21", state="absent", graceful=True, timeout=1)
    responses = {**active(recorded, handwritten), DRAIN_21: ok(), LIST: ok(recorded("drained.ln.txt"))}
    result, fake = run_module(ipvs_real_server, args, responses)
    assert result["failed"] is True
    assert DELETE_21 not in fake.calls
    assert result["commands"] == ["ipvsadm " + DRAIN_21]
    assert "1 active and 10 inactive" in result["msg"]


def test_graceful_absent_check_mode_never_waits(run_module, recorded, handwritten):
    args = dict(SERVICE, server_address="192.168.50.21", state="absent", graceful=True)
    result, fake = run_module(ipvs_real_server, args, active(recorded, handwritten), check_mode=True)
    assert result["commands"] == ["ipvsadm " + DRAIN_21, "ipvsadm " + DELETE_21]
    assert fake.calls == [SAVE, THRESHOLDS]


def test_absent_without_grace(run_module, recorded):
    args = {"fwmark": 7, "server_address": "192.168.50.21", "state": "absent"}
    result, fake = run_module(ipvs_real_server, args, {**rich(recorded), "-d -f 7 -r 192.168.50.21:0": ok()})
    assert fake.calls == [SAVE, THRESHOLDS, "-d -f 7 -r 192.168.50.21:0"]
    result, fake = run_module(ipvs_real_server, dict(args, server_address="192.168.50.29"), rich(recorded))
    assert (result["changed"], fake.calls) == (False, [SAVE, THRESHOLDS])


def test_missing_service(run_module, recorded):
    args = {"address": "192.168.50.200", "port": 80, "server_address": "192.168.50.21"}
    result, fake = run_module(ipvs_real_server, args, rich(recorded))
    assert result["failed"] is True
    assert "virtual service TCP 192.168.50.200:80 does not exist" in result["msg"]
    result, fake = run_module(ipvs_real_server, args, rich(recorded), check_mode=True)
    assert result["changed"] is True  # a service created by an earlier task in check mode
    assert fake.writes == []


def test_dr_port_mismatch_is_a_warning_not_a_change(run_module, recorded):
    args = dict(SERVICE, server_address="192.168.50.21", server_port=8080, weight=100)
    result, fake = run_module(ipvs_real_server, args, rich(recorded))
    assert (result["changed"], fake.writes) == (False, [])
    assert any("ipvsadm forces it" in w for w in result.get("warnings", []))


def test_ipv6_destination(run_module, recorded):
    add = "-a -t [2001:db8::100]:80 -r [2001:db8::24]:80 -g -w 1"
    args = {"address": "2001:db8::100", "port": 80, "server_address": "2001:db8::24"}
    result, fake = run_module(ipvs_real_server, args, {**rich(recorded), add: ok()})
    assert fake.calls == [SAVE, THRESHOLDS, add]
    result, _ = run_module(ipvs_real_server, dict(args, server_address="192.168.50.24"), rich(recorded))
    assert "only tunnel (tun) forwarding may mix address families" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(SERVICE, server_address="node1"), "invalid server_address 'node1'"),
        (dict(SERVICE, server_address="192.168.50.21", state="drained", poll_interval=0), "poll_interval"),
        (dict(SERVICE, server_address="192.168.50.21", forward="bounce"), "value of forward must be one of"),
    ],
)
def test_invalid_input(run_module, args, message):
    result, fake = run_module(ipvs_real_server, args, {})
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake.calls == []


def test_failure_after_the_drain_reports_what_was_done(run_module, recorded, handwritten, fake_time):
    args = dict(SERVICE, server_address="192.168.50.21", state="absent", graceful=True, timeout=10)
    responses = {
        **active(recorded, handwritten),
        DRAIN_21: ok(),
        LIST: ok(recorded("traffic.ln.txt")),
        DELETE_21: (255, "", "No such destination\n"),
    }
    result, fake = run_module(ipvs_real_server, args, responses)
    assert fake.calls == [SAVE, THRESHOLDS, DRAIN_21, LIST, DELETE_21]
    assert result["failed"] is True
    assert (result["changed"], result["commands"]) == (True, ["ipvsadm " + DRAIN_21])
    assert result["cmd"] == "ipvsadm " + DELETE_21
    assert result["msg"].startswith("the IPVS table changed while this task ran")
