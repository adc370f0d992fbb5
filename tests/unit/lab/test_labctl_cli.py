"""labctl refuses bad input before anything starts, and leaves nothing behind."""

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LABCTL = os.path.join(REPO, "tools", "lab", "labctl")


def labctl(topo_path, *args, env=None):
    return subprocess.run(
        [sys.executable, LABCTL, "-t", str(topo_path), *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        check=False,
        timeout=120,
    )


def write(tmp_path, data):
    path = tmp_path / "topo.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def nothing_started(name):
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return (
        f"cosyvoice-lab-{name}" not in netns
        and f"cvl{name}" not in links
        and f"cvlab-{name}-" not in procs
        and not os.path.exists(os.path.join(REPO, ".lab", name, "state.json"))
    )


TOPO = {
    "name": "ut",
    "subnet": "192.168.70.0/24",
    "ssh_port_base": 3200,
    "inventory": "build/test-inventories/ut.yml",
    "hosts": [{"name": "a", "ip": "192.168.70.11"}],
}


def test_duplicate_name_fails_before_anything_starts(tmp_path):
    data = dict(TOPO, hosts=[*TOPO["hosts"], {"name": "a", "ip": "192.168.70.12"}])
    res = labctl(write(tmp_path, data), "up")
    assert res.returncode == 2
    assert "duplicate host name 'a'" in res.stderr
    assert nothing_started("ut")


def test_address_outside_subnet_fails_before_anything_starts(tmp_path):
    data = dict(TOPO, hosts=[{"name": "a", "ip": "10.9.9.9"}])
    res = labctl(write(tmp_path, data), "up")
    assert res.returncode == 2
    assert "outside the lab subnet" in res.stderr
    assert nothing_started("ut")


def test_missing_qemu_fails_before_anything_starts(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    res = labctl(write(tmp_path, TOPO), "up", env=env)
    assert res.returncode == 2
    assert "missing on this machine" in res.stderr
    assert "qemu-system-x86_64" in res.stderr
    assert nothing_started("ut")


def test_missing_debootstrap_fails_when_the_image_must_be_built(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("qemu-system-x86_64", "qemu-img", "ip", "ssh", "ssh-keygen", "mkfs.ext4", "tar", "chroot"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=False).stdout.strip()
        if found:
            (bindir / tool).symlink_to(found)
    env = dict(os.environ, PATH=str(bindir), COSYVOICE_LAB_CACHE=str(tmp_path / "empty-cache"))
    res = labctl(write(tmp_path, TOPO), "up", env=env)
    assert res.returncode == 2
    assert "debootstrap" in res.stderr
    assert nothing_started("ut")


def test_status_and_down_of_a_lab_that_never_ran(tmp_path):
    path = write(tmp_path, TOPO)
    res = labctl(path, "status")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "lab ut: down" in res.stdout
    res = labctl(path, "down")
    assert res.returncode == 0, res.stderr
    assert nothing_started("ut")
