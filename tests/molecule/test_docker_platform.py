"""The shared Molecule Docker platform: systemd as PID 1 without --privileged."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def test_docker_engine_answers():
    res = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode == 0, "no Docker engine: run `make docker-up` (make test does)\n" + res.stderr


def test_base_image_is_built_offline_and_cached():
    res = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "lab", "labctl"), "image", "--docker"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "docker image: cosyvoice-lab/debian12-systemd:" in res.stdout


def test_docker_base_scenario(molecule_test):
    molecule_test("docker_base", timeout=1200)
