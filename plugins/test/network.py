# -*- coding: utf-8 -*-
# Copyright (c) 2026, cosyvoice.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Jinja tests on IP addresses and networks, written with Python's ``ipaddress`` (netaddr is not needed).

* ``cosyvoice.cluster.ip_address``: an IPv4 or IPv6 address, without a prefix length or a zone index;
* ``cosyvoice.cluster.ip_network``: a network in CIDR form (``ADDRESS/PREFIXLEN``); host bits are allowed unless
  ``strict=true``;
* ``cosyvoice.cluster.in_networks``: an address inside at least one of a list of networks (or addresses).

Their documentation lives in the sidecar files ip_address.yml, ip_network.yml and in_networks.yml.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

try:  # ansible-core >= 2.19
    from ansible.errors import AnsibleTemplatePluginError as _PluginError
except ImportError:  # pragma: no cover - older ansible-core
    from ansible.errors import AnsibleFilterError as _PluginError

_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_NETWORK_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _address(value):
    """The ipaddress address for `value`, or None when it is not a plain IPv4/IPv6 address."""
    if isinstance(value, _ADDRESS_TYPES):
        return value
    if not isinstance(value, str) or "%" in value or "/" in value:
        return None  # not text (bool, int, None, ...), a zone index (fe80::1%eth0), or a prefix length
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _network(value, strict=False):
    """The ipaddress network for `value` in CIDR form, or None when it is not one."""
    if isinstance(value, _NETWORK_TYPES):
        return value
    if not isinstance(value, str) or value.count("/") != 1:
        return None
    address, prefix = value.split("/")
    # CIDR form only: a decimal prefix length (ipaddress would also take a netmask such as /255.255.255.0)
    if not prefix.isascii() or not prefix.isdigit() or _address(address) is None:
        return None
    try:
        return ipaddress.ip_network(value, strict=bool(strict))
    except ValueError:
        return None


def ip_address(value):
    """True when `value` is an IPv4 or IPv6 address (no prefix length, no zone index)."""
    return _address(value) is not None


def ip_network(value, strict=False):
    """True when `value` is a network in CIDR form; with `strict`, its host bits must be zero."""
    return _network(value, strict) is not None


def in_networks(value, networks):
    """True when the address `value` is inside one of `networks` (CIDR networks or single addresses).

    A `value` that is not an address is in no network (False). A malformed `networks` argument is an error, never a
    silent False: it would hide a mistake in the list that the test is meant to check against.
    """
    if isinstance(networks, (str, *_ADDRESS_TYPES, *_NETWORK_TYPES)):
        networks = [networks]
    elif isinstance(networks, Mapping) or not hasattr(networks, "__iter__"):
        raise _PluginError(f"in_networks: networks must be a list of IP networks or addresses, got {networks!r}")
    parsed = []
    for entry in networks:
        net = _network(entry)
        if net is None:
            address = _address(entry)
            if address is None:
                raise _PluginError(f"in_networks: {entry!r} is not an IP network in CIDR form or an IP address")
            net = ipaddress.ip_network(address)
        parsed.append(net)
    address = _address(value)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in parsed)


class TestModule:
    """cosyvoice.cluster network tests."""

    def tests(self):
        return {
            "ip_address": ip_address,
            "ip_network": ip_network,
            "in_networks": in_networks,
        }
