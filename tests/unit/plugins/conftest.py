# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the plugin unit tests.

Makes this checkout importable as ``ansible_collections.cosyvoice.cluster`` for the plugin unit tests.

The modules import their module_utils by that name, as Ansible requires. When the checkout is not already inside an
``ansible_collections/cosyvoice/cluster`` tree (ansible-test sets one up; a plain ``pytest`` run does not), a
symlink to it is made in a temporary directory that is put on sys.path. ``ansible_collections`` is a namespace
package, so this adds to the collections that the ``ansible`` package installs, it does not hide them.

Also gives the ``recorded`` and ``handwritten`` fixtures that read ipvsadm output files.
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _make_importable():
    try:
        importlib.import_module("ansible_collections.cosyvoice.cluster.plugins.module_utils.ipvs")
        return
    except ImportError:
        pass
    root = tempfile.mkdtemp(prefix="cosyvoice-cluster-tests-")
    os.makedirs(os.path.join(root, "ansible_collections", "cosyvoice"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "cosyvoice", "cluster"))
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    atexit.register(shutil.rmtree, root, True)  # removes the symlink, never follows it


_make_importable()


# ---------------------------------------------------------------------------------------------------------------------
# ipvsadm output fixtures: recorded/ is real-kernel output (see its README) and is what the tests use; handwritten/
# holds the few cases no recording covers, each derived from the recorded format (see its README).
# ---------------------------------------------------------------------------------------------------------------------

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "module_utils", "fixtures")


def _reader(subdir):
    def read(name):
        with open(os.path.join(FIXTURES, subdir, name), encoding="utf-8") as handle:
            return handle.read()

    return read


@pytest.fixture
def recorded():
    """recorded('rich.save.txt') -> text recorded from a real kernel."""
    return _reader("recorded")


@pytest.fixture
def handwritten():
    """handwritten('large.ln_stats.txt') -> text derived from the recorded format."""
    return _reader("handwritten")
