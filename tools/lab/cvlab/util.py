"""Small helpers shared by the lab modules."""

import os
import subprocess
import sys
import time

from . import LabError


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv, quiet=False, capture=False, check=True, cwd=None, env=None, input_text=None, timeout=None):
    """Run argv (a list, never a shell string). Raise LabError with its output on failure."""
    full_env = dict(os.environ, LANG="C", LC_ALL="C", **(env or {}))
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            input=input_text,
            text=True,
            timeout=timeout,
            stdout=subprocess.PIPE if (quiet or capture) else None,
            stderr=subprocess.STDOUT if quiet else None,
            check=False,
        )
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no result after {timeout} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stdout or "")[-3000:] if (quiet or capture) else ""
        raise LabError(f"{' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''} exited {proc.returncode}\n{tail}")
    return proc.stdout if capture else proc.returncode


def pid_alive(pid, marker=None):
    """True if pid runs and (when given) its command line contains marker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return marker is None or marker in cmdline


def read_pid(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (FileNotFoundError, ValueError):
        return None
