"""roles/nfs_outputs' export, nfsd settings, mount and automount units as rendered for a small inventory.

Rendered with the role's own preflight (which derives the clients, the server
address and the unit names) and its templates, against local-connection hosts
(tests/roles/render_nfs_outputs.yml); nothing is installed or started. The
inventory mixes IPv4 and IPv6 nodes, a node with its own mount path (a leading
dot and dashes, which systemd escapes) and a server whose export path is set
as its host variable.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from test_nfs_outputs_preflight import FREE

OPTIONS = "nfsvers=4.2,proto=tcp,hard,timeo=100,retrans=3,noatime,nosuid,nodev,noexec"
EXPORT_OPTIONS = "rw,sync,root_squash,no_subtree_check,sec=sys"
NODES = {
    "gpu1": {"cluster_ip": "10.99.0.21"},
    "gpu2": {"cluster_ip": "10.99.0.22", "nfs_outputs_mount_path": "/.tts/out-2_a.b"},
    "gpu3": {"cluster_ip": "fd00:99::23", "nfs_outputs_server_address": "fd00:99::31"},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, ansible_playbook):
    tmp = tmp_path_factory.mktemp("render")
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "render_dir": str(tmp),
                "nfs_outputs_owner_uid": FREE,
                "nfs_outputs_owner_gid": FREE,
            },
            "children": {
                "cosyvoice_storage": {
                    "hosts": {
                        "storage1": {"cluster_ip": "10.99.0.31", "nfs_outputs_export_path": "/srv/tts-share"},
                    },
                    "vars": {"nfs_outputs_server_lease_time": 15, "nfs_outputs_server_grace_time": 20},
                },
                "cosyvoice_nodes": {"hosts": NODES},
            },
        }
    }
    rc, out = ansible_playbook(tmp, inventory, "tests/roles/render_nfs_outputs.yml")
    assert rc == 0, out[-5000:]
    return tmp


def derived(rendered, host):
    return json.loads((rendered / f"{host}.json").read_text())


def unit(rendered, host, kind):
    name = derived(rendered, host)[f"{kind}_unit"]
    return rendered / host / name


def test_the_export_lists_each_node_once_with_sync_and_root_squash_never_a_wildcard(rendered):
    exports = (rendered / "storage1.cosyvoice-outputs.exports").read_text()
    body = [line for line in exports.splitlines() if not line.startswith("#")]
    assert "*" not in "\n".join(body)
    assert body[0] == "/srv/tts-share \\"
    entries = [line.strip().rstrip(" \\") for line in body[1:]]
    assert entries == [
        f"10.99.0.21/32({EXPORT_OPTIONS})",
        f"10.99.0.22/32({EXPORT_OPTIONS})",
        f"fd00:99::23/128({EXPORT_OPTIONS})",
    ]
    # a continuation backslash on every line but the last
    assert [line.endswith(" \\") for line in body] == [True, True, True, False]
    assert derived(rendered, "storage1")["clients"] == ["10.99.0.21/32", "10.99.0.22/32", "fd00:99::23/128"]


def test_nfsd_settings_nfsv4_only_with_the_lease_and_grace_times(rendered):
    conf = (rendered / "storage1.nfsd.conf").read_text()
    settings = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert settings == ["[nfsd]", "threads = 8", "vers3 = n", "lease-time = 15", "grace-time = 20"]


def test_the_mount_unit_mounts_the_servers_export_path_over_nfsv4_and_is_not_enabled(rendered):
    mount = unit(rendered, "gpu1", "mount").read_text()
    assert re.findall(r"^(\w+)=(.*)$", mount.split("[Mount]")[1], re.M) == [
        ("What", "10.99.0.31:/srv/tts-share"),
        ("Where", "/srv/cosyvoice-tts/outputs"),
        ("Type", "nfs4"),
        ("Options", OPTIONS),
        ("DirectoryMode", "0755"),
        ("TimeoutSec", "30"),
    ]
    assert "After=network-online.target" in mount and "Wants=network-online.target" in mount
    assert "[Install]" not in mount


def test_the_automount_is_wanted_by_remote_fs_and_never_unmounts_on_idle(rendered):
    automount = unit(rendered, "gpu1", "automount").read_text()
    assert "Where=/srv/cosyvoice-tts/outputs" in automount
    assert "TimeoutIdleSec=0" in automount
    assert "Before=remote-fs.target" in automount
    assert automount.split("[Install]")[1].split() == ["WantedBy=remote-fs.target"]


def test_an_ipv6_server_address_is_bracketed(rendered):
    mount = unit(rendered, "gpu3", "mount").read_text()
    assert "What=[fd00:99::31]:/srv/tts-share" in mount.splitlines()


def test_a_nodes_own_mount_path_names_its_units(rendered):
    names = derived(rendered, "gpu2")
    assert names["mount_unit"] == "\\x2etts-out\\x2d2_a.b.mount"
    assert names["automount_unit"] == "\\x2etts-out\\x2d2_a.b.automount"
    assert "Where=/.tts/out-2_a.b" in unit(rendered, "gpu2", "mount").read_text().splitlines()


@pytest.mark.skipif(not shutil.which("systemd-escape"), reason="systemd-escape is not installed")
@pytest.mark.parametrize("host", sorted(NODES))
def test_unit_names_are_what_systemd_escape_says(rendered, host):
    path = NODES[host].get("nfs_outputs_mount_path", "/srv/cosyvoice-tts/outputs")
    names = derived(rendered, host)
    for kind in ("mount", "automount"):
        res = subprocess.run(
            ["systemd-escape", "--path", f"--suffix={kind}", path], capture_output=True, text=True, check=True
        )
        assert names[f"{kind}_unit"] == res.stdout.strip()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("host", sorted(NODES))
def test_systemd_analyze_verify_accepts_the_units(rendered, host):
    for kind in ("mount", "automount"):
        path = unit(rendered, host, kind)
        res = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False, timeout=60
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert os.fspath(path) not in res.stdout + res.stderr, res.stdout + res.stderr  # not even a warning
