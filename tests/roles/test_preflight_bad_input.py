"""Bad inventory input stops playbooks/site.yml on every host before anything changes.

The inventory's hosts use the local connection: the preflight play gathers
facts here and every case must fail inside it. The bad cases run the whole
site.yml in --check mode, and the test asserts that no play after the
preflight started; the good case runs only the preflight (--tags preflight).
"""

import copy
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

GOOD = {
    "all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "lvs_director_interface": "lo",
        },
        "children": {
            "lvs_directors": {
                "hosts": {"director1": {"cluster_ip": "127.0.0.1"}, "director2": {"cluster_ip": "127.0.0.2"}},
                "vars": {"lvs_director_vips": [{"address": "10.99.0.100", "virtual_router_id": 51}]},
            },
            "cosyvoice_nodes": {
                "hosts": {"node1": {"cluster_ip": "127.0.0.21"}, "node2": {"cluster_ip": "127.0.0.22"}},
                "vars": {
                    "realserver_vips": ["10.99.0.100"],
                    "cosyvoice_node_engine": "espeak",
                    "cosyvoice_node_require_gpu": False,
                },
            },
            "cosyvoice_storage": {"hosts": {"storage1": {"cluster_ip": "127.0.0.31"}}},
        },
    }
}


def directors(inv):
    return inv["all"]["children"]["lvs_directors"]


def vips(*items):
    return {"lvs_director_vips": list(items)}


ROLES = ("lvs_director", "realserver", "cosyvoice_node", "nfs_outputs")
SKIP = ",".join(f"{role}_{step}" for role in ROLES for step in ("install", "configure", "run"))


@pytest.fixture
def site(tmp_path, ansible_playbook):
    return lambda inventory, *extra: ansible_playbook(tmp_path, inventory, "playbooks/site.yml", *extra)


def test_good_inventory_passes_the_preflight(site):
    rc, out = site(GOOD, "--tags", "preflight")
    assert rc == 0, out[-5000:]
    assert "failed=0" in out


def bad(vars_for_directors=None, host_vars=None, nodes=None):
    inv = copy.deepcopy(GOOD)
    directors(inv)["vars"].update(vars_for_directors or {})
    for host, hv in (host_vars or {}).items():
        directors(inv)["hosts"][host].update(hv)
    if nodes is not None:
        inv["all"]["children"]["cosyvoice_nodes"]["hosts"] = nodes
    return inv


CASES = {
    "vip_not_an_ip": (
        bad(vips({"address": "10.99.0.300", "virtual_router_id": 51})),
        ["lvs_director_vips on {h}: VIP '10.99.0.300'", "is not an IP address"],
    ),
    "vip_a_word": (
        bad(vips({"address": "the-vip", "virtual_router_id": 51})),
        ["lvs_director_vips on {h}: VIP 'the-vip'", "is not an IP address"],
    ),
    "port_out_of_range": (
        bad(vips({"address": "10.99.0.100", "virtual_router_id": 51, "services": [{"port": 70000}]})),
        ["lvs_director_vips on {h}: service 10.99.0.100:70000", "outside 1-65535"],
    ),
    "virtual_router_id_out_of_range": (
        bad(vips({"address": "10.99.0.100", "virtual_router_id": 256})),
        ["lvs_director_vips on {h}: VIP '10.99.0.100'", "virtual_router_id 256, outside 1-255"],
    ),
    "virtual_router_id_shared": (
        bad(
            vips(
                {"address": "10.99.0.100", "virtual_router_id": 51}, {"address": "10.99.0.101", "virtual_router_id": 51}
            )
        ),
        ["lvs_director_vips on {h}: virtual_router_id shared by two VIPs"],
    ),
    "duplicate_priorities": (
        bad(host_vars={"director1": {"lvs_director_priority": 100}, "director2": {"lvs_director_priority": 100}}),
        ["lvs_director on {h}: lvs_director_priority: duplicate priorities"],
    ),
    "empty_node_group": (
        bad(nodes={}),
        ["lvs_director_node_group on {h}: inventory group 'cosyvoice_nodes' is missing or empty"],
    ),
    "unknown_scheduler": (
        bad({"lvs_director_scheduler": "fastest"}),
        ["lvs_director_scheduler", "fastest"],
    ),
    "unknown_scheduler_of_a_service": (
        bad(vips({"address": "10.99.0.100", "virtual_router_id": 51, "services": [{"port": 7860, "scheduler": "x"}]})),
        ["scheduler", "must be one of"],
    ),
    "dr_port_mapping": (
        bad(vips({"address": "10.99.0.100", "virtual_router_id": 51, "services": [{"port": 80, "node_port": 7860}]})),
        ["lvs_director_vips on {h}: service 10.99.0.100:80", "maps to node port 7860, but DR forwarding cannot change"],
    ),
    "unicast_peers_miss_a_director": (
        bad({"lvs_director_unicast": True}, host_vars={"director1": {"lvs_director_unicast_peers": ["127.0.0.9"]}}),
        ["lvs_director_unicast_peers on director1", "must list every other director", "missing: ['127.0.0.2']"],
    ),
    "unicast_on_one_director_only": (
        bad(host_vars={"director1": {"lvs_director_unicast": True}}),
        ["lvs_director_unicast_peers on {h}: lvs_director_unicast differs between the directors"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_every_host_before_any_change(site, case):
    inventory, messages = CASES[case]
    # --check, and the roles' changing tags skipped: a case that slipped through
    # the preflight must not touch this machine (the hosts are local)
    rc, out = site(inventory, "--check", "--skip-tags", SKIP)
    assert rc != 0, out[-5000:]
    for message in messages:
        hosts = ["director1", "director2"] if "{h}" in message else [None]
        for host in hosts:
            text = message.format(h=host) if host else message
            assert text in out, f"{text!r} not in output:\n{out[-5000:]}"
    # the argument spec or an assert failed in the preflight play, on every
    # director the input is wrong for (both, unless a case names one)
    failing = ["director1", "director2"] if any("{h}" in m for m in messages) else ["director1"]
    for host in failing:
        assert re.search(rf"^(fatal|failed): \[{host}\]", out, re.M), out[-5000:]
    for later in ("Storage", "Nodes", "Real servers", "Directors"):
        assert f"PLAY [{later}" not in out, out[-5000:]
