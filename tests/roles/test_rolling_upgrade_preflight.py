"""playbooks/rolling_upgrade.yml refuses bad input before it drains anything.

The inventory's hosts use the local connection. Every case runs with
``--tags preflight --skip-tags rolling_upgrade_capacity`` (and ``--check``): the
checks alone, which the playbook allows, so even a case that slipped through
could neither read IPVS on this machine nor drain, converge or restart
anything. Each bad case must fail in the first two preflight plays, and the
capacity play must never start.

Not tested here: the capacity check against a real IPVS table, the drain,
the waits, the upgrade, the check synthesis and the restore. They need
keepalived, IPVS and the node server: the VM lab (issue 7). The capacity
arithmetic and the report's lines are tested on canned data (rolling_upgrade_logic.yml).
"""

import copy
import os
import re
import subprocess
import sys
import wave

import pytest
from test_preflight_bad_input import GOOD

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = "playbooks/rolling_upgrade.yml"
CHECKS_ONLY = ("--tags", "preflight", "--skip-tags", "rolling_upgrade_capacity")
CAPACITY_PLAY = "PLAY [Preflight | enough healthy nodes"


@pytest.fixture
def upgrade(tmp_path, ansible_playbook):
    return lambda inventory, *extra: ansible_playbook(tmp_path, inventory, PLAYBOOK, *extra)


def test_good_inventory_passes_the_checks(upgrade):
    rc, out = upgrade(GOOD, *CHECKS_ONLY)
    assert rc == 0, out[-5000:]
    assert "failed=0" in out
    # the node play starts and ends at once: nothing is drained with --tags preflight
    assert "TASK [Batch | nothing to do here with --tags preflight]" in out, out[-5000:]
    assert "TASK [Drain |" not in out, out[-5000:]


def without(group):
    inv = copy.deepcopy(GOOD)
    del inv["all"]["children"][group]
    return inv


def with_vars(group, **group_vars):
    inv = copy.deepcopy(GOOD)
    inv["all"]["children"][group].setdefault("vars", {}).update(group_vars)
    return inv


def extra(**options):
    return ("-e", " ".join(f"{k}={v}" for k, v in options.items()))


CASES = {
    "no_directors_group": (
        without("lvs_directors"),
        (),
        ["inventory group 'lvs_directors' is missing or empty"],
    ),
    "no_nodes_group": (
        without("cosyvoice_nodes"),
        (),
        ["inventory group 'cosyvoice_nodes' is missing or empty"],
    ),
    "batch_zero": (
        GOOD,
        extra(rolling_upgrade_batch=0),
        ["rolling_upgrade_batch (0) must be 1 or more"],
    ),
    "batch_a_percentage": (
        GOOD,
        extra(rolling_upgrade_batch="50%"),
        ["rolling_upgrade_batch"],
    ),
    "force_not_a_bool": (
        GOOD,
        extra(rolling_upgrade_force="perhaps"),
        ["rolling_upgrade_force"],
    ),
    "drain_timeout_zero": (
        GOOD,
        extra(rolling_upgrade_drain_timeout_s=0),
        ["rolling_upgrade_drain_timeout_s (0)", "1 s or more"],
    ),
    "prompt_clip_missing": (
        GOOD,
        extra(rolling_upgrade_check_prompt_wav="/nonexistent/prompt.wav"),
        ["rolling_upgrade_check_prompt_wav: '/nonexistent/prompt.wav' is not a file on the controller"],
    ),
    "directors_remove_failed_nodes": (
        with_vars("lvs_directors", lvs_director_inhibit_on_failure=False),
        (),
        ["rolling_upgrade on director1: it drains a node through", "lvs_director_inhibit_on_failure False"],
    ),
    "directors_check_tcp": (
        with_vars("lvs_directors", lvs_director_check_type="tcp"),
        (),
        ["rolling_upgrade on director2: it drains a node through", "lvs_director_check_type tcp"],
    ),
    "a_role_preflight_fails": (
        with_vars("cosyvoice_nodes", cosyvoice_node_queue_max_size=0),
        (),
        ["cosyvoice_node on node1: ", "cosyvoice_node_queue_max_size"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_before_the_capacity_check(upgrade, case):
    inventory, options, messages = CASES[case]
    rc, out = upgrade(inventory, "--check", *CHECKS_ONLY, *options)
    assert rc != 0, out[-5000:]
    for message in messages:
        assert message in out, f"{message!r} not in output:\n{out[-5000:]}"
    assert CAPACITY_PLAY not in out, out[-5000:]
    assert "PLAY [Nodes" not in out, out[-5000:]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (("--tags", "cosyvoice_node_install"), "would skip a drain, a wait or a check"),
        (("--skip-tags", "rolling_upgrade_capacity"), "would skip a drain, a wait or a check"),
        # skips the preflight plays, tag check included: the capacity play refuses to go on
        (("--skip-tags", "always"), "rolling_upgrade: the preflight did not run (--skip-tags always?)"),
    ],
)
def test_a_tag_filter_that_would_skip_a_step_is_refused(upgrade, tags, message):
    rc, out = upgrade(GOOD, "--check", *tags)
    assert rc != 0, out[-5000:]
    assert message in out, out[-5000:]
    assert "TASK [Capacity | read the IPVS table" not in out, out[-5000:]
    assert "PLAY [Nodes" not in out, out[-5000:]


def test_the_role_runs_only_on_a_node_drained_first(upgrade):
    """--tags cosyvoice_node_install --skip-tags always skips every check: the role's
    tasks must still not run, since they depend on a fact only the drain step sets."""
    rc, out = upgrade(GOOD, "--check", "--tags", "cosyvoice_node_install", "--skip-tags", "always")
    assert rc == 0, out[-5000:]
    assert "TASK [Capacity | read the IPVS table" not in out, out[-5000:]
    assert "TASK [cosyvoice.cluster.cosyvoice_node : Install | system packages]" in out, out[-5000:]
    assert re.search(r"^(ok|changed|failed|fatal): \[node\d", out, re.M) is None, out[-5000:]


def test_capacity_arithmetic_and_report_on_canned_data(tmp_path, ansible_playbook):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": local,
            "hosts": {"director1": {}},
            "children": {"cosyvoice_nodes": {"hosts": {f"node{i}": {} for i in range(1, 8)}}},
        }
    }
    rc, out = ansible_playbook(tmp_path, inventory, "tests/roles/rolling_upgrade_logic.yml")
    assert rc == 0, out[-5000:]
    assert "failed=0" in out


def test_the_check_prompt_clip_is_valid_and_reproducible(tmp_path):
    clip = os.path.join(REPO, "playbooks", "files", "upgrade-prompt.wav")
    with wave.open(clip, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        # the node server accepts 1-30 s (limits.prompt_min_s / prompt_max_s)
        assert 1.5 <= wav.getnframes() / wav.getframerate() <= 3.0
    again = tmp_path / "again.wav"
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_upgrade_prompt.py"), str(again)], check=True)
    with open(clip, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read(), "tools/make_upgrade_prompt.py no longer writes the committed clip"
