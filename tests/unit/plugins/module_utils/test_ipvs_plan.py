# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Desired state, planning, rendering and simulation in plugins/module_utils/ipvs.py."""

import pytest
from ansible_collections.cosyvoice.cluster.plugins.module_utils import ipvs

V4 = "192.168.50.100"
GRADIO = ("tcp", V4, 7860)

# The recorded `rich` table declared in module parameters: every service must plan to nothing against it.
RICH_SERVICES = [
    {"address": V4, "port": 7860, "scheduler": "wlc", "persistence_timeout": 300},
    {"address": V4, "port": 8001, "scheduler": "sh", "scheduler_flags": ["sh-port", "sh-fallback"]},
    {
        "address": "192.168.50.101",
        "port": 443,
        "scheduler": "mh",
        "scheduler_flags": ["mh-fallback", "mh-port"],
        "persistence_timeout": 60,
        "persistence_netmask": "24",  # normalised to 255.255.255.0
    },
    {"protocol": "udp", "address": V4, "port": 53, "scheduler": "rr"},
    {
        "address": "[2001:db8::100]",
        "port": 80,
        "scheduler": "lc",
        "persistence_timeout": 120,
        "persistence_netmask": "/64",
    },
    {"fwmark": 7, "scheduler": "wrr"},
    {"fwmark": 9, "family": "ipv6", "scheduler": "nq"},
]
RICH_DESTINATIONS = {
    0: [
        {"address": "192.168.50.21", "weight": 100},
        {"address": "192.168.50.22", "weight": 0},
        {"address": "192.168.50.23", "weight": 50, "upper_threshold": 200, "lower_threshold": 10},
    ],
    1: [{"address": "192.168.50.21"}],
    2: [
        {"address": "192.168.50.21", "port": 8443, "forward": "nat", "weight": 3},
        {"address": "192.168.50.22", "forward": "tun", "weight": 2},
    ],
    3: [{"address": "192.168.50.23"}],
    4: [{"address": "2001:db8::21"}, {"address": "2001:db8::22", "weight": 7}],
    5: [{"address": "192.168.50.21", "weight": 5}],
    6: [{"address": "2001:db8::23"}],
}


@pytest.fixture
def rich(recorded):
    return ipvs.build_table(
        recorded("rich.save.txt"),
        [("ipvsadm -L -n --thresholds", recorded("rich.ln_thresholds.txt"))],
        recorded("rich.timeout.txt"),
    )


def desired_rich():
    services = []
    for i, params in enumerate(RICH_SERVICES):
        svc = ipvs.service_from_params(params)
        for dparams in RICH_DESTINATIONS[i]:
            dest, _warnings = ipvs.destination_from_params(dparams, svc)
            svc.destinations[dest.key] = dest
        services.append(svc)
    return services


def lines(ops):
    return [op.line() for op in ops]


# ---------------------------------------------------------------------------------------------------------------------
# Desired state from parameters
# ---------------------------------------------------------------------------------------------------------------------


def test_service_defaults_match_ipvsadm():
    svc = ipvs.service_from_params({"address": V4, "port": 80})
    assert (svc.protocol, svc.scheduler, svc.flags, svc.persistent, svc.one_packet) == ("tcp", "wlc", (), False, False)
    assert ipvs.Operation(ipvs.ADD_SERVICE, svc).argv() == ["-A", "-t", "192.168.50.100:80", "-s", "wlc"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"address": "director1", "port": 80}, "invalid address 'director1': not an IPv4 or IPv6 address"),
        ({"address": "10.0.0.300", "port": 80}, "invalid address"),
        ({"address": V4, "port": 70000}, "invalid port 70000: must be 0..65535"),
        ({"address": V4}, "port is required with address"),
        ({"port": 80}, "give either address"),
        ({"address": V4, "port": 80, "fwmark": 1}, "give either address"),
        ({"fwmark": 0}, "invalid fwmark 0"),
        ({"address": V4, "port": 0}, "port 0 is only allowed for a persistent service"),
        ({"address": V4, "port": 80, "scheduler": "rr", "scheduler_flags": ["sh-port"]}, "needs scheduler 'sh'"),
        ({"address": V4, "port": 80, "scheduler": "sh", "scheduler_flags": ["mh-port"]}, "needs scheduler 'mh'"),
        ({"address": V4, "port": 80, "scheduler": "fastest"}, "unknown scheduler 'fastest'"),
        ({"address": V4, "port": 80, "persistence_netmask": "255.255.255.0"}, "needs persistence_timeout"),
        ({"address": V4, "port": 80, "persistence_timeout": 99999999}, "invalid persistence_timeout"),
        ({"address": V4, "port": 80, "persistence_timeout": 60, "persistence_netmask": "255.0.255.0"}, "contiguous"),
        (
            {"address": "2001:db8::1", "port": 80, "persistence_timeout": 60, "persistence_netmask": "255.0.0.0"},
            "prefix",
        ),
        ({"address": V4, "port": 80, "one_packet_scheduling": True}, "only for UDP"),
        ({"address": V4, "port": 80, "family": "ipv6"}, "does not match"),
    ],
)
def test_service_params_are_validated(params, message):
    with pytest.raises(ipvs.IpvsValueError) as err:
        ipvs.service_from_params(params)
    assert message in str(err.value)


def test_where_prefix_in_messages():
    with pytest.raises(ipvs.IpvsValueError) as err:
        ipvs.service_from_params({"address": "nope", "port": 80}, "services[3]")
    assert str(err.value).startswith("services[3]: invalid address 'nope': not an IPv4 or IPv6 address")
    svc = ipvs.service_from_params({"address": V4, "port": 80})
    with pytest.raises(ipvs.IpvsValueError) as err:
        ipvs.destination_from_params(
            {"address": "10.0.0.1", "port": 99999, "forward": "nat"}, svc, "services[0].destinations[1]"
        )
    assert str(err.value) == "services[0].destinations[1]: invalid port 99999: must be 0..65535"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"address": "no.such.host"}, "invalid address"),
        ({"address": "2001:db8::21"}, "only tunnel (tun) forwarding may mix address families"),
        ({"address": "10.0.0.2", "weight": 70000}, "invalid weight"),
        ({"address": "10.0.0.2", "upper_threshold": -1}, "invalid upper_threshold"),
        ({"address": "10.0.0.2", "tunnel_type": "gue"}, "need forward: tun"),
        ({"address": "10.0.0.2", "forward": "tun", "tunnel_type": "gue"}, "gue needs tunnel_port"),
        ({"address": "10.0.0.2", "forward": "tun", "tunnel_port": 6080}, "gue or gre only"),
        ({"address": "10.0.0.2", "forward": "tun", "tunnel_type": "gre", "tunnel_port": 1}, "does not apply"),
        ({"address": "10.0.0.2", "forward": "nat", "port": -1}, "invalid port"),
    ],
)
def test_destination_params_are_validated(params, message):
    svc = ipvs.service_from_params({"address": V4, "port": 80})
    with pytest.raises(ipvs.IpvsValueError) as err:
        ipvs.destination_from_params(params, svc)
    assert message in str(err.value)


def test_destination_port_defaults_and_dr_normalisation():
    svc = ipvs.service_from_params({"address": V4, "port": 80})
    dest, warnings = ipvs.destination_from_params({"address": "10.0.0.2"}, svc)
    assert (dest.port, dest.forward, dest.weight, warnings) == (80, "dr", 1, [])
    dest, warnings = ipvs.destination_from_params({"address": "10.0.0.2", "port": 8080}, svc)
    assert dest.port == 80
    assert "ipvsadm forces it" in warnings[0]
    dest, warnings = ipvs.destination_from_params({"address": "10.0.0.2", "port": 8080, "forward": "nat"}, svc)
    assert (dest.port, warnings) == (8080, [])
    fwm = ipvs.service_from_params({"fwmark": 3})
    dest, _ = ipvs.destination_from_params({"address": "10.0.0.2"}, fwm)
    assert dest.key == ("10.0.0.2", 0)
    v6_tunnel, _ = ipvs.destination_from_params({"address": "2001:db8::2", "forward": "tun"}, svc)
    assert v6_tunnel.tunnel_type == "ipip"


def test_server_prefixed_params():
    svc = ipvs.service_from_params({"address": V4, "port": 80})
    dest, _ = ipvs.destination_from_params(
        {"server_address": "10.0.0.2", "server_port": 81, "forward": "nat"}, svc, prefix="server_"
    )
    assert dest.key == ("10.0.0.2", 81)
    assert ipvs.destination_key_from_params({"server_address": "10.0.0.2"}, svc, prefix="server_") == ("10.0.0.2", 80)


# ---------------------------------------------------------------------------------------------------------------------
# ipvs_service planning
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(RICH_SERVICES)))
def test_recorded_services_are_idempotent(rich, index):
    """Defaults (netmask, flags order, prefix vs dotted mask, IPv6 brackets) compare equal to what ipvsadm prints."""
    assert ipvs.plan_service(rich, ipvs.service_from_params(RICH_SERVICES[index]), "present") == []


def test_changed_service_is_edited_in_place_with_every_option(rich):
    desired = ipvs.service_from_params(
        {
            "address": "192.168.50.101",
            "port": 443,
            "scheduler": "mh",
            "scheduler_flags": ["mh-port"],
            "persistence_timeout": 60,
        }
    )
    ops = ipvs.plan_service(rich, desired, "present")
    # -E replaces every attribute, so the rendered command carries all of them; never -D then -A
    assert lines(ops) == ["-E -t 192.168.50.101:443 -s mh -p 60 -b mh-port"]
    assert ops[0].changes == ("scheduler_flags", "persistence_netmask")


def test_edit_removes_persistence_and_flags(rich):
    ops = ipvs.plan_service(rich, ipvs.service_from_params({"address": V4, "port": 8001, "scheduler": "sh"}), "present")
    assert lines(ops) == ["-E -t 192.168.50.100:8001 -s sh"]
    ops = ipvs.plan_service(rich, ipvs.service_from_params({"address": V4, "port": 7860}), "present")
    assert lines(ops) == ["-E -t 192.168.50.100:7860 -s wlc"]
    assert ops[0].changes == ("persistence_timeout",)


def test_new_services_render_ipv6_fwmark_and_options():
    empty = ipvs.Table()
    cases = [
        (
            {"address": "2001:db8::1", "port": 443, "persistence_timeout": 30, "persistence_netmask": "48"},
            "-A -t [2001:db8::1]:443 -s wlc -p 30 -M 48",
        ),
        (
            {"fwmark": 12, "family": "ipv6", "scheduler": "mh", "scheduler_flags": ["mh-fallback"]},
            "-A -f 12 -6 -s mh -b mh-fallback",
        ),
        (
            {
                "protocol": "udp",
                "address": V4,
                "port": 5060,
                "persistence_timeout": 300,
                "persistence_engine": "sip",
                "one_packet_scheduling": True,
            },
            "-A -u 192.168.50.100:5060 -s wlc -p 300 --pe sip -o",
        ),
        (
            {"protocol": "sctp", "address": V4, "port": 9899, "scheduler": "rr"},
            "-A --sctp-service 192.168.50.100:9899 -s rr",
        ),
        (
            {"address": V4, "port": 0, "persistence_timeout": 600, "persistence_netmask": "255.255.0.0"},
            "-A -t 192.168.50.100:0 -s wlc -p 600 -M 255.255.0.0",
        ),
    ]
    for params, line in cases:
        assert lines(ipvs.plan_service(empty, ipvs.service_from_params(params), "present")) == [line]


def test_service_absent(rich):
    ident = ipvs.service_identity_from_params({"fwmark": 9, "family": "ipv6"})
    assert lines(ipvs.plan_service(rich, ident, "absent")) == ["-D -f 9 -6"]
    assert ipvs.plan_service(rich, ipvs.service_identity_from_params({"fwmark": 10}), "absent") == []


# ---------------------------------------------------------------------------------------------------------------------
# ipvs_real_server planning
# ---------------------------------------------------------------------------------------------------------------------


def _dest(params, service_params=None):
    svc = ipvs.service_identity_from_params(service_params or {"address": V4, "port": 7860})
    dest, _ = ipvs.destination_from_params(params, svc)
    return svc, dest


def test_recorded_destination_with_thresholds_is_idempotent(rich):
    svc, dest = _dest({"address": "192.168.50.23", "weight": 50, "upper_threshold": 200, "lower_threshold": 10})
    assert ipvs.plan_destination(rich, svc, dest, "present") == []


def test_destination_edit_carries_every_attribute(rich):
    svc, dest = _dest({"address": "192.168.50.23", "weight": 50})
    ops = ipvs.plan_destination(rich, svc, dest, "present")
    assert lines(ops) == ["-e -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 50"]
    assert ops[0].changes == ("upper_threshold", "lower_threshold")
    svc, dest = _dest(
        {"address": "192.168.50.21", "port": 8443, "forward": "nat", "weight": 4},
        {"address": "192.168.50.101", "port": 443},
    )
    assert lines(ipvs.plan_destination(rich, svc, dest, "present")) == [
        "-e -t 192.168.50.101:443 -r 192.168.50.21:8443 -m -w 4"
    ]


def test_destination_add_and_absent(rich):
    svc, dest = _dest({"address": "192.168.50.24", "weight": 10, "upper_threshold": 5})
    assert lines(ipvs.plan_destination(rich, svc, dest, "present")) == [
        "-a -t 192.168.50.100:7860 -r 192.168.50.24:7860 -g -w 10 -x 5"
    ]
    svc = ipvs.service_identity_from_params({"fwmark": 9, "family": "ipv6"})
    assert lines(ipvs.plan_destination(rich, svc, None, "absent", key=("2001:db8::23", 0))) == [
        "-d -f 9 -6 -r [2001:db8::23]:0"
    ]
    assert ipvs.plan_destination(rich, svc, None, "absent", key=("2001:db8::99", 0)) == []


def test_drain_keeps_other_attributes(rich):
    svc = ipvs.service_identity_from_params({"address": V4, "port": 7860})
    ops = ipvs.plan_destination(rich, svc, None, "drained", key=("192.168.50.23", 7860))
    assert lines(ops) == ["-e -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 0 -x 200 -y 10"]
    assert ipvs.plan_destination(rich, svc, None, "drained", key=("192.168.50.22", 7860)) == []  # weight 0 already
    assert ipvs.plan_destination(rich, svc, None, "drained", key=("192.168.50.99", 7860)) == []
    mh = ipvs.service_identity_from_params({"address": "192.168.50.101", "port": 443})
    assert lines(ipvs.plan_destination(rich, mh, None, "drained", key=("192.168.50.22", 443))) == [
        "-e -t 192.168.50.101:443 -r 192.168.50.22:443 -i -w 0"
    ]


def test_dr_destination_is_found_when_given_another_port(rich):
    svc = ipvs.service_identity_from_params({"address": V4, "port": 7860})
    key = ipvs.destination_key_from_params({"address": "192.168.50.21", "port": 9999}, svc)
    assert lines(ipvs.plan_destination(rich, svc, None, "absent", key=key)) == [
        "-d -t 192.168.50.100:7860 -r 192.168.50.21:7860"
    ]


def test_graceful_removal_is_drain_then_delete(rich):
    svc = ipvs.service_identity_from_params({"address": V4, "port": 7860})
    drain, delete = ipvs.plan_graceful_removal(rich, svc, ("192.168.50.21", 7860))
    assert lines(drain) == ["-e -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 0"]
    assert lines(delete) == ["-d -t 192.168.50.100:7860 -r 192.168.50.21:7860"]
    drain, delete = ipvs.plan_graceful_removal(rich, svc, ("192.168.50.22", 7860))
    assert (drain, lines(delete)) == ([], ["-d -t 192.168.50.100:7860 -r 192.168.50.22:7860"])


def test_destination_of_missing_service(rich):
    svc, dest = _dest({"address": "10.0.0.9"}, {"address": "10.9.9.9", "port": 80})
    with pytest.raises(ipvs.IpvsValueError) as err:
        ipvs.plan_destination(rich, svc, dest, "present")
    assert "TCP 10.9.9.9:80 does not exist" in str(err.value)
    assert lines(ipvs.plan_destination(rich, svc, dest, "present", allow_missing_service=True)) == [
        "-a -t 10.9.9.9:80 -r 10.0.0.9:80 -g -w 1"
    ]
    assert ipvs.plan_destination(rich, svc, None, "drained", key=dest.key) == []


def test_gue_tunnel_destination_rendering():
    svc = ipvs.service_from_params({"protocol": "udp", "address": V4, "port": 5060})
    dest, _ = ipvs.destination_from_params(
        {
            "address": "10.0.0.2",
            "forward": "tun",
            "tunnel_type": "gue",
            "tunnel_port": 6080,
            "tunnel_checksum": "remcsum",
        },
        svc,
    )
    op = ipvs.Operation(ipvs.ADD_SERVER, svc.identity(), dest)
    assert op.argv() == [
        "-a",
        "-u",
        "192.168.50.100:5060",
        "-r",
        "10.0.0.2:5060",
        "-i",
        "-w",
        "1",
        "--tun-type",
        "gue",
        "--tun-port",
        "6080",
        "--tun-remcsum",
    ]


def test_recorded_gue_destination_is_idempotent(handwritten):
    table = ipvs.parse_save(handwritten("pe_ops_tunnels.save.txt"))
    svc = ipvs.service_from_params(
        {
            "protocol": "udp",
            "address": V4,
            "port": 5060,
            "scheduler": "rr",
            "persistence_timeout": 300,
            "persistence_engine": "sip",
            "one_packet_scheduling": True,
        }
    )
    assert ipvs.plan_service(table, svc, "present") == []
    gue, _ = ipvs.destination_from_params(
        {
            "address": "192.168.50.21",
            "forward": "tun",
            "tunnel_type": "gue",
            "tunnel_port": 6080,
            "tunnel_checksum": "csum",
        },
        svc,
    )
    gre, _ = ipvs.destination_from_params({"address": "192.168.50.22", "forward": "tun", "tunnel_type": "gre"}, svc)
    assert ipvs.plan_destination(table, svc, gue, "present") == []
    assert ipvs.plan_destination(table, svc, gre, "present") == []


# ---------------------------------------------------------------------------------------------------------------------
# ipvs_table planning
# ---------------------------------------------------------------------------------------------------------------------


def test_whole_recorded_table_is_idempotent(rich):
    assert ipvs.plan_table(rich, desired_rich(), purge=True, timeouts={"tcp": 3600, "tcpfin": 60, "udp": 120}) == []


def test_table_from_empty_orders_adds_and_renders_restore_input(recorded):
    empty = ipvs.parse_save(recorded("empty.save.txt"))
    ops = ipvs.plan_table(empty, desired_rich()[:2])
    assert ipvs.render_restore(ops) == (
        "-A -t 192.168.50.100:7860 -s wlc -p 300\n"
        "-A -t 192.168.50.100:8001 -s sh -b sh-fallback,sh-port\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.21:7860 -g -w 100\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.22:7860 -g -w 0\n"
        "-a -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 50 -x 200 -y 10\n"
        "-a -t 192.168.50.100:8001 -r 192.168.50.21:8001 -g -w 1\n"
    )


def test_table_converges_to_the_recorded_traffic_table(recorded, rich):
    """From the rich table to the recorded traffic table: the simulated result is what ipvsadm -S printed."""
    desired = ipvs.service_from_params({"address": V4, "port": 7860, "scheduler": "rr"})
    for octet in (21, 22, 23):
        dest, _ = ipvs.destination_from_params({"address": f"192.168.50.{octet}"}, desired)
        desired.destinations[dest.key] = dest
    ops = ipvs.plan_table(rich, [desired], purge=True)
    assert [op.action for op in ops] == ["edit-service", "edit-server", "edit-server", "edit-server"] + [
        "delete-service"
    ] * 6
    after = ipvs.apply_operations(rich, ops)
    assert ipvs.render_rules(after) == recorded("traffic.save.txt")
    assert ipvs.plan_table(after, [desired], purge=True) == []


def test_purge_scopes(rich):
    desired = ipvs.service_from_params({"address": V4, "port": 7860, "scheduler": "wlc", "persistence_timeout": 300})
    dest, _ = ipvs.destination_from_params({"address": "192.168.50.21", "weight": 100}, desired)
    desired.destinations[dest.key] = dest
    assert ipvs.plan_table(rich, [desired]) == []  # nothing listed is different, nothing else is touched
    desired.purge_destinations = True
    assert lines(ipvs.plan_table(rich, [desired])) == [
        "-d -t 192.168.50.100:7860 -r 192.168.50.22:7860",
        "-d -t 192.168.50.100:7860 -r 192.168.50.23:7860",
    ]
    desired.purge_destinations = False
    ops = ipvs.plan_table(rich, [desired], purge=True)
    assert [op.action for op in ops] == ["delete-service"] * 6  # this service keeps its unlisted destinations


def test_table_adds_before_deleting_and_edits_in_place(rich):
    desired = desired_rich()
    gradio = desired[0]
    del gradio.destinations[("192.168.50.21", 7860)]
    new, _ = ipvs.destination_from_params({"address": "192.168.50.24", "weight": 100}, gradio)
    gradio.destinations[new.key] = new
    gradio.destinations[("192.168.50.22", 7860)].weight = 100
    desired[3].scheduler = "wrr"
    ops = ipvs.plan_table(rich, desired, purge=True)
    assert lines(ops) == [
        "-E -u 192.168.50.100:53 -s wrr",
        "-a -t 192.168.50.100:7860 -r 192.168.50.24:7860 -g -w 100",
        "-e -t 192.168.50.100:7860 -r 192.168.50.22:7860 -g -w 100",
        "-d -t 192.168.50.100:7860 -r 192.168.50.21:7860",
    ]


def test_table_timeouts(rich):
    ops = ipvs.plan_table(rich, [], timeouts={"tcp": 900})
    assert lines(ops) == ["--set 900 0 0"]  # 0 leaves a timeout as it is
    assert ipvs.plan_table(rich, [], timeouts={"tcpfin": 60}) == []
    assert ipvs.apply_operations(rich, ops).timeouts == {"tcp": 900, "tcpfin": 60, "udp": 120}


def test_table_duplicate_service(rich):
    with pytest.raises(ipvs.IpvsValueError, match="listed twice"):
        ipvs.plan_table(rich, desired_rich() + desired_rich()[:1])


def test_two_hundred_destinations_in_one_batch():
    svc = ipvs.service_from_params({"address": V4, "port": 7860, "scheduler": "rr"})
    for i in range(200):
        dest, _ = ipvs.destination_from_params({"address": f"10.1.{i // 250}.{i % 250 + 1}", "weight": 10}, svc)
        svc.destinations[dest.key] = dest
    ops = ipvs.plan_table(ipvs.Table(), [svc])
    text = ipvs.render_restore(ops)
    assert len(text.splitlines()) == 201
    assert text.endswith("\n")
    after = ipvs.apply_operations(ipvs.Table(), ops)
    assert ipvs.plan_table(after, [svc]) == []
    assert ipvs.parse_save(ipvs.render_rules(after)).services[svc.key].destinations.keys() == svc.destinations.keys()


def test_diff_text_shows_thresholds_and_timeouts(rich):
    text = ipvs.render_rules(rich, with_timeouts=True)
    assert text.splitlines()[0] == "--set 3600 60 120"
    assert "-a -t 192.168.50.100:7860 -r 192.168.50.23:7860 -g -w 50 -x 200 -y 10" in text.splitlines()


# ---------------------------------------------------------------------------------------------------------------------
# Errors and draining
# ---------------------------------------------------------------------------------------------------------------------


def test_no_ipvs_message_from_recorded_stderr(handwritten):
    msg = ipvs.explain_failure(handwritten("no_ipvs.stderr.txt"), 2)
    assert msg.startswith("IPVS is not available on this host")
    assert "modprobe ip_vs" in msg
    assert "Protocol not available" in msg


def test_missing_scheduler_message():
    svc = ipvs.service_from_params({"address": V4, "port": 80, "scheduler": "twos"})
    ops = [ipvs.Operation(ipvs.ADD_SERVICE, svc)]
    msg = ipvs.explain_failure("Scheduler or persistence engine not found\n", 255, ops)
    assert msg.startswith("scheduler twos not available in this kernel (modprobe ip_vs_twos)")
    pe = ipvs.service_from_params(
        {"protocol": "udp", "address": V4, "port": 5060, "persistence_timeout": 60, "persistence_engine": "sip"}
    )
    msg = ipvs.explain_failure("Scheduler not found\n", 255, [ipvs.Operation(ipvs.EDIT_SERVICE, pe)])
    assert "modprobe ip_vs_wlc" in msg
    assert "modprobe ip_vs_pe_sip" in msg


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("Service already exists\n", "the IPVS table changed while this task ran"),
        ("No such destination\n", "the IPVS table changed while this task ran"),
        ("Permission denied (you must be root)\n", "needs root"),
        ("Invalid operation.  Possibly wrong module version, address not unicast, ...\n", "unicast"),
        ("illegal weight specified\n", "ipvsadm rejected the arguments"),
        ("", "ipvsadm failed (rc=1): no error message"),
    ],
)
def test_other_failure_messages(stderr, expected):
    assert expected in ipvs.explain_failure(stderr, 1)


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_drain_with_recorded_listings(recorded):
    reads = iter([recorded("active.ln.txt"), recorded("drained.ln.txt"), recorded("traffic.ln.txt")])
    fake = FakeClock()
    result = ipvs.wait_for_drain(
        lambda: ipvs.parse_listing(next(reads)),
        GRADIO,
        ("192.168.50.21", 7860),
        30,
        1.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert (result.drained, result.active, result.inactive, result.polls) == (True, 0, 10, 3)
    assert fake.sleeps == [1.0, 1.0]


def test_wait_for_drain_times_out_and_reports(recorded):
    fake = FakeClock()
    listing = ipvs.parse_listing(recorded("drained.ln.txt"))
    result = ipvs.wait_for_drain(
        lambda: listing, GRADIO, ("192.168.50.21", 7860), 5, 2.0, clock=fake.clock, sleep=fake.sleep
    )
    assert (result.drained, result.active, result.inactive) == (False, 1, 10)
    assert fake.sleeps == [2.0, 2.0, 1.0]  # never sleeps past the timeout
    svc = ipvs.service_identity_from_params({"address": V4, "port": 7860})
    msg = ipvs.drain_timeout_message(svc, ("192.168.50.21", 7860), result, 5, False)
    assert msg.startswith("timed out after 5 s waiting for destination 192.168.50.21:7860 of TCP 192.168.50.100:7860")
    assert "1 active and 10 inactive connection(s) still connected" in msg


def test_wait_inactive_and_bounded_polls_with_a_frozen_clock(recorded):
    listing = ipvs.parse_listing(recorded("traffic.ln.txt"))
    calls = []

    def read():
        calls.append(1)
        return listing

    result = ipvs.wait_for_drain(
        read, GRADIO, ("192.168.50.23", 7860), 3, 1.0, include_inactive=True, clock=lambda: 0.0, sleep=lambda s: None
    )
    assert (result.drained, result.active, result.inactive) == (False, 0, 11)
    assert len(calls) == 5  # ceil(3 / 1) + 2: bounded even if time does not move
    result = ipvs.wait_for_drain(read, GRADIO, ("192.168.50.23", 7860), 3, 1.0, clock=lambda: 0.0, sleep=lambda s: None)
    assert result.drained  # active 0 is enough without wait_inactive


def test_wait_argument_checks():
    with pytest.raises(ipvs.IpvsValueError):
        ipvs.wait_for_drain(ipvs.Table, GRADIO, ("10.0.0.1", 80), 10, 0)
    with pytest.raises(ipvs.IpvsValueError):
        ipvs.wait_for_drain(ipvs.Table, GRADIO, ("10.0.0.1", 80), -1, 1)
