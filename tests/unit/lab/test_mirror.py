"""The loopback mirror serves HTTP/1.1 keep-alive on stdin/stdout (QEMU guestfwd cmd:)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tools", "lab"))
MIRROR = os.path.join(REPO, "tools", "lab", "cvlab", "mirror.py")

from cvlab.mirror import write_pip_index  # noqa: E402


def test_two_requests_on_one_connection(tmp_path):
    (tmp_path / "debian").mkdir()
    (tmp_path / "debian" / "Packages").write_text("Package: demo\n")
    req = (
        b"GET /debian/Packages HTTP/1.1\r\nHost: mirror.lab\r\n\r\n"
        b"GET /debian/missing HTTP/1.1\r\nHost: mirror.lab\r\nConnection: close\r\n\r\n"
    )
    out = subprocess.run(
        [sys.executable, MIRROR, str(tmp_path)], input=req, capture_output=True, timeout=30, check=True
    ).stdout
    assert out.startswith(b"HTTP/1.0 200") or out.startswith(b"HTTP/1.1 200")
    assert b"Package: demo" in out
    assert b" 404 " in out.split(b"Package: demo", 1)[1]


def test_pip_index_normalises_project_names(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "Gradio_Client-2.7.2-py3-none-any.whl").write_bytes(b"")
    (files / "zope.interface-7.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    (files / "notes.txt").write_text("ignored")
    assert write_pip_index(str(tmp_path)) == ["gradio-client", "zope-interface"]
    page = (tmp_path / "simple" / "gradio-client" / "index.html").read_text()
    assert 'href="../../files/Gradio_Client-2.7.2-py3-none-any.whl"' in page
