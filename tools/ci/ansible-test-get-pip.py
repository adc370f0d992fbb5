# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test creates each sanity test's virtual environment without pip and
bootstraps pip with a script it downloads from ci-files.testing.ansible.com,
which CI cannot reach. `make sanity` saves this file where ansible-test looks
for that script in its cache. It runs the same command line: ensurepip (the
pip bundled with Python), then pip installs the pinned pip from the package
index. ansible-test strips the environment, so the CA bundle that pip's own
configuration names is passed on for this one step.
"""

import configparser
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
env = dict(os.environ)
conf = configparser.ConfigParser()
conf.read(["/etc/pip.conf", "/etc/xdg/pip/pip.conf"])
cert = conf.get("global", "cert", fallback="")
if cert and os.path.exists(cert):
    env.setdefault("REQUESTS_CA_BUNDLE", cert)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args], env=env))
