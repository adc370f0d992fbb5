"""Every module's documentation renders with ansible-doc, and the action group lists them all."""

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))


def test_there_are_modules_and_the_action_group_names_each_one():
    with open(os.path.join(REPO, "meta", "runtime.yml"), encoding="utf-8") as fh:
        runtime = yaml.safe_load(fh)
    assert MODULES, "no module under plugins/modules"
    assert sorted(runtime["action_groups"]["ipvs"]) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    res = subprocess.run(
        [os.path.join(BIN, "ansible-doc"), "--json", f"cosyvoice.cluster.{module}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)[f"cosyvoice.cluster.{module}"]
    assert doc["doc"]["short_description"]
    assert doc["doc"]["options"]
    assert doc["examples"].strip()
    assert doc["return"]
    attrs = doc["doc"].get("attributes", {})
    assert attrs.get("check_mode", {}).get("support") in ("full", "partial"), attrs
    assert "diff_mode" in attrs
