"""The Molecule `cluster` scenario on the VM lab: real kernel, real IPVS, real keepalived.

One boot of the default topology serves every step; the steps run in order
and the lab is destroyed at the end whatever happens. These tests need root,
qemu and debootstrap (`make deps` installs them); without them they fail.

After create: prepare (lab self-test and the ipvs_* module tests on the bare
lab), converge (playbooks/site.yml: NFS export and mounts, the node server
with its espeak-ng CPU test engine, the realservers, the directors) and
idempotence, verify (DR traffic through the keepalived pair; the shared
outputs directory), then the drills, each proven with traffic from the
client VM: a storage outage under load, (a) a stopped node, (b, c) a hung
node and its return, (e) a broken keepalived value, (d) the master director
killed, (f) the killed director, a killed node and the killed storage host
boot again with everything in place, and last nfs_outputs state absent.
"""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
LABCTL = [sys.executable, os.path.join(REPO, "tools", "lab", "labctl")]
ENV = dict(
    os.environ, PATH=f"{BIN}:{os.environ['PATH']}", NO_COLOR="1", ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg")
)

pytestmark = pytest.mark.lab


def run(argv, timeout):
    res = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, timeout=timeout)
    return res.returncode, res.stdout + res.stderr


def molecule(step, *args, timeout=1800):
    return run([os.path.join(BIN, "molecule"), step, "-s", "cluster", *args], timeout)


def playbook(path, *args, timeout=900):
    return run([os.path.join(BIN, "ansible-playbook"), path, *args], timeout)


def flat(out):
    """The output with every run of whitespace as one space (the yaml callback folds long messages)."""
    return " ".join(out.split())


def on(host, command):
    rc, out = run([*LABCTL, "ssh", host, "--", command], 120)
    assert rc == 0, out
    return out.strip()


@pytest.fixture(scope="module", autouse=True)
def lab_lifecycle():
    yield
    run([*LABCTL, "down"], 300)


def test_create_boots_every_vm():
    # destroy first: it also clears Molecule's state (kept under ~/.ansible/tmp),
    # which an interrupted earlier run may have left saying "created"
    rc, out = molecule("destroy")
    assert rc == 0, out[-6000:]
    rc, out = molecule("create")
    assert rc == 0, out[-6000:]
    rc, out = run([*LABCTL, "status", "--json"], 300)
    status = json.loads(out[out.index("{") :])
    assert rc == 0, out
    assert status["state"] == "up"
    assert [h["name"] for h in status["hosts"] if not h["ssh"]] == []
    assert len(status["hosts"]) == 7


def test_up_again_is_a_no_op():
    rc, out = run([*LABCTL, "up"], 300)
    assert rc == 0, out
    assert "nothing to start" in out
    assert "started " not in out


def test_prepare_runs_the_lab_self_test_and_the_module_integration_tests():
    rc, out = molecule("prepare", "--force")
    assert rc == 0, out[-8000:]
    assert "all 3 nodes answered through the VIP" in out
    assert "OutPkts 0" in out
    # the ipvs_* modules' integration playbook ran, including the drain timeout
    # with a connection held open from the client VM
    assert "IPVS modules | against the real kernel" in out
    assert "timed out after" in out


def test_converge_and_idempotence():
    rc, out = molecule("converge")
    assert rc == 0, out[-6000:]
    rc, out = molecule("idempotence")
    assert rc == 0, out[-6000:]
    assert "cluster > idempotence: Executed: Successful" in out


def test_check_mode_on_the_converged_cluster_changes_nothing():
    rc, out = playbook("playbooks/site.yml", "--check", "--diff")
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if re.match(r"^(director|node|storage)\d+ +: ok=", line)]
    assert len(recap) == 6, out[-3000:]
    assert all(" changed=0 " in line and " failed=0 " in line for line in recap), "\n".join(recap)


def test_verify_dr_traffic_through_the_keepalived_pair():
    rc, out = molecule("verify")
    assert rc == 0, out[-8000:]
    assert "director1 holds the VIP" in out
    assert "all 3 nodes answered 24 requests through the VIP, each client on one node" in out
    assert "OutPkts 0" in out
    assert "3 export entries, one per node, root_squash and sync" in out
    assert "node3 sees the file as cosyvoice 960 cosyvoice 960" in out


def test_storage_outage_under_load_loses_no_request_and_no_output():
    rc, out = playbook("tests/lab/drill_storage_outage.yml")
    assert rc == 0, out[-8000:]
    assert re.search(r"\d+ requests under a 60 s storage outage, 0 failed", flat(out)), out[-4000:]
    assert re.search(r"[1-9]\d* outputs waited in the spools when storage came back", flat(out)), out[-4000:]
    assert "with their sidecars, none partial, no temporary file left, owner uid [960]" in flat(out)


def test_a_a_stopped_node_is_evicted():
    rc, out = playbook("tests/lab/drill_node_stopped.yml")
    assert rc == 0, out[-6000:]
    assert "node1 evicted: 24 requests answered by" in out


def test_b_c_a_hung_node_is_evicted_and_returns_when_resumed():
    rc, out = playbook("tests/lab/drill_node_hung.yml")
    assert rc == 0, out[-6000:]
    assert "hung node2 evicted (a TCP handshake still completed)" in out
    assert "node2 is back in rotation" in out


def test_e_a_broken_keepalived_value_fails_validation_and_the_old_config_serves():
    state = "systemctl show -p MainPID --value keepalived; sha256sum /etc/keepalived/keepalived.conf"
    before = {d: on(d, state) for d in ("director1", "director2")}
    broken = '{"lvs_director_global_defs_extra": ["vrrp_garp_master_delay not-a-number"]}'
    rc, out = playbook("playbooks/site.yml", "-e", broken)
    assert rc != 0, out[-6000:]
    assert "failed to validate" in out, out[-6000:]
    assert "fatal: [director1]" in out and "fatal: [director2]" in out, out[-6000:]
    # same keepalived process (no restart), same config file, still serving
    assert {d: on(d, state) for d in ("director1", "director2")} == before
    rc, out = playbook("tests/lab/check_service.yml")
    assert rc == 0, out[-6000:]
    assert "the old config still serves" in out


def test_d_the_master_director_killed_the_backup_takes_over_and_a_synthesis_survives():
    rc, out = playbook("tests/lab/drill_director_killed.yml")
    assert rc == 0, out[-6000:]
    assert "director2 took the VIP; the synthesis sent before the kill came back whole from" in flat(out)


def test_f_after_reboots_the_vips_sysctls_and_the_director_come_back():
    for host in ("node3", "storage1"):
        rc, out = run([*LABCTL, "kill", host], 120)
        assert rc == 0, out
    rc, out = run([*LABCTL, "up"], 900)  # boots them and the director killed in (d)
    assert rc == 0, out
    rc, out = playbook("tests/lab/check_after_reboot.yml")
    assert rc == 0, out[-6000:]
    assert "node3 rebooted with 192.168.50.100/32 on lo, arp_ignore 1, arp_announce 2" in out
    assert "director1 holds the VIP" in out
    assert "storage1 exports /srv/cosyvoice-tts/outputs again" in flat(out)
    assert "node3 mounted the share again; its mover runs and its spool is empty" in flat(out)


def test_nfs_outputs_absent_unmounts_and_removes_the_export_and_keeps_the_data():
    rc, out = playbook("tests/lab/nfs_absent.yml")
    assert rc == 0, out[-6000:]
    assert "storage1: nothing mounted, no units, no export," in flat(out) and "outputs kept" in flat(out)
    for node in ("node1", "node2", "node3"):
        assert f"{node}: nothing mounted, no units, no export" in flat(out)
    rc, out = playbook("tests/lab/nfs_absent.yml")
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if re.match(r"^(node|storage)\d+ +: ok=", line)]
    assert len(recap) == 4 and all(" changed=0 " in line for line in recap), "\n".join(recap)


def test_destroy_leaves_no_qemu_tap_or_namespace():
    rc, out = molecule("destroy")
    assert rc == 0, out[-6000:]
    rc, out = run([*LABCTL, "status", "--json"], 120)
    status = json.loads(out[out.index("{") :])
    assert rc == 3, out
    assert status["state"] == "down"
    assert status["leftovers"] == []
    assert not status["netns"]
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "-name cvlab-cvlab-" not in procs
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "cvlcvlab" not in links
    rc, out = run([*LABCTL, "down"], 120)
    assert rc == 0, out
