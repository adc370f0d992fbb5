# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cosyvoice.cluster.ipvs_table glue: one `ipvsadm -R` per change set, verified by reading the table back."""

from ansible_collections.cosyvoice.cluster.plugins.modules import ipvs_table
from ipvs_harness import ok

SAVE = "-S -n"
THRESHOLDS = "-L -n --thresholds"
TIMEOUT = "-L --timeout"
RESTORE = "-R"
V4 = "192.168.50.100"

# The recorded `traffic` table declared: one DR service, rr, three nodes of weight 1.
TRAFFIC = {
    "address": V4,
    "port": 7860,
    "scheduler": "rr",
    "destinations": [{"address": "192.168.50.21"}, {"address": "192.168.50.22"}, {"address": "192.168.50.23"}],
}
TRAFFIC_THRESHOLDS = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n"
    "  -> RemoteAddress:Port\n"
)


def test_create_from_empty_in_one_ipvsadm_process(run_module, recorded):
    stdin = (
        "-A -t 192.168.50.100:7860 -s rr\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 1\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.22:7860 -g -w 1\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 1\n"
    )
    states = {
        # before, then after: the recorded table is exactly what this task declares
        SAVE: [ok(recorded("empty.save.txt")), ok(recorded("traffic.save.txt"))],
        THRESHOLDS: [ok(recorded("empty.ln.txt")), ok(TRAFFIC_THRESHOLDS)],
        RESTORE: ok(),
    }
    result, fake = run_module(ipvs_table, {"services": [TRAFFIC]}, states, diff=True)
    assert fake.calls == [SAVE, THRESHOLDS, RESTORE, SAVE, THRESHOLDS]
    assert fake.stdin[2] == stdin
    assert result["changed"] is True
    assert result["commands"] == ["ipvsadm " + line for line in stdin.splitlines()]
    assert result["diff"] == {"before": "", "after": recorded("traffic.save.txt")}
    assert [d["address"] for d in result["services"][0]["destinations"]] == [
        "192.168.50.21",
        "192.168.50.22",
        "192.168.50.23",
    ]


def test_idempotent(run_module, recorded):
    states = {SAVE: ok(recorded("traffic.save.txt")), THRESHOLDS: ok(TRAFFIC_THRESHOLDS)}
    result, fake = run_module(ipvs_table, {"services": [TRAFFIC], "purge": True}, states)
    assert (result["changed"], result["commands"], fake.calls) == (False, [], [SAVE, THRESHOLDS])


def test_check_mode_purge_of_the_recorded_rich_table(run_module, recorded):
    states = {SAVE: ok(recorded("rich.save.txt")), THRESHOLDS: ok(recorded("rich.ln_thresholds.txt"))}
    result, fake = run_module(ipvs_table, {"services": [TRAFFIC], "purge": True}, states, check_mode=True, diff=True)
    assert fake.calls == [SAVE, THRESHOLDS]  # nothing written
    assert result["changed"] is True
    assert result["commands"] == [
        "ipvsadm -E -t 192.168.50.100:7860 -s rr",
        "ipvsadm -e -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 1",
        "ipvsadm -e -t 192.168.50.100:7860 -r 192.168.50.22:7860 -g -w 1",
        "ipvsadm -e -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 1",
        "ipvsadm -D -t 192.168.50.100:8001",
        "ipvsadm -D -t 192.168.50.101:443",
        "ipvsadm -D -u 192.168.50.100:53",
        "ipvsadm -D -t [2001:db8::100]:80",
        "ipvsadm -D -f 7",
        "ipvsadm -D -f 9 -6",
    ]
    assert result["diff"]["after"] == recorded("traffic.save.txt")


def test_partial_failure_is_detected_by_reading_back(run_module, recorded):
    """ipvsadm -R reports only its last line in its exit status: the module reads the table back."""
    svc = {"address": V4, "port": 9000, "scheduler": "twos", "destinations": [{"address": "192.168.50.21"}]}
    states = {
        SAVE: ok(recorded("traffic.save.txt")),
        THRESHOLDS: ok(TRAFFIC_THRESHOLDS),
        RESTORE: (255, "", "Scheduler or persistence engine not found\nService not defined\n"),
    }
    result, fake = run_module(ipvs_table, {"services": [svc]}, states)
    assert fake.calls == [SAVE, THRESHOLDS, RESTORE, SAVE, THRESHOLDS]
    assert result["failed"] is True
    assert result["msg"].startswith(
        "ipvsadm -R left 2 of 2 change(s) unapplied: scheduler twos not available in this kernel"
    )
    assert result["changed"] is False  # the table read back is the one before
    assert result["unapplied"] == [
        "ipvsadm -A -t 192.168.50.100:9000 -s twos",
        "ipvsadm -a -t 192.168.50.100:9000 -r 192.168.50.21:9000 -g -w 1",
    ]


def test_timeouts(run_module, recorded):
    states = {
        SAVE: ok(recorded("traffic.save.txt")),
        THRESHOLDS: ok(TRAFFIC_THRESHOLDS),
        TIMEOUT: [ok(recorded("traffic.timeout.txt")), ok("Timeout (tcp tcpfin udp): 900 30 300\n")],
        RESTORE: ok(),
    }
    result, fake = run_module(ipvs_table, {"services": [TRAFFIC], "timeouts": {"tcpfin": 30}}, states, diff=True)
    assert fake.stdin[fake.calls.index(RESTORE)] == "--set 0 30 0\n"
    assert result["commands"] == ["ipvsadm --set 0 30 0"]
    assert result["diff"]["before"].startswith("--set 900 120 300\n")
    assert result["diff"]["after"].startswith("--set 900 30 300\n")


def test_two_hundred_destinations_one_process(run_module, recorded):
    dests = [{"address": f"10.1.0.{i}", "weight": 10} for i in range(1, 201)]
    after = "-A -t 192.168.50.100:7860 -s rr\n" + "".join(
        f"-a -t 192.168.50.100:7860 -r 10.1.0.{i}:7860 -g -w 10\n" for i in range(1, 201)
    )
    states = {
        SAVE: [ok(""), ok(after)],
        THRESHOLDS: [ok(recorded("empty.ln.txt")), ok(TRAFFIC_THRESHOLDS)],
        RESTORE: ok(),
    }
    result, fake = run_module(ipvs_table, {"services": [dict(TRAFFIC, destinations=dests)]}, states)
    assert fake.calls.count(RESTORE) == 1
    assert len(fake.writes) == 1
    assert len(fake.stdin[2].splitlines()) == 201
    assert len(result["commands"]) == 201


def test_invalid_destination_is_reported_with_its_location(run_module):
    svc = dict(TRAFFIC, destinations=[{"address": "192.168.50.21"}, {"address": "node2"}])
    result, fake = run_module(ipvs_table, {"services": [svc]}, {})
    assert result["failed"] is True
    assert result["msg"].startswith("services[0].destinations[1]: invalid address 'node2'")
    assert fake.calls == []


def test_duplicate_destination(run_module):
    svc = dict(TRAFFIC, destinations=[{"address": "192.168.50.21"}, {"address": "192.168.50.21", "weight": 3}])
    result, _ = run_module(ipvs_table, {"services": [svc]}, {})
    assert "destination 192.168.50.21:7860 is listed twice" in result["msg"]
