"""cosyvoice_node's preflight refuses bad input before any change, naming the variable and the host.

This machine has no GPU and no nvidia-smi, which is exactly the "GPU required
but absent" case; the good cases turn the GPU check off (the lab's setting).
"""

import sys

import pytest

GOOD_VARS = {"cosyvoice_node_engine": "espeak", "cosyvoice_node_require_gpu": False}


def inventory(**node_vars):
    return {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {"cosyvoice_nodes": {"hosts": {"gpu1": {}, "gpu2": {}}, "vars": {**GOOD_VARS, **node_vars}}},
        }
    }


@pytest.fixture
def preflight(tmp_path, ansible_playbook):
    return lambda **node_vars: ansible_playbook(
        tmp_path, inventory(**node_vars), "tests/roles/preflight_cosyvoice_node.yml"
    )


def test_good_input_passes(preflight):
    rc, out = preflight()
    assert rc == 0, out[-4000:]


def test_a_model_dir_with_the_yaml_passes(preflight, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "cosyvoice3.yaml").write_text("{}\n")
    rc, out = preflight(
        cosyvoice_node_engine="cosyvoice",
        cosyvoice_node_model_source="local",
        cosyvoice_node_model_dir=str(tmp_path / "model"),
    )
    assert rc == 0, out[-4000:]


def bad_cases(tmp_path):
    (tmp_path / "empty-model").mkdir()
    return {
        "unknown engine": ({"cosyvoice_node_engine": "festival"}, ["cosyvoice_node_engine", "festival"]),
        "queue size out of range": (
            {"cosyvoice_node_queue_max_size": 0},
            ["cosyvoice_node on {h}: ", "cosyvoice_node_queue_max_size", "(0) 1-10000"],
        ),
        "timeout out of range": (
            {"cosyvoice_node_timeout_s": 7200},
            ["cosyvoice_node on {h}: ", "cosyvoice_node_timeout_s (7200) 1-3600"],
        ),
        "model dir missing": (
            {
                "cosyvoice_node_engine": "cosyvoice",
                "cosyvoice_node_model_source": "local",
                "cosyvoice_node_model_dir": str(tmp_path / "no-such-model"),
            },
            ["cosyvoice_node_model_dir on {h}: ", "does not exist"],
        ),
        "model dir without the yaml": (
            {
                "cosyvoice_node_engine": "cosyvoice",
                "cosyvoice_node_model_source": "local",
                "cosyvoice_node_model_dir": str(tmp_path / "empty-model"),
            },
            ["cosyvoice_node_model_dir on {h}: ", "has no cosyvoice3.yaml, cosyvoice2.yaml or cosyvoice.yaml"],
        ),
        "GPU required but absent": (
            {"cosyvoice_node_require_gpu": True},
            ["cosyvoice_node_require_gpu on {h}: no usable NVIDIA GPU", "set cosyvoice_node_require_gpu false"],
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown engine",
        "queue size out of range",
        "timeout out of range",
        "model dir missing",
        "model dir without the yaml",
        "GPU required but absent",
    ],
)
def test_bad_input_is_refused_on_every_node(preflight, tmp_path, case):
    node_vars, messages = bad_cases(tmp_path)[case]
    rc, out = preflight(**node_vars)
    assert rc != 0, out[-4000:]
    for message in messages:
        for host in ("gpu1", "gpu2"):
            text = message.format(h=host)
            assert text in out, f"{text!r} not in:\n{out[-4000:]}"
