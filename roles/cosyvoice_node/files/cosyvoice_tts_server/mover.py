"""``python -m cosyvoice_tts_server.mover [--config FILE] [--once] [--set KEY=VALUE ...]``

Carries complete results from ``outputs.spool_dir`` (local disk) to ``outputs.dir`` (the
NFS share), so that the server never has to write to the share itself
(``outputs.delivery: spool``). Same settings file, environment variables and ``--set``
overrides as the server; the engine's files are not checked.

- A result is complete when its sidecar ``<stem>.json`` is in the spool (the server
  renames the sidecar last). Hidden temporary files and a WAV without sidecar stay.
- Oldest first. The WAV is copied to outputs.dir under a hidden temporary name that
  carries this host's name (``.<name>.<host>.<random>.tmp``), fsynced and renamed; then
  the sidecar the same way, so on the share too a sidecar means its WAV is complete.
  Only then are the spool's WAV and then its sidecar removed. A sidecar left alone in the
  spool (a crash between the two removals) is finished when its WAV is on the share.
  A copy repeated after a crash replaces the same bytes atomically.
- outputs.dir is never created (a missing mount must not turn into a local directory).
  While it is missing, not a mount point (``mover.require_mountpoint``) or a write fails,
  one line is logged, the wait between passes doubles up to ``mover.max_backoff_s``,
  and one line is logged when delivery resumes.
- At start (when outputs.dir is first reachable) this host's stale temporary files there
  are removed; other hosts' are left alone.
- One mover per spool: it holds an exclusive lock on ``<spool_dir>/.mover.lock``.
- SIGTERM / SIGINT: the result in hand is finished, then exit 0.

Exit status: 0 after SIGTERM/SIGINT, or with ``--once`` when no result is left in the
spool; 1 with ``--once`` when results are left (outputs.dir unavailable, a sidecar whose
WAV is lost, another mover holding the lock), or when the spool cannot be created or
locked; 2 for a bad setting (one line on stderr naming it).
"""

import argparse
import contextlib
import fcntl
import logging
import os
import re
import secrets
import signal
import socket
import stat
import sys
import time
from typing import Any

from . import __version__
from .config import Config, ConfigError, load_config, parse_overrides
from .outputs import ensure_spool, is_sidecar, spool_backlog

PROG = "cosyvoice-tts-mover"
LOCK_NAME = ".mover.lock"
FILE_MODE = 0o644
SLEEP_SLICE_S = 0.1
log = logging.getLogger("cosyvoice_tts.mover")


def host_tag(hostname: str | None = None) -> str:
    """This host's name as it appears in the mover's temporary file names: characters
    other than letters, digits and '-' become '_' (so the tag holds no dot)."""
    name = socket.gethostname() if hostname is None else hostname
    return re.sub(r"[^A-Za-z0-9-]+", "_", name) or "host"


def temp_name(name: str, tag: str) -> str:
    return f".{name}.{tag}.{secrets.token_hex(4)}.tmp"


def stale_pattern(tag: str) -> re.Pattern[str]:
    """Matches the temporary names temp_name() makes for this tag, and only those."""
    return re.compile(rf"^\..+\.{re.escape(tag)}\.[0-9a-f]{{8}}\.tmp$")


class TargetError(Exception):
    """outputs.dir cannot be used now: missing, not a mount point, or a write failed."""


def _sync_dir(path: str) -> None:
    """Make the renames in path durable before the spool copies go (best effort: some
    file systems refuse fsync on a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Mover:
    def __init__(self, cfg: Config, tag: str | None = None, once: bool = False):
        self.cfg = cfg
        self.once = once
        self.spool = cfg.outputs.spool_dir
        self.target = cfg.outputs.dir
        self.tag = tag or host_tag()
        self.stale = stale_pattern(self.tag)
        self.stopping = False  # set by SIGTERM / SIGINT
        self.delay = cfg.mover.interval_s
        self.cleaned = False  # this host's stale temporary files removed from outputs.dir
        self.outage_since: float | None = None
        self.last_error = ""
        self.orphans: set[str] = set()  # sidecars whose WAV is lost, reported once each

    # ---- outputs.dir ---------------------------------------------------------------------

    def check_target(self) -> None:
        try:
            st = os.stat(self.target)
        except FileNotFoundError:
            raise TargetError(f"{self.target} does not exist (not mounted?)") from None
        except OSError as exc:
            raise TargetError(f"{self.target}: {exc.strerror or exc}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise TargetError(f"{self.target} is not a directory")
        if self.cfg.mover.require_mountpoint and not os.path.ismount(self.target):
            raise TargetError(f"{self.target} is not a mount point (mover.require_mountpoint)")

    def remove_stale_temps(self) -> None:
        """Temporary files of this host left in outputs.dir by a mover that was killed."""
        try:
            with os.scandir(self.target) as entries:
                names = [entry.name for entry in entries if self.stale.match(entry.name)]
            removed = 0
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.target, name))
                    removed += 1
        except OSError as exc:
            raise TargetError(f"cleaning {self.target}: {exc.strerror or exc}") from exc
        if removed:
            log.info("removed %d stale temporary file(s) of host %s from %s", removed, self.tag, self.target)
        self.cleaned = True

    def target_has(self, name: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(os.path.join(self.target, name)).st_mode)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TargetError(f"{self.target}/{name}: {exc.strerror or exc}") from exc

    def copy_in(self, src: str, name: str) -> int:
        """Copy the spool file src to outputs.dir/name atomically (hidden temporary name
        with this host's tag, fsync, rename), mode 0644. Returns its size. OSError: the
        source (FileNotFoundError: it is gone); TargetError: outputs.dir."""
        with open(src, "rb") as fh:
            data = fh.read()  # a result is a few MB at most
        tmp = os.path.join(self.target, temp_name(name, self.tag))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(self.target, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TargetError(f"writing {name} to {self.target}: {exc.strerror or exc}") from exc
        return len(data)

    # ---- the spool -----------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Stems of the complete results in the spool, oldest sidecar first."""
        found: list[tuple[int, str]] = []
        try:
            with os.scandir(self.spool) as entries:
                for entry in entries:
                    if not is_sidecar(entry.name):
                        continue
                    try:
                        if entry.is_file(follow_symlinks=False):
                            found.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name[: -len(".json")]))
                    except OSError:
                        continue
        except FileNotFoundError:
            return []
        found.sort()
        return [stem for _mtime, stem in found]

    def deliver(self, stem: str) -> int | None:
        """Carry one result; its size in bytes, or None when it stays in the spool."""
        wav, sidecar = f"{stem}.wav", f"{stem}.json"
        spool_wav, spool_sidecar = os.path.join(self.spool, wav), os.path.join(self.spool, sidecar)
        try:
            size = self.copy_in(spool_wav, wav)
        except FileNotFoundError:
            # A crash between removing the spool WAV and its sidecar: finish the job if
            # the WAV made it to the share; otherwise the sidecar stays (and is reported).
            if not self.target_has(wav):
                if stem not in self.orphans:
                    self.orphans.add(stem)
                    log.warning(
                        "%s has no WAV, neither in the spool nor in %s; left in the spool", spool_sidecar, self.target
                    )
                return None
            size = 0
        try:
            size += self.copy_in(spool_sidecar, sidecar)
        except FileNotFoundError:
            return None  # taken away meanwhile
        _sync_dir(self.target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool_wav)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool_sidecar)
        self.orphans.discard(stem)
        log.debug("delivered %s (%d bytes)", stem, size)
        return size

    # ---- passes --------------------------------------------------------------------------

    def run_pass(self) -> int:
        """Deliver what is complete in the spool, oldest first; returns how many."""
        started = time.monotonic()
        delivered, size = 0, 0
        try:
            stems = self.pending()
            if not stems and self.cleaned:
                return 0  # nothing to do: outputs.dir is not touched
            self.check_target()
            if not self.cleaned:
                self.remove_stale_temps()
            for stem in stems:
                if self.stopping:
                    break  # between results: the one in hand was finished
                moved = self.deliver(stem)
                if moved is not None:
                    delivered += 1
                    size += moved
        except TargetError as exc:
            self._outage(str(exc), delivered)
            return delivered
        except Exception as exc:  # a spool problem: report once per kind, keep going
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.error("pass failed after %d delivered: %s", delivered, message)
                self.last_error = message
            self._back_off()
            return delivered
        self.last_error = ""
        self.delay = self.cfg.mover.interval_s
        waiting = spool_backlog(self.spool)[0]
        if self.outage_since is not None:
            log.info(
                "delivery to %s resumed after %.0f s: %d result(s) delivered, %d waiting",
                self.target,
                time.monotonic() - self.outage_since,
                delivered,
                waiting,
            )
            self.outage_since = None
        elif delivered:
            log.info(
                "delivered %d result(s) (%.2f MiB) to %s in %.2f s; %d waiting",
                delivered,
                size / 1048576,
                self.target,
                time.monotonic() - started,
                waiting,
            )
        return delivered

    def _outage(self, reason: str, delivered: int) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            log.warning(
                "cannot deliver to %s: %s; %d result(s) wait in %s%s%s",
                self.target,
                reason,
                spool_backlog(self.spool)[0],
                self.spool,
                f" ({delivered} delivered before)" if delivered else "",
                "" if self.once else f"; retrying, backing off up to {self.cfg.mover.max_backoff_s:g} s",
            )
        self._back_off()

    def _back_off(self) -> None:
        self.delay = min(max(self.delay, self.cfg.mover.interval_s) * 2, self.cfg.mover.max_backoff_s)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early on SIGTERM / SIGINT (the handler only sets a flag)."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(SLEEP_SLICE_S, left))

    def loop(self) -> None:
        while not self.stopping:
            self.run_pass()
            self.sleep(self.delay)

    def lock(self, wait: bool) -> int | None:
        """Take <spool_dir>/.mover.lock (one mover per spool); None when another mover
        holds it (and wait is false, or a signal came while waiting)."""
        path = os.path.join(self.spool, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not told:
                    log.warning("another mover holds %s%s", path, "; waiting for it" if wait else "")
                    told = True
                if not wait or self.stopping:
                    os.close(fd)
                    return None
                self.sleep(self.cfg.mover.interval_s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cosyvoice_tts_server.mover",
        description="Carry complete results from outputs.spool_dir to outputs.dir.",
    )
    parser.add_argument("--config", default=os.environ.get("COSYVOICE_TTS_CONFIG", ""), help="YAML settings file")
    parser.add_argument("--once", action="store_true", help="one pass; exit 0 when the spool is empty then, else 1")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any setting, e.g. mover.interval_s=5"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config or None, parse_overrides(args.set), check_engine=False)
    except ConfigError as exc:
        print(f"{PROG}: invalid setting {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    mover = Mover(cfg, once=args.once)

    def on_signal(signum: int, _frame: Any) -> None:
        mover.stopping = True  # the loop sees it between results and while sleeping

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        ensure_spool(cfg.outputs.spool_dir)
        lock = mover.lock(wait=not args.once)
    except OSError as exc:
        log.error("cannot use the spool %s: %s", cfg.outputs.spool_dir, exc.strerror or exc)
        return 1
    if lock is None:
        return 0 if mover.stopping or spool_backlog(cfg.outputs.spool_dir)[0] == 0 else 1
    if os.geteuid() == 0:
        log.warning("running as root: files in %s will belong to root; run the mover as the service user", mover.target)
    log.info(
        "mover %s: %s -> %s, %s, host tag %s",
        __version__,
        mover.spool,
        mover.target,
        "one pass" if args.once else f"every {cfg.mover.interval_s:g} s",
        mover.tag,
    )
    if args.once:
        mover.run_pass()
        waiting = spool_backlog(cfg.outputs.spool_dir)[0]
        return 0 if waiting == 0 else 1
    mover.loop()
    log.info("stopped; %d result(s) wait in %s", spool_backlog(cfg.outputs.spool_dir)[0], mover.spool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
