# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cosyvoice.cluster.ipvs_info glue on recorded output."""

from ansible_collections.cosyvoice.cluster.plugins.modules import ipvs_info
from ipvs_harness import ok

SAVE = "-S -n"
THRESHOLDS = "-L -n --thresholds"
STATS = "-L -n --stats --exact"
TIMEOUT = "-L --timeout"


def responses(recorded, state, thresholds=None):
    return {
        SAVE: ok(recorded(f"{state}.save.txt")),
        THRESHOLDS: ok(thresholds if thresholds is not None else recorded(f"{state}.ln_thresholds.txt")),
        STATS: ok(recorded(f"{state}.ln_stats_exact.txt")),
        TIMEOUT: ok(recorded(f"{state}.timeout.txt")),
    }


def test_rich_table(run_module, recorded):
    result, fake = run_module(ipvs_info, {}, responses(recorded, "rich"), check_mode=True)
    assert fake.calls == [SAVE, THRESHOLDS, STATS, TIMEOUT]
    assert result["changed"] is False
    assert (result["version"], result["table_size"]) == ("1.2.1", 4096)
    assert result["timeouts"] == {"tcp": 3600, "tcpfin": 60, "udp": 120}
    services = result["services"]
    assert [(s["protocol"], s["address"], s["port"], s["fwmark"], s["family"]) for s in services] == [
        ("tcp", "192.168.50.100", 7860, None, "ipv4"),
        ("tcp", "192.168.50.100", 8001, None, "ipv4"),
        ("tcp", "192.168.50.101", 443, None, "ipv4"),
        ("udp", "192.168.50.100", 53, None, "ipv4"),
        ("tcp", "2001:db8::100", 80, None, "ipv6"),
        ("fwmark", None, None, 7, "ipv4"),
        ("fwmark", None, None, 9, "ipv6"),
    ]
    gradio = services[0]
    assert (gradio["scheduler"], gradio["persistent"], gradio["persistence_timeout"], gradio["netmask"]) == (
        "wlc",
        True,
        300,
        "255.255.255.255",
    )
    assert [
        (d["address"], d["weight"], d["upper_threshold"], d["lower_threshold"]) for d in gradio["destinations"]
    ] == [
        ("192.168.50.21", 100, 0, 0),
        ("192.168.50.22", 0, 0, 0),
        ("192.168.50.23", 50, 200, 10),
    ]
    assert services[1]["flags"] == ["sh-fallback", "sh-port"]
    assert (services[2]["netmask"], [d["forward"] for d in services[2]["destinations"]]) == (
        "255.255.255.0",
        ["nat", "tun"],
    )
    assert services[4]["netmask"] == "64"
    assert services[3]["netmask"] is None
    assert gradio["stats"]["exact"] is True


def test_traffic_counters_and_connections(run_module, recorded, handwritten):
    thresholds = handwritten("active.ln_thresholds.txt")  # the traffic table with connections held open
    states = responses(recorded, "traffic", thresholds)
    states[STATS] = ok(recorded("active.ln_stats_exact.txt"))
    result, _ = run_module(ipvs_info, {}, states)
    (svc,) = result["services"]
    assert (svc["active_connections"], svc["inactive_connections"]) == (2, 31)
    assert svc["stats"] == {"conns": 33, "inpkts": 178, "outpkts": 0, "inbytes": 12010, "outbytes": 0, "exact": True}
    first = svc["destinations"][0]
    assert (first["address"], first["active_connections"], first["inactive_connections"]) == ("192.168.50.21", 1, 10)
    assert first["stats"]["conns"] == 11


def test_empty_table_without_stats(run_module, recorded):
    states = {SAVE: ok(""), THRESHOLDS: ok(recorded("empty.ln.txt")), TIMEOUT: ok(recorded("empty.timeout.txt"))}
    result, fake = run_module(ipvs_info, {"stats": False}, states)
    assert fake.calls == [SAVE, THRESHOLDS, TIMEOUT]
    assert result["services"] == []
    assert result["timeouts"] == {"tcp": 900, "tcpfin": 120, "udp": 300}


def test_ipvs_not_available(run_module, handwritten):
    result, fake = run_module(ipvs_info, {}, {SAVE: (2, "", handwritten("no_ipvs.stderr.txt"))})
    assert result["failed"] is True
    assert "modprobe ip_vs" in result["msg"]
    assert fake.calls == [SAVE]
