"""Every role: meta/argument_specs.yml, defaults/main.yml and README.md name the same variables."""

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = sorted(d for d in os.listdir(os.path.join(REPO, "roles")) if not d.startswith("."))


def load(role, *path):
    with open(os.path.join(REPO, "roles", role, *path)) as fh:
        return yaml.safe_load(fh)


def test_there_are_roles():
    assert "lvs_director" in ROLES and "realserver" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(role, "defaults", "main.yml") or {}
    assert set(options) == set(defaults), set(options) ^ set(defaults)
    for name in options:
        assert name.startswith(role + "_"), f"{name} is not prefixed with {role}_"


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_exactly_the_variables(role):
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    with open(os.path.join(REPO, "roles", role, "README.md")) as fh:
        readme = fh.read()
    table = set(re.findall(r"^\| `(" + role + r"_[a-z0-9_]+)` \|", readme, re.M))
    assert table == set(options), table ^ set(options)


@pytest.mark.parametrize("role", ROLES)
def test_preflight_comes_first(role):
    with open(os.path.join(REPO, "roles", role, "tasks", "main.yml")) as fh:
        tasks = yaml.safe_load(fh)
    first = tasks[0]
    assert "preflight" in str(first.get("ansible.builtin.import_tasks", first.get("ansible.builtin.include_tasks")))
