#!/bin/bash
# Install what `make test` and `make demo` need on a Debian 12 host, as root,
# from Debian's registry only. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(qemu-system-x86 qemu-utils debootstrap apt-utils e2fsprogs iproute2 openssh-client
      docker.io python3 python3-venv git make rsync curl ca-certificates tar espeak-ng
      prometheus)  # prometheus: only for promtool (tests/unit/test_monitoring.py)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The package also enables and starts a Prometheus server; we installed it for promtool.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi
