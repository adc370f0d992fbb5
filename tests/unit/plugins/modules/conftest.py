# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run_module fixture (see ipvs_harness.py)."""

from ipvs_harness import run_module

__all__ = ["run_module"]
