"""The Molecule `cluster` scenario on the VM lab: real kernel, real IPVS, real keepalived.

One boot of the default topology serves every step; the steps run in order
and the lab is destroyed at the end whatever happens. These tests need root,
qemu and debootstrap (`make deps` installs them); without them they fail.

After create: prepare (lab self-test and the ipvs_* module tests on the bare
lab), converge (playbooks/site.yml: NFS export and mounts, the node server
with its espeak-ng CPU test engine, the realservers, the directors), then a
second run from the collection's tarball installed into an infra repo
(cosyvoice.cluster.site, changed=0), verify (DR traffic through the
keepalived pair; the shared outputs directory), gradio_client from several
sources, then the drills, each proven with traffic from the client VM: a
storage outage under load, (a) a stopped node, (b, c) a hung node and its
return, (e) a broken keepalived value, (d) the master director killed, (f)
the killed director, a killed node and the killed storage host boot again
with everything in place; then the rolling upgrade of a new release on
node1 (--limit) under load, its capacity refusal, check mode of
the directors and storage, nfs_outputs state absent, and the
loads' report. (a), (b, c) and (d) run under gradio_client load
(tests/lab/load.yml).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
LABCTL = [sys.executable, os.path.join(REPO, "tools", "lab", "labctl")]
# every playbook run of the scenario logs with timestamps here, for profiling the lab's time
ANSIBLE_LOG = os.path.join(REPO, "build", "lab-ansible.log")
ENV = dict(
    os.environ,
    PATH=f"{BIN}:{os.environ['PATH']}",
    NO_COLOR="1",
    ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
    ANSIBLE_LOG_PATH=ANSIBLE_LOG,
)

REPORT = os.path.join(REPO, "build", "lab-report")
INFRA = os.path.join(REPO, "build", "infra-repo")
with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as _fh:
    GALAXY_VERSION = re.search(r"(?m)^version: (\S+)$", _fh.read()).group(1)
# the next patch release
_MAJOR, _MINOR, _PATCH = GALAXY_VERSION.split(".")
UPGRADE_VERSION = f"{_MAJOR}.{_MINOR}.{int(_PATCH) + 1}"
# The lab has 2 cores and the role's run on an upgrading node takes minutes under TCG
# (two nodes together took 18 min): upgrade node1 alone, limited as an operator would
# (--limit keeps localhost and the directors), while node2 and node3 serve. All three
# nodes, one and two at a time, were upgraded by hand (see the README's rolling
# upgrade section and benchmarks/REPORT.md).
UPGRADED = ("node1",)
UPGRADE_ARGS = ("--limit", "localhost:lvs_directors:" + ":".join(UPGRADED))
INFRA_ENV = dict(ENV, ANSIBLE_CONFIG=os.path.join(INFRA, "ansible.cfg"))
SERVER_INIT = "roles/cosyvoice_node/files/cosyvoice_tts_server/__init__.py"

pytestmark = pytest.mark.lab


def run(argv, timeout):
    res = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, timeout=timeout)
    return res.returncode, res.stdout + res.stderr


def molecule(step, *args, timeout=1800):
    return run([os.path.join(BIN, "molecule"), step, "-s", "cluster", *args], timeout)


def playbook(path, *args, timeout=900):
    return run([os.path.join(BIN, "ansible-playbook"), path, *args], timeout)


def flat(out):
    """The output with every run of whitespace as one space (the yaml callback folds long messages)."""
    return " ".join(out.split())


def load(step, kind, *extra, timeout=600):
    """tests/lab/load.yml: callers on the VIP from the client VM (kind gradio: gradio_client; api: POST /v1/tts)."""
    args = ["-e", f"lab_load_step={step}", "-e", f"lab_load_kind={kind}"]
    for e in extra:
        args += ["-e", e]
    return playbook("tests/lab/load.yml", *args, timeout=timeout)


def under_load(name, action, loads):
    """Run action() under the loads, {kind: (callers, max_failed[, pause_s])}; return {kind: figures}.

    pause_s (api only) spaces one caller's requests. Each load's figures also go to
    build/lab-report/NAME-KIND.json.
    """
    for kind, spec in loads.items():
        pause = [f"lab_load_pause={spec[2]}"] if len(spec) > 2 else []
        rc, out = load("start", kind, f"lab_load_callers={spec[0]}", *pause)
        assert rc == 0, out[-6000:]
    try:
        action()
    finally:
        finished = {
            kind: load("finish", kind, f"lab_load_name={name}-{kind}", f"lab_load_max_failed={spec[1]}")
            for kind, spec in loads.items()
        }
    figures = {}
    for kind, (rc, out) in finished.items():
        assert rc == 0, out[-6000:]
        with open(os.path.join(REPORT, f"{name}-{kind}.json"), encoding="utf-8") as fh:
            figures[kind] = json.load(fh)
    return figures


def on(host, command):
    rc, out = run([*LABCTL, "ssh", host, "--", command], 120)
    assert rc == 0, out
    return out.strip()


@pytest.fixture(scope="module", autouse=True)
def lab_lifecycle():
    yield
    # CVLAB_KEEP=1 keeps the lab up, for running single steps with -k against a lab you brought up
    if os.environ.get("CVLAB_KEEP") != "1":
        run([*LABCTL, "down"], 300)


def test_create_boots_every_vm():
    shutil.rmtree(REPORT, ignore_errors=True)  # the loads' figures of an earlier run
    if os.path.exists(ANSIBLE_LOG):
        os.remove(ANSIBLE_LOG)
    # destroy first: it also clears Molecule's state (kept under ~/.ansible/tmp),
    # which an interrupted earlier run may have left saying "created"
    rc, out = molecule("destroy")
    assert rc == 0, out[-6000:]
    rc, out = molecule("create")
    assert rc == 0, out[-6000:]
    rc, out = run([*LABCTL, "status", "--json"], 300)
    status = json.loads(out[out.index("{") :])
    assert rc == 0, out
    assert status["state"] == "up"
    assert [h["name"] for h in status["hosts"] if not h["ssh"]] == []
    assert len(status["hosts"]) == 7


def test_up_again_is_a_no_op():
    rc, out = run([*LABCTL, "up"], 300)
    assert rc == 0, out
    assert "nothing to start" in out
    assert "started " not in out


def test_prepare_runs_the_lab_self_test_and_the_module_integration_tests():
    rc, out = molecule("prepare", "--force")
    assert rc == 0, out[-8000:]
    assert "all 3 nodes answered through the VIP" in out
    assert "OutPkts 0" in out
    # the ipvs_* modules' integration playbook ran, including the drain timeout
    # with a connection held open from the client VM
    assert "IPVS modules | against the real kernel" in out
    assert "timed out after" in out


def test_converge_then_a_second_run_from_a_galaxy_install_changes_nothing():
    rc, out = molecule("converge")
    assert rc == 0, out[-6000:]
    # the second run is an operator's: the collection's tarball installed into
    # an infra repo, site.yml run by its FQCN
    shutil.rmtree(INFRA, ignore_errors=True)
    galaxy_infra_repo()
    rc, out = in_infra("ansible-playbook", "cosyvoice.cluster.site", timeout=1800)
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if re.match(r"^(director|node|storage)\d+ +: ok=", line)]
    assert len(recap) == 6, out[-3000:]
    assert all(" changed=0 " in line and " failed=0 " in line for line in recap), "\n".join(recap)


def test_verify_dr_traffic_through_the_keepalived_pair():
    rc, out = molecule("verify")
    assert rc == 0, out[-8000:]
    assert "director1 holds the VIP" in out
    assert "all 3 nodes answered 24 requests through the VIP, each client on one node" in out
    assert "OutPkts 0" in out
    assert "3 export entries, one per node, root_squash and sync" in out
    assert "node3 sees the file as cosyvoice 960 cosyvoice 960" in out


def test_gradio_client_through_the_vip_from_several_sources_spreads_and_keeps_sessions():
    figures = under_load("spread", lambda: time.sleep(20), {"gradio": (6, 0)})["gradio"]
    assert figures["failed"] == 0 and figures["session_not_found"] == 0, figures
    assert sorted(figures["per_node"]) == ["node1", "node2", "node3"], figures
    # persistence: every source address stayed on one node
    assert len(figures["nodes_per_source"]) == 6, figures
    assert all(len(nodes) == 1 for nodes in figures["nodes_per_source"].values()), figures


def test_storage_outage_under_load_loses_no_request_and_no_output():
    rc, out = playbook("tests/lab/drill_storage_outage.yml")
    assert rc == 0, out[-8000:]
    assert re.search(r"\d+ requests under a 60 s storage outage, 0 failed", flat(out)), out[-4000:]
    assert re.search(r"[1-9]\d* outputs waited in the spools when storage came back", flat(out)), out[-4000:]
    assert "with their sidecars, none partial, no temporary file left, owner uid [960]" in flat(out)


# The drills run under a load of 4 gradio_client callers; their failed requests
# are counted (build/lab-report/drill-*.json) and must stay under a bound.
DRILL_LOAD = {"gradio": (4, 20)}


def test_a_a_stopped_node_is_evicted():
    def drill():
        rc, out = playbook("tests/lab/drill_node_stopped.yml")
        assert rc == 0, out[-6000:]
        assert re.search(r"node\d evicted: 24 requests answered by", out), out[-3000:]

    under_load("drill-node-stopped", drill, DRILL_LOAD)


def test_b_c_a_hung_node_is_evicted_and_returns_when_resumed():
    def drill():
        rc, out = playbook("tests/lab/drill_node_hung.yml")
        assert rc == 0, out[-6000:]
        assert "hung node2 evicted (a TCP handshake still completed)" in out
        assert "node2 is back in rotation" in out

    under_load("drill-node-hung", drill, DRILL_LOAD)


def test_e_a_broken_keepalived_value_fails_validation_and_the_old_config_serves():
    state = "systemctl show -p MainPID --value keepalived; sha256sum /etc/keepalived/keepalived.conf"
    before = {d: on(d, state) for d in ("director1", "director2")}
    broken = '{"lvs_director_global_defs_extra": ["vrrp_garp_master_delay not-a-number"]}'
    # the value is the directors' own: the run is limited to them (the nodes' plays take minutes under TCG)
    rc, out = playbook("playbooks/site.yml", "-e", broken, "--limit", "localhost:lvs_directors")
    assert rc != 0, out[-6000:]
    assert "failed to validate" in out, out[-6000:]
    assert "fatal: [director1]" in out and "fatal: [director2]" in out, out[-6000:]
    # same keepalived process (no restart), same config file, still serving
    assert {d: on(d, state) for d in ("director1", "director2")} == before
    rc, out = playbook("tests/lab/check_service.yml")
    assert rc == 0, out[-6000:]
    assert "the old config still serves" in out


def test_d_the_master_director_killed_the_backup_takes_over_and_a_synthesis_survives():
    def drill():
        rc, out = playbook("tests/lab/drill_director_killed.yml")
        assert rc == 0, out[-6000:]
        assert "director2 took the VIP; the synthesis sent before the kill came back whole from" in flat(out)

    under_load("drill-director-killed", drill, DRILL_LOAD)


def test_f_after_reboots_the_vips_sysctls_and_the_director_come_back():
    for host in ("node3", "storage1"):
        rc, out = run([*LABCTL, "kill", host], 120)
        assert rc == 0, out
    rc, out = run([*LABCTL, "up"], 900)  # boots them and the director killed in (d)
    assert rc == 0, out
    rc, out = playbook("tests/lab/check_after_reboot.yml")
    assert rc == 0, out[-6000:]
    assert "node3 rebooted with 192.168.50.100/32 on lo, arp_ignore 1, arp_announce 2" in out
    assert "director1 holds the VIP" in out
    assert "storage1 exports /srv/cosyvoice-tts/outputs again" in flat(out)
    assert "node3 mounted the share again; its mover runs and its spool is empty" in flat(out)


def galaxy_infra_repo(version=None):
    """An operator's infra repo, with the collection installed from its Galaxy tarball.

    version None: this checkout as it is. Otherwise a release that differs only
    in its version, also the node server's: this checkout copied (tracked and
    untracked, not ignored files) and edited. The tarball is built with
    ansible-galaxy and installed (--force: an upgrade) into INFRA/collections;
    the lab inventory is copied in as the operator's own.
    """
    src = REPO
    if version is not None:
        src = os.path.join(REPO, "build", "upgrade-src")
        shutil.rmtree(src, ignore_errors=True)
        files = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode()
        for rel in filter(None, files.split("\0")):
            if os.path.isfile(os.path.join(REPO, rel)):
                os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                shutil.copy2(os.path.join(REPO, rel), os.path.join(src, rel))
        for rel, pattern, repl in (
            ("galaxy.yml", r"(?m)^version: .*$", f"version: {version}"),
            (SERVER_INIT, r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"'),
        ):
            with open(os.path.join(src, rel), encoding="utf-8") as fh:
                text, n = re.subn(pattern, repl, fh.read())
            assert n == 1, rel
            with open(os.path.join(src, rel), "w", encoding="utf-8") as fh:
                fh.write(text)
    out_dir = os.path.join(REPO, "build", "galaxy")
    shutil.rmtree(out_dir, ignore_errors=True)
    rc, out = run(["ansible-galaxy", "collection", "build", "--force", "--output-path", out_dir, src], 300)
    assert rc == 0, out
    (tarball,) = [os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.endswith(".tar.gz")]
    if not os.path.isdir(INFRA):
        os.makedirs(INFRA)
        shutil.copytree(os.path.join(REPO, "inventories", "lab"), os.path.join(INFRA, "inventory"))
        with open(os.path.join(REPO, "ansible.cfg"), encoding="utf-8") as fh:
            cfg = fh.read()
        cfg = cfg.replace("inventory = inventories/lab/hosts.yml", "inventory = inventory/hosts.yml")
        cfg = cfg.replace("collections_path = build/collections", "collections_path = ./collections")
        with open(os.path.join(INFRA, "ansible.cfg"), "w", encoding="utf-8") as fh:
            fh.write(cfg)
    rc, out = in_infra(
        "ansible-galaxy",
        "collection",
        "install",
        "--no-deps",
        "--force",
        "-p",
        "collections",
        tarball,
        timeout=300,
    )
    assert rc == 0, out
    rc, out = in_infra("ansible-galaxy", "collection", "list", "cosyvoice.cluster", "-p", "collections")
    assert rc == 0 and re.search(r"cosyvoice\.cluster +" + re.escape(version or GALAXY_VERSION), out), out


def in_infra(*argv, timeout=2400):
    res = subprocess.run(argv, cwd=INFRA, env=INFRA_ENV, capture_output=True, text=True, timeout=timeout, check=False)
    return res.returncode, res.stdout + res.stderr


def server_version(node):
    """The node server's cosyvoice_tts_info line from its /metrics."""
    fetch = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:7860/metrics').read().decode())"
    return on(node, f'python3 -c "{fetch}" | grep "^cosyvoice_tts_info"')


def test_rolling_upgrade_from_a_galaxy_install_under_load_fails_no_request():
    for node in ("node1", "node2", "node3"):
        assert f'version="{UPGRADE_VERSION}"' not in server_version(node)
    galaxy_infra_repo(UPGRADE_VERSION)
    upgrade_out = []

    def upgrade():
        rc, out = in_infra("ansible-playbook", "cosyvoice.cluster.rolling_upgrade", *UPGRADE_ARGS)
        upgrade_out.append(out)
        assert rc == 0, out[-8000:]

    # 3 callers of the HTTP API (one connection per request, 1 s apart) must lose
    # nothing. The pause keeps the nodes' CPU for the upgrade: back to back, the
    # load made every Ansible task on the 2 emulated cores 2-3 times slower (the
    # step took 17 min). Gradio sessions across drains are the drills' subject.
    figures = under_load("rolling-upgrade", upgrade, {"api": (3, 0, 1.0)})
    out = flat(upgrade_out[0])
    assert "rolling_upgrade: every targeted node upgraded: " + ", ".join(UPGRADED) in out, out[-6000:]
    for node in UPGRADED:
        assert f"{node}: upgraded (server {GALAXY_VERSION} -> {UPGRADE_VERSION}, restarted)" in out, out[-6000:]
    assert "node2: upgraded" not in out and "node3: upgraded" not in out, out[-6000:]
    assert figures["api"]["failed"] == 0, figures["api"]
    assert sorted(figures["api"]["per_node"]) == ["node1", "node2", "node3"], figures["api"]
    for node in UPGRADED:
        assert f'version="{UPGRADE_VERSION}"' in server_version(node)
    # outside the --limit: untouched
    for node in ("node2", "node3"):
        assert f'version="{GALAXY_VERSION}"' in server_version(node)


def test_rolling_upgrade_refuses_to_start_with_fewer_than_2_healthy_nodes():
    drain = "echo 'drained by the cluster test' > /var/lib/cosyvoice-tts/drain"
    try:
        for node in ("node1", "node2"):
            on(node, drain)
        for _ in range(60):  # keepalived's check moves both weights to 0 within seconds
            rows = on("director1", "ipvsadm -Ln | grep -E 'Route +0 ' || true").splitlines()
            if len(rows) == 2:
                break
            time.sleep(1)
        assert len(rows) == 2, rows
        rc, out = in_infra("ansible-playbook", "cosyvoice.cluster.rolling_upgrade", timeout=900)
        assert rc != 0, out[-6000:]
        assert "1 healthy node(s) on director1 (weight > 0 in every VIP service), fewer than 2" in flat(out), out[
            -6000:
        ]
        assert "TASK [Drain |" not in out, out[-6000:]
        # nothing drained: node3 has no drain file and still serves
        assert on("node3", "test -e /var/lib/cosyvoice-tts/drain && echo drained || echo serving") == "serving"
    finally:
        for node in ("node1", "node2"):
            on(node, "rm -f /var/lib/cosyvoice-tts/drain")


def test_check_mode_of_the_galaxy_installed_site_playbook_changes_nothing():
    # check mode of the roles that need the real kernel (keepalived and IPVS,
    # the NFS server); cosyvoice_node's check mode runs in its Docker scenario
    # (molecule/cosyvoice_node), where it costs seconds instead of minutes of TCG
    limit = "localhost:lvs_directors:cosyvoice_storage"
    rc, out = in_infra("ansible-playbook", "cosyvoice.cluster.site", "--check", "--diff", "--limit", limit)
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if re.match(r"^(director|node|storage)\d+ +: ok=", line)]
    assert [line.split()[0] for line in recap] == ["director1", "director2", "storage1"], out[-3000:]
    assert all(" changed=0 " in line and " failed=0 " in line for line in recap), "\n".join(recap)


def test_nfs_outputs_absent_unmounts_and_removes_the_export_and_keeps_the_data():
    rc, out = playbook("tests/lab/nfs_absent.yml")
    assert rc == 0, out[-6000:]
    assert "storage1: nothing mounted, no units, no export," in flat(out) and "outputs kept" in flat(out)
    for node in ("node1", "node2", "node3"):
        assert f"{node}: nothing mounted, no units, no export" in flat(out)
    rc, out = playbook("tests/lab/nfs_absent.yml")
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if re.match(r"^(node|storage)\d+ +: ok=", line)]
    assert len(recap) == 4 and all(" changed=0 " in line for line in recap), "\n".join(recap)


def test_the_loads_figures_are_reported(capsys):
    names = {f[: -len(".json")] for f in os.listdir(REPORT) if f.endswith(".json")}
    wanted = {"spread-gradio", "rolling-upgrade-api"} | {
        f"drill-{d}-gradio" for d in ("node-stopped", "node-hung", "director-killed")
    }
    assert wanted <= names, sorted(names)
    rc, out = run([sys.executable, os.path.join(REPO, "benchmarks", "lab_report.py"), REPORT], 60)
    assert rc == 0, out
    with open(os.path.join(REPORT, "REPORT.md"), "w", encoding="utf-8") as fh:
        fh.write(out)
    with capsys.disabled():
        print("\n" + out)


def test_destroy_leaves_no_qemu_tap_or_namespace():
    rc, out = molecule("destroy")
    assert rc == 0, out[-6000:]
    rc, out = run([*LABCTL, "status", "--json"], 120)
    status = json.loads(out[out.index("{") :])
    assert rc == 3, out
    assert status["state"] == "down"
    assert status["leftovers"] == []
    assert not status["netns"]
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "-name cvlab-cvlab-" not in procs
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "cvlcvlab" not in links
    rc, out = run([*LABCTL, "down"], 120)
    assert rc == 0, out
