"""Shared by the role tests that run playbooks against local-connection hosts."""

import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def run_playbook(workdir, inventory, playbook, *extra, timeout=600):
    """Write `inventory` (a dict) to workdir and run `playbook` (relative to the checkout) with it."""
    path = workdir / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", NO_COLOR="1", ANSIBLE_CONFIG=f"{REPO}/ansible.cfg")
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(path), os.path.join(REPO, playbook), *extra]
    res = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    return res.returncode, res.stdout + res.stderr


@pytest.fixture(scope="session")
def ansible_playbook():
    return run_playbook
