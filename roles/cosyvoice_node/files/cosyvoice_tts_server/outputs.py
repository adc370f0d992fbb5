"""Result files: ``<stem>.wav`` and its ``<stem>.json`` sidecar, each written atomically.

A file is written under a hidden temporary name in the same directory, fsynced and renamed
into place, so a reader never sees half a file; the sidecar is renamed last, so a sidecar
means its WAV is complete. The outputs directory (the NFS mount) is never created here:
a missing mount must not turn into a local directory. The spool directory is local and
is created when missing. A result waits in the spool while its sidecar is there (the
mover removes the sidecar last), so the backlog is the number of visible ``*.json`` files.
"""

import json
import os
import re
import secrets
import time
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_stem(node: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{_UNSAFE.sub('_', node) or 'node'}-{secrets.token_hex(4)}"


def write_atomic(directory: str, name: str, data: bytes) -> str:
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def write_result(directory: str, stem: str, wav: bytes, sidecar: dict[str, Any]) -> str:
    """Write the WAV, then the sidecar; returns the WAV path. Raises OSError."""
    wav_path = write_atomic(directory, f"{stem}.wav", wav)
    data = json.dumps({**sidecar, "wav": os.path.basename(wav_path)}, ensure_ascii=False, indent=1).encode()
    write_atomic(directory, f"{stem}.json", data + b"\n")
    return wav_path


def is_sidecar(name: str) -> bool:
    """A complete result's sidecar: ``<stem>.json``, not a hidden temporary file."""
    return name.endswith(".json") and not name.startswith(".") and len(name) > len(".json")


def spool_backlog(directory: str) -> tuple[int, float | None]:
    """(results waiting in the spool, mtime of the oldest one's sidecar or None).

    One scandir of a local directory, for the metrics at scrape time; a missing or
    unreadable spool reads as empty."""
    count, oldest = 0, None
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not is_sidecar(entry.name):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except OSError:  # removed by the mover meanwhile
                    continue
                count += 1
                oldest = mtime if oldest is None else min(oldest, mtime)
    except OSError:
        return 0, None
    return count, oldest


def ensure_spool(directory: str) -> None:
    os.makedirs(directory, mode=0o750, exist_ok=True)


def probe_writable(directory: str) -> bool:
    """Can a file be created, written and removed there (the real test, not os.access)."""
    if not os.path.isdir(directory):
        return False
    try:
        write_atomic(directory, f".probe-{os.getpid()}", b"probe\n")
        os.unlink(os.path.join(directory, f".probe-{os.getpid()}"))
    except OSError:
        return False
    return True
