# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cosyvoice.cluster.ip_address, ip_network and in_networks Jinja tests (plugins/test/network.py).

Called directly, through Ansible's templar (as a playbook uses them, fully qualified), and their documentation
through ansible-doc.
"""

import ipaddress
import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleError
from ansible_collections.cosyvoice.cluster.plugins.test import network
from ansible_collections.cosyvoice.cluster.plugins.test.network import in_networks, ip_address, ip_network

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
TESTS = ("ip_address", "ip_network", "in_networks")


@pytest.mark.parametrize(
    "value",
    ["10.20.0.21", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "::ffff:10.0.0.1", "FD00::21"],
)
def test_ip_address_accepts_addresses(value):
    assert ip_address(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "*.example.net",
        "nfs1.example.net",
        "10.20.0.0/24",
        "10.20.0.21/32",
        "10.20.0.256",
        "10.20.0",
        "010.20.0.21",  # leading zeros are ambiguous (octal?): ipaddress refuses them
        " 10.20.0.21",
        "10.20.0.21 ",
        "fe80::1%eth0",
        "2001:db8:::1",
        "",
        None,
        True,
        167772161,  # an int is not an address here, even though ipaddress.ip_address(int) would take it
        ["10.20.0.21"],
    ],
)
def test_ip_address_refuses_everything_else(value):
    assert ip_address(value) is False


def test_ip_address_takes_ipaddress_objects():
    assert ip_address(ipaddress.ip_address("10.0.0.1")) is True
    assert ip_address(ipaddress.ip_network("10.0.0.0/8")) is False


@pytest.mark.parametrize(
    "value", ["10.20.0.0/24", "10.20.0.21/32", "0.0.0.0/0", "fd00:20::/64", "2001:db8::1/128", "10.20.0.5/24"]
)
def test_ip_network_accepts_cidr_networks(value):
    assert ip_network(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "10.20.0.21",  # CIDR form: the prefix length is required
        "10.20.0.0/255.255.255.0",  # a netmask is not CIDR form
        "10.20.0.0/33",
        "fd00::/129",
        "10.20.0.0/",
        "10.20.0.0/24/8",
        "10.20.0.0/+24",
        "10.20.0.0/ 24",
        "*",
        "*/24",
        "nfs1/24",
        "",
        None,
        24,
    ],
)
def test_ip_network_refuses_everything_else(value):
    assert ip_network(value) is False


def test_ip_network_strict_refuses_host_bits():
    assert ip_network("10.20.0.5/24", strict=True) is False
    assert ip_network("10.20.0.0/24", strict=True) is True
    assert ip_network("fd00::1/64", strict=True) is False
    assert ip_network(ipaddress.ip_network("10.0.0.0/8")) is True


@pytest.mark.parametrize(
    ("value", "networks", "expected"),
    [
        ("10.20.0.21", ["10.20.0.0/24"], True),
        ("10.20.0.21", "10.20.0.0/24", True),
        ("10.20.0.21", ["10.30.0.0/16", "10.20.0.21"], True),
        ("10.20.0.21", ["10.20.0.21/32"], True),
        ("10.20.0.21", ["10.20.0.5/24"], True),  # host bits allowed in the list
        ("10.20.1.21", ["10.20.0.0/24"], False),
        ("10.20.0.22", ["10.20.0.21"], False),
        ("10.20.0.21", [], False),
        ("10.20.0.21", ["fd00::/8"], False),
        ("fd00::21", ["fd00::/8"], True),
        ("fd00::21", ["0.0.0.0/0"], False),
        ("nfs1.example.net", ["10.20.0.0/24"], False),
        ("*", ["0.0.0.0/0"], False),
        (None, ["10.20.0.0/24"], False),
    ],
)
def test_in_networks(value, networks, expected):
    assert in_networks(value, networks) is expected


@pytest.mark.parametrize("networks", [["*"], ["10.20.0.0/24", "nfs1.example.net"], [None], {"a": 1}, 42])
def test_in_networks_refuses_a_malformed_network_list(networks):
    with pytest.raises(AnsibleError, match="in_networks"):
        in_networks("10.20.0.21", networks)


def test_the_test_module_exports_the_three_tests():
    assert set(network.TestModule().tests()) == set(TESTS)


PLAYBOOK = """
- name: The tests, fully qualified, in a play
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    clients: ["10.20.0.0/28", "10.20.0.21"]
    nodes: ["10.20.0.3", "10.20.0.21", "10.20.0.22", "nfs1"]
  tasks:
    - name: Evaluate
      ansible.builtin.debug:
        msg:
          address: "{{ '10.20.0.21' is cosyvoice.cluster.ip_address }}"
          network: "{{ '10.20.0.0/24' is cosyvoice.cluster.ip_network }}"
          strict: "{{ '10.20.0.5/24' is cosyvoice.cluster.ip_network(strict=true) }}"
          inside: "{{ '10.20.0.21' is cosyvoice.cluster.in_networks(clients) }}"
          outside: "{{ nodes | reject('cosyvoice.cluster.in_networks', clients) | list }}"
          addresses: "{{ nodes | select('cosyvoice.cluster.ip_address') | list }}"
"""


def test_the_tests_resolve_by_their_fully_qualified_names_in_a_play(tmp_path):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    res = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    msg = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg == {
        "address": True,
        "network": True,
        "strict": False,
        "inside": True,
        "outside": ["10.20.0.22", "nfs1"],
        "addresses": ["10.20.0.3", "10.20.0.21", "10.20.0.22"],
    }


@pytest.mark.parametrize("name", TESTS)
def test_ansible_doc_renders(name):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    res = subprocess.run(
        [os.path.join(BIN, "ansible-doc"), "-t", "test", "--json", f"cosyvoice.cluster.{name}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)[f"cosyvoice.cluster.{name}"]
    assert doc["doc"]["name"] == name
    assert doc["doc"]["short_description"]
    assert "_input" in doc["doc"]["options"]
    assert f"cosyvoice.cluster.{name}" in doc["examples"]
    assert doc["return"]["_value"]["type"] == "boolean"
