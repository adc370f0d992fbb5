"""Command line: labctl {up,down,status,kill,ssh,image,validate,wheels}."""

import argparse
import json
import os
import sys

from . import LabError, topology
from . import image as images
from .lab import REPO, Lab

DEFAULT_TOPOLOGY = os.path.join(REPO, "tools", "lab", "topologies", "default.yml")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="labctl",
        description="The cosyvoice.cluster lab: Debian 12 VMs with a "
        "real kernel (IPVS, NFS) on a private bridge inside a network namespace.",
    )
    ap.add_argument(
        "-t",
        "--topology",
        default=os.environ.get("LAB_TOPOLOGY", DEFAULT_TOPOLOGY),
        help="topology file (default: %(default)s; env LAB_TOPOLOGY)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="build the image if needed, boot every VM, write the inventory (idempotent)")
    sub.add_parser("down", help="stop this lab's VMs by PID, remove its taps, namespace and state (idempotent)")
    st = sub.add_parser("status", help="what runs; exit 0 up, 3 down, 1 partial")
    st.add_argument("--json", action="store_true")
    k = sub.add_parser("kill", help="SIGKILL one VM (a crash, for drills); `up` boots it again")
    k.add_argument("host")
    s = sub.add_parser("ssh", help="ssh into a VM, or run a command there")
    s.add_argument("host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    im = sub.add_parser("image", help="build (or find cached) images")
    im.add_argument("--docker", action="store_true", help="also the Docker base image for Molecule")
    sub.add_parser("validate", help="validate the topology file and exit")
    sub.add_parser("wheels", help="download (or find cached) the lab's Python wheels; print the wheelhouse dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "image":
            p = images.ensure_vm_image()
            print(f"vm image: {p['vm']}")
            if args.docker:
                print(f"docker image: {images.ensure_docker_image()}")
            return 0
        if args.cmd == "wheels":
            print(images.ensure_wheels())
            return 0
        topo = topology.load(args.topology)
        lab = Lab(topo)
        if args.cmd == "validate":
            print(f"{args.topology}: ok ({len(topo.hosts)} hosts)")
            return 0
        if args.cmd == "up":
            return lab.up()
        if args.cmd == "down":
            return lab.down()
        if args.cmd == "kill":
            return lab.kill(args.host)
        if args.cmd == "ssh":
            host = topo.host(args.host)
            cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
            os.execvp("ssh", lab.ssh_argv(host, *cmd))  # noqa: S606 - hand the terminal to ssh
        if args.cmd == "status":
            st = lab.status()
            if args.json:
                print(json.dumps(st, indent=1))
            else:
                print(f"lab {st['lab']}: {st['state']} (netns {'present' if st['netns'] else 'absent'})")
                for h in st["hosts"]:
                    print(
                        f"  {h['name']:<12} {h['ip']:<16} ssh 127.0.0.1:{h['ssh_port']:<6} "
                        f"{'running pid ' + str(h['pid']) if h['running'] else 'stopped':<20} "
                        f"{'ssh ok' if h['ssh'] else ''}"
                    )
                for item in st["leftovers"] if st["state"] != "up" else []:
                    print(f"  leftover: {item}")
            return {"up": 0, "down": 3}.get(st["state"], 1)
    except LabError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
