# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsers of plugins/module_utils/ipvs.py against ipvsadm output recorded from a real kernel."""

import pytest
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs

V4 = "192.168.50.100"
GRADIO = ("tcp", V4, 7860)
SH = ("tcp", V4, 8001)
MH = ("tcp", "192.168.50.101", 443)
DNS = ("udp", V4, 53)
V6 = ("tcp", "2001:db8::100", 80)
FWM7 = ("fwmark", 7, "ipv4")
FWM9 = ("fwmark", 9, "ipv6")


def rich_table(recorded, stats=True):
    listings = [("ipvsadm -L -n --thresholds", recorded("rich.ln_thresholds.txt"))]
    if stats:
        listings.append(("ipvsadm -L -n --stats --exact", recorded("rich.ln_stats_exact.txt")))
    return ipvs.build_table(recorded("rich.save.txt"), listings, recorded("rich.timeout.txt"))


# ---------------------------------------------------------------------------------------------------------------------
# Empty table
# ---------------------------------------------------------------------------------------------------------------------


def test_empty_table_all_formats(recorded):
    assert ipvs.parse_save(recorded("empty.save.txt")).services == {}
    for name in ("empty.ln.txt", "empty.ln_stats.txt", "empty.ln_stats_exact.txt", "empty.ln_rate.txt"):
        table = ipvs.parse_listing(recorded(name))
        assert table.services == {}
        assert (table.version, table.size) == ("1.2.1", 4096)
        assert table.warnings == []
    assert ipvs.parse_timeouts(recorded("empty.timeout.txt")) == {"tcp": 900, "tcpfin": 120, "udp": 300}


def test_empty_table_info(recorded):
    table = ipvs.build_table(
        recorded("empty.save.txt"),
        [("ipvsadm -L -n --stats --exact", recorded("empty.ln_stats_exact.txt"))],
        recorded("empty.timeout.txt"),
    )
    info = ipvs.table_to_info(table)
    assert info == {
        "services": [],
        "timeouts": {"tcp": 900, "tcpfin": 120, "udp": 300},
        "version": "1.2.1",
        "table_size": 4096,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Save format (ipvsadm -S -n), the authoritative configuration
# ---------------------------------------------------------------------------------------------------------------------


def test_rich_save_services(recorded):
    table = ipvs.parse_save(recorded("rich.save.txt"))
    assert list(table.services) == [GRADIO, SH, MH, DNS, V6, FWM7, FWM9]
    assert table.warnings == []

    gradio = table.services[GRADIO]
    assert (gradio.scheduler, gradio.persistence_timeout, gradio.effective_netmask) == ("wlc", 300, "255.255.255.255")
    assert gradio.flags == ()
    assert [(d.address, d.port, d.forward, d.weight) for d in gradio.destinations.values()] == [
        ("192.168.50.21", 7860, "dr", 100),
        ("192.168.50.22", 7860, "dr", 0),
        ("192.168.50.23", 7860, "dr", 50),
    ]
    # the save format has no thresholds: they stay unknown until a --thresholds listing is merged
    assert gradio.destinations[("192.168.50.23", 7860)].upper_threshold is None

    sh = table.services[SH]
    assert (sh.scheduler, sh.flags, sh.persistent) == ("sh", ("sh-fallback", "sh-port"), False)


def test_rich_save_persistence_netmask_masq_and_tunnel(recorded):
    mh = ipvs.parse_save(recorded("rich.save.txt")).services[MH]
    assert (mh.scheduler, mh.flags) == ("mh", ("mh-fallback", "mh-port"))
    assert (mh.persistence_timeout, mh.netmask) == (60, "255.255.255.0")
    masq = mh.destinations[("192.168.50.21", 8443)]
    assert (masq.forward, masq.weight) == ("nat", 3)  # NAT keeps its own port
    tun = mh.destinations[("192.168.50.22", 443)]
    assert (tun.forward, tun.weight, tun.tunnel_type) == ("tun", 2, "ipip")


def test_rich_save_ipv6_and_fwmark(recorded):
    table = ipvs.parse_save(recorded("rich.save.txt"))
    v6 = table.services[V6]
    assert (v6.family, v6.scheduler, v6.persistence_timeout, v6.netmask) == ("ipv6", "lc", 120, "64")
    assert list(v6.destinations) == [("2001:db8::21", 80), ("2001:db8::22", 80)]
    assert v6.destinations[("2001:db8::22", 80)].weight == 7

    fwm7 = table.services[FWM7]
    assert (fwm7.protocol, fwm7.fwmark, fwm7.family, fwm7.scheduler) == ("fwmark", 7, "ipv4", "wrr")
    assert (fwm7.address, fwm7.port) == (None, None)
    assert fwm7.destinations[("192.168.50.21", 0)].weight == 5  # a fwmark destination without port is :0

    fwm9 = table.services[FWM9]
    assert (fwm9.family, fwm9.scheduler) == ("ipv6", "nq")
    assert list(fwm9.destinations) == [("2001:db8::23", 0)]


def test_rich_save_round_trip(recorded):
    """Rendering the parsed table gives back what ipvsadm printed (the canonical form drops `--tun-type ipip`)."""
    text = recorded("rich.save.txt")
    rendered = ipvs.render_rules(ipvs.parse_save(text))
    expected = [line.replace(" --tun-type ipip", "") for line in text.splitlines()]
    assert sorted(rendered.splitlines()) == sorted(expected)


def test_traffic_save_round_trip(recorded):
    text = recorded("traffic.save.txt")
    assert ipvs.render_rules(ipvs.parse_save(text)) == text


def test_save_pe_ops_and_gue_gre_tunnels(handwritten):
    text = handwritten("pe_ops_tunnels.save.txt")
    table = ipvs.parse_save(text)
    svc = table.services[("udp", V4, 5060)]
    assert (svc.persistence_engine, svc.one_packet, svc.persistence_timeout) == ("sip", True, 300)
    gue = svc.destinations[("192.168.50.21", 5060)]
    assert (gue.tunnel_type, gue.tunnel_port, gue.tunnel_checksum) == ("gue", 6080, "csum")
    gre = svc.destinations[("192.168.50.22", 5060)]
    assert (gre.tunnel_type, gre.tunnel_port, gre.tunnel_checksum) == ("gre", None, "nocsum")
    assert ipvs.render_rules(table).splitlines() == text.splitlines()


def test_save_is_liberal_about_whitespace_comments_and_unknown_tokens():
    text = (
        "  -A\t-t 10.0.0.100:8000   -s wlc -p   \r\n"
        "# a comment line\n"
        "\n"
        "-a -t 10.0.0.100:8000 -r 10.0.0.11:8000 -g -w 100 --future-flag   # trailing comment\n"
    )
    table = ipvs.parse_save(text)
    svc = table.services[("tcp", "10.0.0.100", 8000)]
    assert svc.persistence_timeout == 300  # `-p` without a value is ipvsadm's default
    assert svc.destinations[("10.0.0.11", 8000)].weight == 100
    assert len(table.warnings) == 1
    assert "--future-flag" in table.warnings[0]


def test_save_long_options_and_thresholds_if_printed():
    text = (
        "--add-service --tcp-service 10.0.0.100:80 --scheduler rr\n"
        "--add-server --tcp-service 10.0.0.100:80 --real-server 10.0.0.11:8080 --masquerading --weight 3 -x 9 -y 2\n"
    )
    dest = ipvs.parse_save(text).services[("tcp", "10.0.0.100", 80)].destinations[("10.0.0.11", 8080)]
    assert (dest.forward, dest.weight, dest.upper_threshold, dest.lower_threshold) == ("nat", 3, 9, 2)


def test_ipv6_addresses_are_canonical():
    text = "-A -t [2001:DB8:0:0::100]:80 -s rr\n-a -t [2001:db8::100]:80 -r [2001:0db8::0021]:80 -g -w 1\n"
    svc = ipvs.parse_save(text).services[("tcp", "2001:db8::100", 80)]
    assert list(svc.destinations) == [("2001:db8::21", 80)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("garbage line\n", "expected a rule starting with -A or -a"),
        ("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n", "before its service"),
        ("-A -s rr\n", "no virtual service"),
        ("-A -t 10.0.0.1 -s rr\n", "bad virtual service address"),
        ("-A -t 10.0.0.1:http -s rr\n", "bad virtual service address"),
        ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -g -w 1\n", "destination without -r"),
        ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w many\n", "weight is not a number"),
        ("-A -f 0 -s rr\n", "fwmark 0 out of range"),
        ("-A -t 10.0.0.1:80 -s rr -b warp-speed\n", "unknown scheduler flag"),
        ("-A -t 10.0.0.1:80 -s\n", "option -s needs a value"),
    ],
)
def test_save_fails_clearly_on_lines_it_cannot_parse(text, reason):
    with pytest.raises(ipvs.IpvsParseError) as err:
        ipvs.parse_save(text)
    assert reason in str(err.value)
    assert "ipvsadm -S -n" in str(err.value)
    assert "line " in str(err.value)


# ---------------------------------------------------------------------------------------------------------------------
# Listings (ipvsadm -L -n and variants)
# ---------------------------------------------------------------------------------------------------------------------


def test_rich_listing_agrees_with_save(recorded):
    """`-Ln` and `-S -n` of the same table describe the same configuration."""
    saved = ipvs.parse_save(recorded("rich.save.txt"))
    listed = ipvs.parse_listing(recorded("rich.ln.txt"))
    assert list(listed.services) == list(saved.services)
    for key, svc in saved.services.items():
        other = listed.services[key]
        assert ipvs.service_changes(other, svc) == [], key
        assert other.effective_netmask == svc.effective_netmask
        for dkey, dest in svc.destinations.items():
            assert (other.destinations[dkey].forward, other.destinations[dkey].weight) == (dest.forward, dest.weight)
            assert other.destinations[dkey].active_connections == 0


def test_persistent_conn_listing(recorded):
    table = ipvs.parse_listing(recorded("rich.ln_persistent_conn.txt"))
    dest = table.services[GRADIO].destinations[("192.168.50.23", 7860)]
    assert (dest.weight, dest.persistent_connections, dest.active_connections) == (50, 0, 0)
    assert table.services[FWM9].scheduler == "nq"


def test_thresholds_are_merged_onto_the_saved_table(recorded):
    table = rich_table(recorded)
    gradio = table.services[GRADIO]
    assert (
        gradio.destinations[("192.168.50.23", 7860)].upper_threshold,
        gradio.destinations[("192.168.50.23", 7860)].lower_threshold,
    ) == (200, 10)
    assert gradio.destinations[("192.168.50.21", 7860)].upper_threshold == 0
    assert table.timeouts == {"tcp": 3600, "tcpfin": 60, "udp": 120}


def test_active_and_drained_connection_counts(recorded):
    active = ipvs.parse_listing(recorded("active.ln.txt"))
    assert ipvs.connection_counts(active, GRADIO, ("192.168.50.21", 7860)) == (1, 10, True)
    assert ipvs.connection_counts(active, GRADIO, ("192.168.50.23", 7860)) == (0, 11, True)
    drained = ipvs.parse_listing(recorded("drained.ln.txt"))
    dest = drained.services[GRADIO].destinations[("192.168.50.21", 7860)]
    assert (dest.weight, dest.active_connections, dest.inactive_connections) == (0, 1, 10)
    assert ipvs.connection_counts(drained, GRADIO, ("192.168.50.99", 7860)) == (0, 0, False)
    assert ipvs.connection_counts(drained, ("tcp", V4, 1), ("192.168.50.21", 7860)) == (0, 0, False)


def test_traffic_stats_exact_direct_routing(recorded):
    table = ipvs.parse_listing(recorded("traffic.ln_stats_exact.txt"))
    svc = table.services[GRADIO]
    assert svc.stats == {"conns": 31, "inpkts": 174, "outpkts": 0, "inbytes": 11786, "outbytes": 0, "exact": True}
    # DR: the director sees only inbound packets; destinations add up to the service
    for field in ipvs.STAT_FIELDS:
        assert sum(d.stats[field] for d in svc.destinations.values()) == svc.stats[field]
    assert all(d.stats["outpkts"] == 0 for d in svc.destinations.values())
    assert ipvs.parse_listing(recorded("traffic.ln_stats.txt")).services[GRADIO].stats == svc.stats


def test_rate_listing(recorded):
    table = ipvs.parse_listing(recorded("traffic.ln_rate.txt"))
    assert table.services[GRADIO].rates["inbps"] == 10
    assert table.services[GRADIO].destinations[("192.168.50.23", 7860)].rates["inbps"] == 10
    rich = ipvs.parse_listing(recorded("rich.ln_rate.txt"))
    assert rich.services[FWM9].rates["cps"] == 0


def test_large_counters_exact(handwritten):
    svc = ipvs.parse_listing(handwritten("large.ln_stats_exact.txt")).services[GRADIO]
    assert svc.stats == {
        "conns": 5000000000,
        "inpkts": 12884901888,
        "outpkts": 0,
        "inbytes": 123456789012345678,
        "outbytes": 0,
        "exact": True,
    }
    assert svc.destinations[("192.168.50.21", 7860)].stats["conns"] == 2**32
    assert svc.destinations[("192.168.50.21", 7860)].stats["inbytes"] == 2**40


def test_large_counters_rounded_without_exact(handwritten):
    """Without --exact ipvsadm rounds down to K/M/G/T past 10^8; the parser scales back and says it is inexact."""
    rounded = ipvs.parse_listing(handwritten("large.ln_stats.txt")).services[GRADIO]
    assert rounded.stats == {
        "conns": 5000 * 10**6,
        "inpkts": 12884 * 10**6,
        "outpkts": 0,
        "inbytes": 123456 * 10**12,
        "outbytes": 0,
        "exact": False,
    }
    dest = rounded.destinations[("192.168.50.22", 7860)].stats
    assert (dest["conns"], dest["inpkts"], dest["inbytes"]) == (705032 * 10**3, 4294 * 10**6, 123455 * 10**12)
    assert rounded.destinations[("192.168.50.23", 7860)].stats["exact"] is True  # below 10^8: printed in full
    exact = ipvs.parse_listing(handwritten("large.ln_stats_exact.txt")).services[GRADIO]
    for dkey, dest in exact.destinations.items():
        for field in ipvs.STAT_FIELDS:
            value, approx = dest.stats[field], rounded.destinations[dkey].stats[field]
            assert approx <= value <= approx * 1.001 + 1


def test_merge_stats_into_info(recorded):
    table = ipvs.build_table(
        recorded("traffic.save.txt"),
        [("ipvsadm -L -n --stats --exact", recorded("traffic.ln_stats_exact.txt"))],
        recorded("traffic.timeout.txt"),
    )
    info = ipvs.table_to_info(table)
    (svc,) = info["services"]
    assert svc["stats"]["conns"] == 31
    assert [d["stats"]["conns"] for d in svc["destinations"]] == [10, 10, 11]
    assert svc["destinations"][0]["forward"] == "dr"


def test_tun_info_listing(handwritten):
    svc = ipvs.parse_listing(handwritten("pe_ops_tunnels.ln_tun_info.txt")).services[("udp", V4, 5060)]
    assert (svc.persistence_timeout, svc.persistence_engine, svc.one_packet) == (300, "sip", True)
    dest = svc.destinations[("192.168.50.21", 5060)]
    assert (dest.forward, dest.tunnel_type, dest.tunnel_port, dest.tunnel_checksum) == ("tun", "gue", 6080, "csum")
    assert (dest.weight, dest.active_connections, dest.inactive_connections) == (1, 0, 4)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TCP  10.0.0.1:80 rr\n", "before the column header"),
        ("Prot LocalAddress:Port Scheduler Flags\n  -> 10.0.0.2:80 Route 1 0 0\n", "destination before any service"),
        (
            "Prot LocalAddress:Port Scheduler Flags\nTCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80 Route 1 0\n",
            "expected Forward",
        ),
        (
            "Prot LocalAddress:Port Scheduler Flags\nTCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80 Bounce 1 0 0\n",
            "expected Forward",
        ),
        (
            "Prot LocalAddress:Port  Conns InPkts OutPkts InBytes OutBytes\nTCP  10.0.0.1:80  1 2 3 4\n",
            "expected 5 counters",
        ),
        (
            "Prot LocalAddress:Port  Conns InPkts OutPkts InBytes OutBytes\nTCP  10.0.0.1:80  1 2 3 4 5X\n",
            "expected a number",
        ),
        ("Prot Something Else\n", "unknown listing header"),
        ("Prot LocalAddress:Port Scheduler Flags\nwhat is this\n", "unexpected line"),
    ],
)
def test_listing_fails_clearly(text, reason):
    with pytest.raises(ipvs.IpvsParseError) as err:
        ipvs.parse_listing(text)
    assert reason in str(err.value)


def test_timeout_parse_error():
    with pytest.raises(ipvs.IpvsParseError):
        ipvs.parse_timeouts("Timeout: soon\n")


def test_listing_unknown_service_token_is_a_warning():
    text = "Prot LocalAddress:Port Scheduler Flags\nTCP  10.0.0.1:80 rr shiny\n"
    table = ipvs.parse_listing(text)
    assert table.services[("tcp", "10.0.0.1", 80)].scheduler == "rr"
    assert "shiny" in table.warnings[0]


def test_merge_ignores_entries_missing_from_the_save_read(recorded):
    """A service or destination that appeared between the two reads is left out (the save read decides)."""
    table = ipvs.build_table(recorded("empty.save.txt"), [("ipvsadm -L -n", recorded("active.ln.txt"))])
    assert table.services == {}
    table = ipvs.build_table(
        "-A -t 192.168.50.100:7860 -s rr\n-a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 1\n",
        [
            (
                "ipvsadm -L -n --thresholds",
                "Prot LocalAddress:Port Uthreshold Lthreshold ActiveConn InActConn\n"
                "TCP  192.168.50.100:7860 rr\n  -> 192.168.50.21:7860 0 0 4 5\n  -> 192.168.50.22:7860 0 0 1 1\n",
            )
        ],
    )
    assert list(table.services[GRADIO].destinations) == [("192.168.50.21", 7860)]
    assert table.services[GRADIO].destinations[("192.168.50.21", 7860)].active_connections == 4
