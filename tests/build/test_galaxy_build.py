"""`ansible-galaxy collection build`: a tarball users can install, without our test tooling."""

import os
import subprocess
import sys
import tarfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FORBIDDEN = ("tests/", "molecule/", "tools/", ".lab/", ".venv/", "build/", "benchmarks/", "inventories/lab/", ".ci/")


def ansible(tool, *args, cwd=None, env=None):
    res = subprocess.run(
        [os.path.join(BIN, tool), *args], capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=300
    )
    assert res.returncode == 0, f"{tool} {' '.join(args)}\n{res.stdout}{res.stderr}"
    return res


def build(tmp_path):
    ansible("ansible-galaxy", "collection", "build", "--force", "--output-path", str(tmp_path), REPO)
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as fh:
        meta = yaml.safe_load(fh)
    path = tmp_path / f"cosyvoice-cluster-{meta['version']}.tar.gz"
    assert path.exists(), os.listdir(tmp_path)
    return path


def test_tarball_holds_the_collection_and_none_of_the_test_tooling(tmp_path):
    path = build(tmp_path)
    with tarfile.open(path) as tar:
        names = tar.getnames()
    leaked = [n for n in names if n.startswith(FORBIDDEN) or "/__pycache__/" in n or n.endswith(".pyc")]
    assert leaked == [], f"build_ignore let these into the tarball: {leaked[:20]}"
    for required in ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "playbooks/site.yml"):
        assert required in names, f"{required} missing from {path.name}"


def test_tarball_installs_into_an_infra_repo_and_its_playbook_resolves_by_fqcn(tmp_path):
    path = build(tmp_path)
    infra = tmp_path / "infra-repo"
    infra.mkdir()
    (infra / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(infra / "ansible.cfg"))
    ansible(
        "ansible-galaxy",
        "collection",
        "install",
        "--no-deps",
        "--force",
        "-p",
        "collections",
        str(path),
        cwd=infra,
        env=env,
    )
    assert (infra / "collections" / "ansible_collections" / "cosyvoice" / "cluster" / "playbooks" / "site.yml").exists()
    ansible("ansible-playbook", "--syntax-check", "-i", "localhost,", "cosyvoice.cluster.site", cwd=infra, env=env)
