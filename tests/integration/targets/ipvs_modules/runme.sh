#!/usr/bin/env bash
# Runs the self-contained playbook; arguments go to ansible-playbook (-i INVENTORY, -e ipvs_test_host=...).
set -euo pipefail
cd "$(dirname "$0")"
exec ansible-playbook playbook.yml "$@"
