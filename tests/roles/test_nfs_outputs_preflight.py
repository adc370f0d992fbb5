"""nfs_outputs' preflight refuses bad input before any change, naming the variable and the host.

The storage host and the nodes are local-connection hosts: the preflight runs
its read-only getent lookups against this machine, so the uid and gid clashes
use ids that exist here (uid 1 and gid 1, `daemon` on Debian) and the good
cases an id that is free here. Results are printed as JSON (one line per
message) so that long messages can be matched whole.
"""

import grp
import pwd
import sys

import pytest

STORAGE = {"storage1": "10.99.0.31"}
NODES = {"gpu1": "10.99.0.21", "gpu2": "10.99.0.22"}
ALL = [*STORAGE, *NODES]
PLAYBOOK = "tests/roles/preflight_nfs_outputs.yml"


def free_id():
    """An id that is neither a uid nor a gid on this machine (the owner's uid and gid in the good cases)."""
    uids = {p.pw_uid for p in pwd.getpwall()}
    gids = {g.gr_gid for g in grp.getgrall()}
    return next(i for i in range(960, 60000) if i not in uids and i not in gids)


FREE = free_id()
GOOD_VARS = {"nfs_outputs_owner_uid": FREE, "nfs_outputs_owner_gid": FREE}


def inventory(all_vars=None, storage_vars=None, node_vars=None, storage=STORAGE, nodes=NODES):
    children = {
        "cosyvoice_nodes": {
            "hosts": {h: {"cluster_ip": ip} if ip else {} for h, ip in nodes.items()},
            "vars": dict(node_vars or {}),
        }
    }
    if storage is not None:
        children["cosyvoice_storage"] = {
            "hosts": {h: {"cluster_ip": ip} for h, ip in storage.items()},
            "vars": dict(storage_vars or {}),
        }
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                **GOOD_VARS,
                **(all_vars or {}),
            },
            "children": children,
        }
    }


@pytest.fixture
def preflight(tmp_path, ansible_playbook, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")

    def run(inv):
        rc, out = ansible_playbook(tmp_path, inv, PLAYBOOK)
        return rc, " ".join(out.split())

    return run


def test_good_input_passes(preflight):
    rc, out = preflight(inventory(node_vars={"cosyvoice_node_uid": FREE, "cosyvoice_node_gid": FREE}))
    assert rc == 0, out[-4000:]
    assert "failed=0" in out


def test_an_export_network_that_holds_every_node_passes(preflight):
    rc, out = preflight(inventory(storage_vars={"nfs_outputs_export_clients": ["10.99.0.0/24", "10.98.0.7"]}))
    assert rc == 0, out[-4000:]


def test_absent_needs_no_storage_group_and_no_free_ids(preflight):
    # Nothing is created when absent: only the variables and the paths are checked.
    rc, out = preflight(inventory(storage=None, all_vars={"nfs_outputs_state": "absent", "nfs_outputs_owner_uid": 1}))
    assert rc == 0, out[-4000:]


def uid_1():
    try:
        return pwd.getpwuid(1).pw_name
    except KeyError:
        pytest.skip("no uid 1 on this machine")


def gid_1():
    try:
        return grp.getgrgid(1).gr_name
    except KeyError:
        pytest.skip("no gid 1 on this machine")


def case(name):
    """(inventory, messages, hosts that must name themselves in each message, messages that must not appear)."""
    if name == "missing storage group":
        return (
            inventory(storage=None),
            [
                "nfs_outputs_storage_group on {h}: inventory group 'cosyvoice_storage' is missing or empty: "
                "add the NFS server to it"
            ],
            list(NODES),
            [],
        )
    if name == "two storage hosts":
        return (
            inventory(storage={"storage1": "10.99.0.31", "storage2": "10.99.0.32"}),
            ["nfs_outputs_storage_group on {h}: group 'cosyvoice_storage' has 2 hosts (storage1, storage2)"],
            ["storage1", "storage2", *NODES],
            [],
        )
    if name == "export path not absolute":
        return (
            inventory(all_vars={"nfs_outputs_export_path": "srv/outputs"}),
            ["nfs_outputs_export_path on {h}: 'srv/outputs' is not an absolute path"],
            ALL,
            [],
        )
    if name == "mount path not absolute":
        return (
            inventory(all_vars={"nfs_outputs_mount_path": "outputs"}),
            ["nfs_outputs_mount_path on {h}: 'outputs' is not an absolute path"],
            ALL,
            [],
        )
    if name == "mount path with ..":
        return (
            inventory(all_vars={"nfs_outputs_mount_path": "/srv/../etc"}),
            ["nfs_outputs_mount_path on {h}: '/srv/../etc' must be a plain absolute path"],
            ALL,
            [],
        )
    if name == "export network without the nodes":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["10.99.0.0/28"]}),
            [
                "nfs_outputs_export_clients on {h}: node gpu1 (10.99.0.21) is not inside any of 10.99.0.0/28",
                "nfs_outputs_export_clients on {h}: node gpu2 (10.99.0.22) is not inside any of 10.99.0.0/28",
            ],
            ["storage1"],
            [],
        )
    if name == "export network without one node":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["10.99.0.20/31", "10.98.0.0/16"]}),
            ["nfs_outputs_export_clients on {h}: node gpu2 (10.99.0.22) is not inside any of 10.99.0.20/31, 10.98"],
            ["storage1"],
            ["node gpu1 (10.99.0.21)"],
        )
    if name == "wildcard export":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["*"]}),
            ["nfs_outputs_export_clients on {h}: '*' is not an IP address or a network in CIDR form"],
            ["storage1"],
            [],
        )
    if name == "host name export":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["*.example.net"]}),
            ["nfs_outputs_export_clients on {h}: '*.example.net' is not an IP address or a network in CIDR form"],
            ["storage1"],
            [],
        )
    if name == "export to every address":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["0.0.0.0/0"]}),
            ["nfs_outputs_export_clients on {h}: '0.0.0.0/0' is every address, as '*' would be"],
            ["storage1"],
            [],
        )
    if name == "export network with host bits":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": ["10.99.0.5/24"]}),
            ["nfs_outputs_export_clients on {h}: '10.99.0.5/24' has host bits set"],
            ["storage1"],
            [],
        )
    if name == "export clients not a list":
        return (
            inventory(storage_vars={"nfs_outputs_export_clients": "10.99.0.0/24"}),
            ['nfs_outputs_export_clients on {h}: must be a YAML list, got \\"10.99.0.0/24\\"'],
            ["storage1"],
            [],
        )
    if name == "node without an IP address":
        return (
            inventory(nodes={"gpu1": "10.99.0.21", "gpu2": None}),
            ["nfs_outputs_node_group on {h}: node gpu2 has address 'gpu2', not an IP address"],
            ["storage1"],
            [],
        )
    if name == "uid of another user":
        user = uid_1()
        return (
            inventory(all_vars={"nfs_outputs_owner_uid": 1}),
            [f"nfs_outputs_owner_uid on {{h}}: uid 1 already belongs to user '{user}', not 'cosyvoice'"],
            ALL,
            [],
        )
    if name == "gid of another group":
        group = gid_1()
        return (
            inventory(all_vars={"nfs_outputs_owner_gid": 1}),
            [f"nfs_outputs_owner_gid on {{h}}: gid 1 already belongs to group '{group}', not 'cosyvoice'"],
            ALL,
            [],
        )
    if name == "owner exists with other ids":
        user = uid_1()
        entry = pwd.getpwuid(1)
        return (
            inventory(all_vars={"nfs_outputs_owner": user}),
            [f"nfs_outputs_owner on {{h}}: user '{user}' exists with uid 1 and gid {entry.pw_gid}, not {FREE}/{FREE}"],
            ALL,
            [],
        )
    if name == "node service user with another uid":
        return (
            inventory(node_vars={"cosyvoice_node_uid": FREE + 1}),
            [f"nfs_outputs_owner_uid on {{h}}: {FREE}, but cosyvoice_node_uid is {FREE + 1}"],
            list(NODES),
            [],
        )
    if name == "soft mount":
        return (
            inventory(node_vars={"nfs_outputs_mount_options": ["nfsvers=4.2", "soft", "timeo=100"]}),
            ["nfs_outputs_mount_options on {h}: 'soft' is refused"],
            list(NODES),
            [],
        )
    if name == "NFSv3 mount":
        return (
            inventory(node_vars={"nfs_outputs_mount_options": ["nfsvers=3", "hard"]}),
            ["nfs_outputs_mount_options on {h}: 'nfsvers=3' asks for NFS below version 4"],
            list(NODES),
            [],
        )
    if name == "two options in one item":
        return (
            inventory(node_vars={"nfs_outputs_mount_options": ["hard,noatime"]}),
            ["nfs_outputs_mount_options on {h}: 'hard,noatime' is not a mount option"],
            list(NODES),
            [],
        )
    if name == "lease time below the kernel's minimum":
        return (
            inventory(storage_vars={"nfs_outputs_server_lease_time": 5, "nfs_outputs_server_grace_time": 5}),
            ["nfs_outputs_server_lease_time on {h}: 5 seconds; the kernel takes 10-3600"],
            ["storage1"],
            [],
        )
    if name == "grace shorter than the lease":
        return (
            inventory(storage_vars={"nfs_outputs_server_lease_time": 90, "nfs_outputs_server_grace_time": 30}),
            ["nfs_outputs_server_grace_time on {h}: 30 s is shorter than nfs_outputs_server_lease_time (90 s)"],
            ["storage1"],
            [],
        )
    if name == "unknown state":
        return (
            inventory(all_vars={"nfs_outputs_state": "gone"}),
            ["nfs_outputs_state", "present, absent"],
            ALL,
            [],
        )
    raise KeyError(name)


CASES = [
    "missing storage group",
    "two storage hosts",
    "export path not absolute",
    "mount path not absolute",
    "mount path with ..",
    "export network without the nodes",
    "export network without one node",
    "wildcard export",
    "host name export",
    "export to every address",
    "export network with host bits",
    "export clients not a list",
    "node without an IP address",
    "uid of another user",
    "gid of another group",
    "owner exists with other ids",
    "node service user with another uid",
    "soft mount",
    "NFSv3 mount",
    "two options in one item",
    "lease time below the kernel's minimum",
    "grace shorter than the lease",
    "unknown state",
]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused_naming_the_variable_and_the_host(preflight, name):
    inv, messages, hosts, absent = case(name)
    rc, out = preflight(inv)
    assert rc != 0, out[-4000:]
    for host in hosts:
        assert f"[{host}]" in out and (f"fatal: [{host}]" in out or f"failed: [{host}]" in out), out[-4000:]
        for message in messages:
            text = message.format(h=host)
            assert text in out, f"{text!r} not in:\n{out[-4000:]}"
    for text in absent:
        assert text not in out, out[-4000:]
    # nothing ran after the preflight's checks (the playbook is the preflight alone, and it stopped)
    assert "PLAY RECAP" in out
