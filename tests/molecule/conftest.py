"""Shared by the Molecule Docker scenario tests."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


@pytest.fixture
def molecule_test():
    """Run `molecule test -s SCENARIO` from the checkout; return its output after asserting rc 0."""

    def run(scenario, timeout=1800):
        env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", NO_COLOR="1")
        res = subprocess.run(
            [os.path.join(BIN, "molecule"), "test", "-s", scenario],
            cwd=REPO,
            env=env,
            # one pipe for both: Molecule logs its steps on stderr, Ansible writes
            # its plays on stdout, and the tests split the output by step
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=timeout,
        )
        out = res.stdout
        assert res.returncode == 0, out[-6000:]
        assert f"{scenario} > idempotence: Executed: Successful" in out, out[-3000:]
        return out

    return run
