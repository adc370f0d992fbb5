"""Images: a debootstrap rootfs, the VM disk built from it, and the Docker base.

Everything is cached outside the checkout (COSYVOICE_LAB_CACHE, default
/var/cache/cosyvoice-lab) under a key that hashes every input, so a change to a
package list or a build script rebuilds, and nothing else does.

    rootfs/<k1>.tar        debootstrap result (also the Docker base)
    mirror/<k1>/debian/    flat apt repository of every .deb fetched for it
    mirror/<k1>/pypi/      pip index served to the VMs (filled by later steps)
    wheels/<k3>/           the Python wheels the lab installs (files/ + a PEP 503 simple/)
    vm/<k2>/               base.img (raw ext4), vmlinuz, initrd.img, id_ed25519

The VM disk carries two virtualenvs built from those wheels, natively, in a chroot
at image build time: the node server's (/opt/cosyvoice/venv, what the cosyvoice_node
role creates, so its pip step finds every pin satisfied) and the lab client's
(/opt/cvlab-client, gradio_client). pip under TCG emulation would take minutes per
node; a golden image is also how many fleets ship Python. The wheels are published
on the loopback mirror too, so a changed pin installs from there.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

from . import LabError
from .mirror import write_pip_index
from .util import log, run

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_DIR = os.path.join(HERE, "image")
SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("COSYVOICE_LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DISK_SIZE = "3G"
FORMAT = "1"  # bump to invalidate every cached artefact
ROOTFS_REV = "2"  # bump when ensure_rootfs() builds the root filesystem differently
DOCKER_REPO = "cosyvoice-lab/debian12-systemd"
REPO = os.path.dirname(os.path.dirname(HERE))
# Requirement files whose wheels the lab needs: the node server's (espeak engine) and the client's.
WHEEL_REQUIREMENTS = (
    os.path.join(REPO, "roles", "cosyvoice_node", "files", "cosyvoice_tts_server", "requirements-espeak.txt"),
    os.path.join(SPEC_DIR, "requirements-client.txt"),
)
NODE_VENV = "/opt/cosyvoice/venv"  # cosyvoice_node_home/venv with the role's defaults
CLIENT_VENV = "/opt/cvlab-client"


def cache_dir():
    return os.environ.get("COSYVOICE_LAB_CACHE", "/var/cache/cosyvoice-lab")


def _read_list(name):
    with open(os.path.join(SPEC_DIR, name), encoding="utf-8") as fh:
        return [ln.split("#", 1)[0].strip() for ln in fh if ln.split("#", 1)[0].strip()]


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _file(name):
    with open(os.path.join(SPEC_DIR, name), "rb") as fh:
        return fh.read()


def rootfs_key():
    return _digest(
        FORMAT,
        ROOTFS_REV,
        SUITE,
        DEBIAN_MIRROR,
        ",".join(_read_list("packages.txt")),
        ",".join(_read_list("mirror-packages.txt")),
    )


def wheels_key():
    parts = [FORMAT, "cp311-manylinux-x86_64"]
    for req in WHEEL_REQUIREMENTS:
        with open(req, "rb") as fh:
            parts.append(fh.read())
    return _digest(*parts)


def vm_key():
    return _digest(rootfs_key(), _file("customise-vm.sh"), DISK_SIZE, wheels_key(), NODE_VENV, CLIENT_VENV, "stamp1")


def docker_key():
    return _digest(rootfs_key(), _file("Dockerfile.systemd"))


def paths():
    c = cache_dir()
    k1, k2 = rootfs_key(), vm_key()
    return {
        "rootfs_tar": os.path.join(c, "rootfs", f"{k1}.tar"),
        "mirror": os.path.join(c, "mirror", k1),
        "vm": os.path.join(c, "vm", k2),
        "wheels": os.path.join(c, "wheels", wheels_key()),
        "docker_image": f"{DOCKER_REPO}:{docker_key()}",
    }


def _tmpdir(kind, key):
    d = os.path.join(cache_dir(), "tmp", f"{kind}-{key}-{os.getpid()}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def _umount_below(root):
    """debootstrap or chroot steps can leave proc/sys mounted if interrupted."""
    with open("/proc/mounts", encoding="utf-8") as fh:
        mounts = [ln.split()[1] for ln in fh]
    for m in sorted((m for m in mounts if m.startswith(root.rstrip("/") + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def ensure_rootfs():
    p = paths()
    if os.path.exists(p["rootfs_tar"]) and os.path.exists(os.path.join(p["mirror"], "debian", "Packages")):
        return p
    k1 = rootfs_key()
    work = _tmpdir("rootfs", k1)
    root = os.path.join(work, "rootfs")
    pkgs = _read_list("packages.txt")
    extra = _read_list("mirror-packages.txt")
    t0 = time.monotonic()
    log(f"image: debootstrap {SUITE} with {len(pkgs)} packages (about 2-4 minutes)")
    try:
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(pkgs), SUITE, root, DEBIAN_MIRROR], quiet=True)
        if extra:
            log(f"image: fetching {len(extra)} mirror-only packages")
            run(["chroot", root, "apt-get", "-q", "update"], quiet=True)
            run(["chroot", root, "apt-get", "-q", "-y", "--download-only", "install", *extra], quiet=True)
        deb_dir = os.path.join(work, "mirror", "debian")
        os.makedirs(deb_dir)
        os.makedirs(os.path.join(work, "mirror", "pypi", "simple"))
        debs = glob.glob(os.path.join(root, "var/cache/apt/archives/*.deb"))
        if not debs:
            raise LabError("debootstrap left no .deb files to publish on the lab mirror")
        for deb in debs:
            shutil.move(deb, deb_dir)
        packages = run(["apt-ftparchive", "packages", "."], cwd=deb_dir, capture=True)
        with open(os.path.join(deb_dir, "Packages"), "w", encoding="utf-8") as fh:
            fh.write(packages)
        release = run(
            ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=cosyvoice-lab", "release", "."],
            cwd=deb_dir,
            capture=True,
        )
        with open(os.path.join(deb_dir, "Release"), "w", encoding="utf-8") as fh:
            fh.write(release)
        shutil.rmtree(os.path.join(root, "var/lib/apt/lists"), ignore_errors=True)
        os.makedirs(os.path.join(root, "var/lib/apt/lists/partial"))
        # Empty lists must look old: Ansible's apt module (update_cache with cache_valid_time) takes the
        # lists directory's mtime for the last update, and would not update a freshly built image.
        os.utime(os.path.join(root, "var/lib/apt/lists"), (0, 0))
        _umount_below(root)
        os.makedirs(os.path.dirname(p["rootfs_tar"]), exist_ok=True)
        tmp_tar = p["rootfs_tar"] + f".{os.getpid()}"
        run(["tar", "--numeric-owner", "-C", root, "-cf", tmp_tar, "."])
        if os.path.exists(p["mirror"]):
            shutil.rmtree(p["mirror"])
        os.makedirs(os.path.dirname(p["mirror"]), exist_ok=True)
        os.rename(os.path.join(work, "mirror"), p["mirror"])
        os.rename(tmp_tar, p["rootfs_tar"])
    finally:
        _umount_below(root)
        shutil.rmtree(work, ignore_errors=True)
    log(f"image: rootfs {k1} ready in {time.monotonic() - t0:.0f} s")
    return p


def ensure_wheels():
    """Download the lab's wheels once per requirements set; returns the wheelhouse dir."""
    d = paths()["wheels"]
    if os.path.exists(os.path.join(d, "simple", "index.html")):
        return d
    t0 = time.monotonic()
    log("image: downloading the lab's Python wheels (once per requirements set)")
    tmp = d + f".{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", f"{tmp}/files"]
    for req in WHEEL_REQUIREMENTS:
        argv += ["-r", req]
    run(argv, quiet=True)
    write_pip_index(tmp)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    os.rename(tmp, d)
    log(f"image: wheels ready in {time.monotonic() - t0:.0f} s")
    return d


def publish_wheels(p):
    """Put the wheelhouse on the loopback mirror (pypi/files, pypi/simple); idempotent."""
    src = os.path.join(ensure_wheels(), "files")
    pypi = os.path.join(p["mirror"], "pypi")
    dst = os.path.join(pypi, "files")
    os.makedirs(dst, exist_ok=True)
    added = 0
    for name in os.listdir(src):
        if not os.path.exists(os.path.join(dst, name)):
            try:
                os.link(os.path.join(src, name), os.path.join(dst, name))
            except OSError:
                shutil.copy(os.path.join(src, name), os.path.join(dst, name))
            added += 1
    if added or not os.path.exists(os.path.join(pypi, "simple", "index.html")):
        write_pip_index(pypi)


def _build_venvs(root, wheels):
    """The node server's and the lab client's venvs, built in the chroot from the wheels."""
    inside = "/tmp/cvlab-wheels"
    shutil.copytree(wheels, root + inside)
    node_req, client_req = WHEEL_REQUIREMENTS
    shutil.copy(node_req, root + inside + "/requirements-node.txt")
    shutil.copy(client_req, root + inside + "/requirements-client.txt")
    try:
        for venv, req in ((NODE_VENV, "requirements-node.txt"), (CLIENT_VENV, "requirements-client.txt")):
            run(["chroot", root, "python3", "-m", "venv", venv], quiet=True)
            run(
                [
                    "chroot",
                    root,
                    f"{venv}/bin/pip",
                    "install",
                    "--quiet",
                    "--no-index",
                    "--find-links",
                    f"{inside}/files",
                    "-r",
                    f"{inside}/{req}",
                ],
                quiet=True,
            )
        # The stamp the cosyvoice_node role keeps: this venv holds exactly these requirements.
        with open(node_req, "rb") as fh:
            stamp = hashlib.sha256(fh.read()).hexdigest()
        with open(root + NODE_VENV + "/.cosyvoice-requirements.sha256", "w", encoding="utf-8") as fh:
            fh.write(stamp + "\n")
    finally:
        shutil.rmtree(root + inside, ignore_errors=True)


def ensure_vm_image():
    p = ensure_rootfs()
    publish_wheels(p)
    if os.path.exists(os.path.join(p["vm"], "base.img")):
        return p
    wheels = ensure_wheels()
    k2 = vm_key()
    t0 = time.monotonic()
    log(f"image: building VM disk {k2} (about 1 minute)")
    work = _tmpdir("vm", k2)
    root = os.path.join(work, "rootfs")
    out = os.path.join(work, "out")
    os.makedirs(root)
    os.makedirs(out)
    try:
        run(["tar", "--numeric-owner", "-C", root, "-xf", p["rootfs_tar"]])
        key = os.path.join(out, "id_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cosyvoice-lab", "-f", key])
        ssh_dir = os.path.join(root, "root/.ssh")
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        shutil.copy(key + ".pub", os.path.join(ssh_dir, "authorized_keys"))
        os.chmod(os.path.join(ssh_dir, "authorized_keys"), 0o600)
        shutil.copy(os.path.join(SPEC_DIR, "customise-vm.sh"), os.path.join(root, "tmp/customise-vm.sh"))
        run(["chroot", root, "/bin/sh", "/tmp/customise-vm.sh"], quiet=True)
        os.unlink(os.path.join(root, "tmp/customise-vm.sh"))
        _build_venvs(root, wheels)
        kernels = sorted(glob.glob(os.path.join(root, "boot/vmlinuz-*")))
        initrds = sorted(glob.glob(os.path.join(root, "boot/initrd.img-*")))
        if not kernels or not initrds:
            raise LabError("the rootfs has no kernel or initrd in /boot")
        shutil.copy(kernels[-1], os.path.join(out, "vmlinuz"))
        shutil.copy(initrds[-1], os.path.join(out, "initrd.img"))
        run(["mkfs.ext4", "-q", "-F", "-L", "labroot", "-d", root, os.path.join(out, "base.img"), DISK_SIZE])
        os.makedirs(os.path.dirname(p["vm"]), exist_ok=True)
        if os.path.exists(p["vm"]):
            shutil.rmtree(p["vm"])
        os.rename(out, p["vm"])
    finally:
        _umount_below(root)
        shutil.rmtree(work, ignore_errors=True)
    log(f"image: VM disk {k2} ready in {time.monotonic() - t0:.0f} s")
    return p


def docker_image_exists(ref):
    return (
        subprocess.run(
            ["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        ).returncode
        == 0
    )


def ensure_docker_image():
    """Import the rootfs into Docker and add systemd; tag it :current too."""
    if shutil.which("docker") is None:
        raise LabError("docker CLI not found: install docker.io (see README, 'What you need')")
    if (
        subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode
        != 0
    ):
        raise LabError("no Docker engine answers: start dockerd (make docker-up) and retry")
    p = paths()
    ref = p["docker_image"]
    if not docker_image_exists(ref):
        p = ensure_rootfs()
        base = f"cosyvoice-lab/debian12-rootfs:{rootfs_key()}"
        t0 = time.monotonic()
        if not docker_image_exists(base):
            log(f"image: docker import {base}")
            run(["docker", "import", p["rootfs_tar"], base], quiet=True)
        log(f"image: docker build {ref}")
        run(
            [
                "docker",
                "build",
                "-q",
                "--build-arg",
                f"BASE={base}",
                "-t",
                ref,
                "-f",
                os.path.join(SPEC_DIR, "Dockerfile.systemd"),
                SPEC_DIR,
            ],
            quiet=True,
        )
        log(f"image: docker image ready in {time.monotonic() - t0:.0f} s")
    run(["docker", "tag", ref, f"{DOCKER_REPO}:current"])
    return ref
