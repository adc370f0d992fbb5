# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drive the ipvs_* modules with a fake run_command that returns canned (recorded) ipvsadm output."""

from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

IPVSADM = "/usr/sbin/ipvsadm"
C_LOCALE = {"LANG": "C", "LC_ALL": "C"}


class ModuleExitError(Exception):
    pass


class ModuleFailError(Exception):
    pass


class FakeIpvsadm:
    """Canned ipvsadm: ``responses`` maps an argument string (without the program) to (rc, stdout, stderr), or to a
    list of those that are returned in turn (the last one repeats). Any other command fails the test, so a test
    states every command a module may run."""

    def __init__(self, responses):
        self.responses = {tuple(k.split()): (list(v) if isinstance(v, list) else [v]) for k, v in responses.items()}
        self.calls = []
        self.stdin = []

    def __call__(self, args, **kwargs):
        assert isinstance(args, list), "run_command must get an argument list, never a shell string"
        assert args[0] == IPVSADM
        assert kwargs.get("environ_update") == C_LOCALE
        assert not kwargs.get("use_unsafe_shell")
        self.calls.append(" ".join(args[1:]))
        self.stdin.append(kwargs.get("data"))
        queue = self.responses.get(tuple(args[1:]))
        if queue is None:
            raise AssertionError(f"unexpected command: {' '.join(args)}")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    @property
    def writes(self):
        return [c for c in self.calls if not c.startswith(("-S", "-L"))]


def ok(stdout=""):
    return (0, stdout, "")


class Runner:
    def __init__(self):
        self.bin_path_calls = []

    def __call__(self, module, args, responses, check_mode=False, diff=False):
        fake = FakeIpvsadm(responses)
        params = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        runner = self
        warnings = []

        def warn(self, warning, **kwargs):
            warnings.append(warning)

        def get_bin_path(self, arg, required=False, opt_dirs=None):
            runner.bin_path_calls.append((arg, required))
            return IPVSADM

        def exit_json(self, **kwargs):
            raise ModuleExitError(dict(kwargs, warnings=warnings))

        def fail_json(self, msg=None, **kwargs):
            kwargs.pop("exception", None)
            raise ModuleFailError(dict(kwargs, msg=msg, failed=True, warnings=warnings))

        with (
            patch_module_args(params),
            mock.patch.object(basic.AnsibleModule, "run_command", side_effect=fake, autospec=False),
            mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path),
            mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
            mock.patch.object(basic.AnsibleModule, "warn", warn),
        ):
            try:
                module.main()
            except ModuleExitError as done:
                result = done.args[0]
            except ModuleFailError as failed:
                result = failed.args[0]
            else:
                raise AssertionError("the module neither exited nor failed")
        return result, fake


@pytest.fixture
def run_module():
    """run_module(module, args, responses, check_mode=False, diff=False) -> (result, fake_ipvsadm)."""
    return Runner()
