"""roles/lvs_director's keepalived.conf as rendered for each director of a 3-director inventory.

Users report unicast peer lists rendered wrong (peers on one line, the node's
own address among its peers, one block per peer): each director must get ONE
unicast_peer block listing every other director and never itself. Rendered
with the role's own preflight and template against local-connection hosts.
"""

import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
DIRECTORS = {"lb1": "127.0.0.1", "lb2": "127.0.0.2", "lb3": "127.0.0.3"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, ansible_playbook):
    tmp = tmp_path_factory.mktemp("render")
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "lvs_director_interface": "lo",
                "render_dir": str(tmp),
            },
            "children": {
                "lvs_directors": {
                    "hosts": {h: {"cluster_ip": ip} for h, ip in DIRECTORS.items()},
                    "vars": {
                        "lvs_director_vips": [
                            {"address": "10.99.0.100", "virtual_router_id": 51},
                            {"address": "10.99.0.101", "virtual_router_id": 52, "services": [{"port": 443}]},
                        ],
                        "lvs_director_unicast": True,
                        "lvs_director_vrrp_version": 3,
                        "lvs_director_advert_int": 0.2,
                        "lvs_director_notify_script": "/usr/local/sbin/vrrp-notify",
                    },
                },
                "cosyvoice_nodes": {
                    "hosts": {"gpu1": {"cluster_ip": "10.99.0.21"}, "gpu2": {"cluster_ip": "10.99.0.22"}},
                },
            },
        }
    }
    rc, out = ansible_playbook(tmp, inventory, "tests/roles/render_keepalived.yml")
    assert rc == 0, out[-5000:]
    confs = {h: (tmp / f"{h}.conf").read_text() for h in DIRECTORS}
    return confs | {f"{h}.table": json.loads((tmp / f"{h}.table.json").read_text()) for h in DIRECTORS}


def blocks(text, keyword):
    return re.findall(keyword + r" \{\n(.*?)\n\s*\}", text, re.S)


def test_the_static_table_without_keepalived_has_every_node_on_every_service(rendered):
    table = rendered["lb1.table"]
    assert [(s["address"], s["port"], s["scheduler"], s["persistence_timeout"]) for s in table] == [
        ("10.99.0.100", 7860, "wlc", 300),
        ("10.99.0.101", 443, "wlc", 300),
    ]
    for service in table:
        assert service["destinations"] == [
            {"address": "10.99.0.21", "port": service["port"], "forward": "dr", "weight": 100},
            {"address": "10.99.0.22", "port": service["port"], "forward": "dr", "weight": 100},
        ]


@pytest.mark.parametrize("host", sorted(DIRECTORS))
def test_one_unicast_peer_block_per_instance_listing_every_other_director(rendered, host):
    conf = rendered[host]
    peer_blocks = blocks(conf, "unicast_peer")
    assert len(peer_blocks) == 2, conf  # one per VRRP instance (2 VIPs)
    others = sorted(ip for h, ip in DIRECTORS.items() if h != host)
    for block in peer_blocks:
        assert sorted(line.strip() for line in block.splitlines()) == others, block
    assert conf.count(f"unicast_src_ip {DIRECTORS[host]}") == 2


def test_priorities_follow_the_inventory_order_and_every_director_starts_as_backup(rendered):
    prios = {h: re.findall(r"^\s+priority (\d+)$", rendered[h], re.M) for h in DIRECTORS}
    assert prios == {"lb1": ["150", "150"], "lb2": ["140", "140"], "lb3": ["130", "130"]}
    for host in DIRECTORS:
        assert re.findall(r"^\s+state (\w+)$", rendered[host], re.M) == ["BACKUP", "BACKUP"]


def test_vrrp_v3_sub_second_adverts_no_pass_authentication(rendered):
    conf = rendered["lb1"]
    assert re.search(r"^\s+vrrp_version 3$", conf, re.M)
    assert re.findall(r"^\s+advert_int (\S+)$", conf, re.M) == ["0.2", "0.2"]
    assert "authentication" not in conf and "auth_type" not in conf


def test_script_security_notify_and_sync_daemon(rendered):
    conf = rendered["lb2"]
    assert re.search(r"^\s+enable_script_security$", conf, re.M)
    assert conf.count("notify /usr/local/sbin/vrrp-notify") == 2
    # one sync daemon, following the first VIP's instance
    assert re.findall(r"^\s+lvs_sync_daemon (.*)$", conf, re.M) == ["lo VI_51 id 51"]


def test_one_virtual_server_per_vip_and_port_with_affinity_and_readiness_checks(rendered):
    conf = rendered["lb3"]
    assert re.findall(r"^virtual_server (\S+ \d+) \{", conf, re.M) == ["10.99.0.100 7860", "10.99.0.101 443"]
    assert conf.count("persistence_timeout 300") == 2
    assert conf.count("lvs_method DR") == 2
    assert conf.count("inhibit_on_failure") == 4 and conf.count("HTTP_GET") == 4
    assert conf.count("path /readyz") == 4
    assert len(re.findall(r"^\s+alpha$", conf, re.M)) == 2
    assert re.findall(r"real_server (\S+ \d+) \{", conf) == [
        "10.99.0.21 7860",
        "10.99.0.22 7860",
        "10.99.0.21 443",
        "10.99.0.22 443",
    ]
