"""Topology validation: bad input is refused with a message naming the problem."""

import copy
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tools", "lab"))

from cvlab import LabError, topology  # noqa: E402

GOOD = {
    "name": "t1",
    "subnet": "192.168.60.0/24",
    "hosts": [
        {"name": "d1", "groups": ["lvs_directors"], "ip": "192.168.60.11"},
        {"name": "n1", "groups": ["cosyvoice_nodes"], "ip": "192.168.60.21", "memory": 1024},
    ],
}


def variant(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def test_good_topology_parses_with_defaults():
    topo = topology.parse(GOOD)
    assert [h.name for h in topo.hosts] == ["d1", "n1"]
    assert [h.ssh_port for h in topo.hosts] == [2211, 2221]
    assert [h.memory for h in topo.hosts] == [512, 1024]
    assert topo.accel == "auto"
    assert topo.inventory == "inventories/t1/hosts.yml"
    assert topo.netns == "cosyvoice-lab-t1"
    assert topo.tap(topo.hosts[1]) == "cvlt121"
    assert len(topo.tap(topo.hosts[1])) <= 15


def test_default_topology_is_valid_and_has_the_documented_shape():
    topo = topology.load(os.path.join(REPO, "tools", "lab", "topologies", "default.yml"))
    groups = {}
    for h in topo.hosts:
        for g in h.groups:
            groups.setdefault(g, []).append(h.name)
    assert {g: len(v) for g, v in groups.items()} == {
        "lvs_directors": 2,
        "cosyvoice_nodes": 3,
        "cosyvoice_storage": 1,
        "lab_clients": 1,
    }
    assert topo.inventory == "inventories/lab/hosts.yml"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            variant(hosts=[*GOOD["hosts"], {"name": "d1", "ip": "192.168.60.12"}]),
            "duplicate host name 'd1'",
        ),
        (
            variant(hosts=[*GOOD["hosts"], {"name": "d2", "ip": "192.168.60.11"}]),
            "duplicate address 192.168.60.11",
        ),
        (
            variant(hosts=[*GOOD["hosts"], {"name": "x", "ip": "192.168.61.5"}]),
            "address 192.168.61.5 is outside the lab subnet 192.168.60.0/24",
        ),
        (variant(hosts=[{"name": "x", "ip": "192.168.60.255"}]), "outside the lab subnet"),
        (variant(hosts=[{"name": "x", "ip": "not-an-ip"}]), "ip must be an IPv4 address"),
        (variant(subnet="8.8.8.0/24"), "must be a private network"),
        (variant(subnet="10.0.2.0/24", hosts=[{"name": "x", "ip": "10.0.2.9"}]), "overlaps 10.0.2.0/24"),
        (variant(name="Bad_Name"), "name must match"),
        (variant(hosts=[]), "hosts must be a non-empty list"),
        (variant(memory=64), "memory must be an integer in 256"),
        (variant(accel="hvf"), "accel must be auto, tcg or kvm"),
        (variant(inventory="/etc/hosts.yml"), "inventory must be a path inside the repository"),
        (variant(colour="blue"), "unknown key(s) ['colour']"),
        (variant(hosts=[{"name": "x", "ip": "192.168.60.5", "groups": ["all"]}]), "Ansible's own groups"),
        (variant(vars={"lab_vip": "192.168.60.11"}), "also host d1's address"),
    ],
)
def test_bad_topologies_are_refused_with_a_clear_message(data, message):
    with pytest.raises(LabError) as err:
        topology.parse(data, "bad.yml")
    assert message in str(err.value)
    assert str(err.value).startswith("topology bad.yml:")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        topology.load(str(tmp_path / "nope.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(LabError, match="not valid YAML"):
        topology.load(str(bad))
