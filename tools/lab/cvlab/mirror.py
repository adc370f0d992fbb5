"""The lab's loopback mirror: one HTTP connection served on stdin/stdout.

QEMU starts this once per guest connection to mirror.lab:80 (10.0.2.100)
through `guestfwd=...-cmd:`, so no port is ever opened on the host and VM
traffic never leaves the machine. It serves the cached mirror directory: a flat
apt repository under /debian/ and a PEP 503 index under /pypi/simple/.

    python3 mirror.py MIRROR_DIR
"""

import http.server
import os
import re
import sys


class _StdioHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: apt fetches many files per connection

    def setup(self):
        self.connection = None
        self.rfile = sys.stdin.buffer
        self.wfile = sys.stdout.buffer

    def finish(self):
        try:
            self.wfile.flush()
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        return


def serve(directory):
    handler = _StdioHandler.__new__(_StdioHandler)
    handler.directory = os.fspath(directory)
    handler.client_address = ("guest", 0)
    handler.server = None
    handler.request = None
    handler.setup()
    try:
        handler.handle()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        handler.finish()


def write_pip_index(pypi_dir):
    """Build simple/<project>/index.html from the wheels in pypi_dir/files."""
    files_dir = os.path.join(pypi_dir, "files")
    simple = os.path.join(pypi_dir, "simple")
    projects = {}
    for fname in sorted(os.listdir(files_dir)) if os.path.isdir(files_dir) else []:
        if not fname.endswith((".whl", ".tar.gz")):
            continue
        project = re.sub(r"[-_.]+", "-", fname.split("-", 1)[0]).lower()
        projects.setdefault(project, []).append(fname)
    os.makedirs(simple, exist_ok=True)
    for project, fnames in projects.items():
        os.makedirs(os.path.join(simple, project), exist_ok=True)
        links = "".join(f'<a href="../../files/{f}">{f}</a><br>\n' for f in fnames)
        with open(os.path.join(simple, project, "index.html"), "w", encoding="utf-8") as fh:
            fh.write(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    with open(os.path.join(simple, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(
            "<!DOCTYPE html><html><body>\n"
            + "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(projects))
            + "</body></html>\n"
        )
    return sorted(projects)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: mirror.py MIRROR_DIR")
    serve(sys.argv[1])
