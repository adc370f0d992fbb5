"""The Molecule `cluster` scenario on the VM lab: real kernel, real IPVS.

One boot of the default topology serves every step; the steps run in order
and the lab is destroyed at the end whatever happens. These tests need root,
qemu and debootstrap (`make deps` installs them); without them they fail.
"""

import json
import os
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


def molecule(step, timeout=1800):
    return run([os.path.join(BIN, "molecule"), step, "-s", "cluster"], timeout)


@pytest.fixture(scope="module", autouse=True)
def lab_lifecycle():
    yield
    run([*LABCTL, "down"], 300)


def test_create_boots_every_vm():
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


def test_converge_and_idempotence():
    rc, out = molecule("converge")
    assert rc == 0, out[-6000:]
    rc, out = molecule("idempotence")
    assert rc == 0, out[-6000:]
    assert "cluster > idempotence: Executed: Successful" in out


def test_verify_runs_the_lab_self_test_and_the_module_integration_tests():
    rc, out = molecule("verify")
    assert rc == 0, out[-8000:]
    assert "all 3 nodes answered through the VIP" in out
    assert "OutPkts 0" in out
    # the ipvs_* modules' integration playbook ran, including the drain timeout
    # with a connection held open from the client VM
    assert "IPVS modules | against the real kernel" in out
    assert "timed out after" in out


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
