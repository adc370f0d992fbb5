#!/bin/bash
# ansible-test sanity on the collection as Galaxy ships it: the built tarball,
# unpacked under ansible_collections/cosyvoice/cluster in a scratch directory
# outside this git checkout (inside it, ansible-test lists the files with git,
# which ignores build/, and finds no target).
# Offline: ansible-test bootstraps pip in each test's virtual environment with
# a script it would download; tools/ci/ansible-test-get-pip.py stands in for
# it. ansible-test runs from its own venv (build/sanity-venv, the ansible-core
# of .venv), because --requirements installs its test requirements there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
core=$($PY -c 'from ansible.release import __version__; print(__version__)')
pyver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=build/sanity-venv
if [[ "$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)' 2>/dev/null)" != "$core" ]]; then
  rm -rf "$venv"
  $PY -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core"
fi
req=$(echo "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py)
pip=$(grep -oP "^\s+pip='\K[0-9.]+" "$req" | head -1)
[[ -n "$pip" ]] || { echo "sanity: no pip version found in $req" >&2; exit 1; }
mkdir -p ~/.ansible/test/cache
install -m 0644 tools/ci/ansible-test-get-pip.py ~/.ansible/test/cache/"get_pip_${pip//./_}.py"
scratch=$(mktemp -d /tmp/cosyvoice-sanity.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/ansible-galaxy collection build --output-path "$scratch" . >/dev/null
dest=$scratch/ansible_collections/cosyvoice/cluster
mkdir -p "$dest"
tar -xzf "$scratch"/cosyvoice-cluster-*.tar.gz -C "$dest"
ansible_test=$PWD/$venv/bin/ansible-test
cd "$dest"
"$ansible_test" sanity --requirements --python "$pyver" --color no "$@" 2>&1 | tee "$scratch/sanity.log"
# a run that found nothing to test passes with rc 0: fail it here
if grep -q "All targets skipped" "$scratch/sanity.log"; then
  echo "sanity: ansible-test found no target in $dest" >&2
  exit 1
fi
