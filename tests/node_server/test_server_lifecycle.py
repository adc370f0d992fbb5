"""Timeout, spool fallback, SIGTERM, start-up failure and --check-config of the node server,
each against a real server process on 127.0.0.1 (espeak engine)."""

import base64
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from node_server_support import SERVER_DIR, ServerProcess, gradio_client, parse_wav, wait_for

TIMEOUT_S = 1.5


def rest_body(prompt, text, seed=3):
    return {
        "text": text,
        "mode": "zero_shot",
        "seed": seed,
        "prompt_text": "a test tone",
        "prompt_wav_b64": base64.b64encode(prompt.read_bytes()).decode(),
    }


@pytest.fixture(scope="module")
def short_timeout_server(tmp_path_factory):
    """queue.timeout_s 1.5 s while "[slow]" texts take 30 s; outputs.dir does not exist,
    so results go to the spool."""
    workdir = tmp_path_factory.mktemp("timeout-server")
    settings = {
        "queue": {"concurrency": 1, "max_size": 2, "timeout_s": TIMEOUT_S, "cancel_grace_s": 5},
        "espeak": {"test_delay_s": 30, "test_delay_marker": "[slow]"},
        "outputs": {"dir": str(workdir / "nfs-not-mounted")},
    }
    srv = ServerProcess(workdir, settings)
    srv.outputs.rmdir()
    srv.start()
    yield srv
    srv.stop()


def test_timeout_answers_504_and_frees_the_worker(short_timeout_server, prompt_clip):
    srv = short_timeout_server
    started = time.monotonic()
    resp = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "[slow] never finishes in time"))
    elapsed = time.monotonic() - started
    assert (resp.status_code, resp.json()["error"]) == (504, "timeout")
    assert TIMEOUT_S - 0.1 < elapsed < TIMEOUT_S + 3
    # The synthesis process (and its test delay) was killed, not left running.
    wait_for(lambda: srv.children() == [], 3, "the synthesis subprocess to be gone")
    assert srv.queue()["in_flight"] == 0
    started = time.monotonic()
    resp = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "the next one runs at once"))
    assert resp.status_code == 200
    assert parse_wav(resp.content)[1] > 0
    assert time.monotonic() - started < 3


def test_timeout_through_gradio(short_timeout_server, prompt_clip, tmp_path):
    client = gradio_client(short_timeout_server.url, tmp_path)
    args = ("[slow] gradio too", "zero_shot", handle_file(str(prompt_clip)), "a test tone", "", 5, True)
    with pytest.raises(AppError, match=r"\[504 timeout\]"):
        client.predict(*args, api_name="/synthesize")
    path, _ = client.predict("quick after that", *args[1:], api_name="/synthesize")
    assert parse_wav(open(path, "rb").read())[1] > 0
    metrics = short_timeout_server.http.get("/metrics").text
    assert 'cosyvoice_tts_failures_total{engine="espeak",reason="timeout",route="gradio"} 1.0' in metrics
    assert "cosyvoice_tts_stuck_workers 0.0" in metrics


def test_unwritable_outputs_spool_locally(short_timeout_server, prompt_clip):
    srv = short_timeout_server
    status, body = srv.readyz()
    assert status == 200
    assert body["outputs"] == "spool"
    resp = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "spooled result"))
    assert resp.status_code == 200
    assert resp.headers["x-tts-stored"] == "spool"
    stem = resp.headers["x-tts-output"]
    assert (srv.spool / f"{stem}.wav").read_bytes() == resp.content
    assert json.loads((srv.spool / f"{stem}.json").read_text())["text"] == "spooled result"
    assert not (srv.dir / "nfs-not-mounted").exists()  # a missing mount is never created
    assert 'cosyvoice_tts_outputs_spooled_total{engine="espeak"}' in srv.http.get("/metrics").text


def test_sigterm_lets_queued_and_in_flight_work_finish(tmp_path, prompt_clip):
    slow = 2.5
    settings = {
        "queue": {"concurrency": 1, "max_size": 2},
        "espeak": {"test_delay_s": slow, "test_delay_marker": "[slow]"},
        "shutdown": {"grace_s": 20, "linger_s": 1},
    }
    (tmp_path / "srv").mkdir()
    srv = ServerProcess(tmp_path / "srv", settings).start()
    try:
        client = gradio_client(srv.url, tmp_path)
        in_flight = client.submit(
            "[slow] started before SIGTERM",
            "zero_shot",
            handle_file(str(prompt_clip)),
            "a test tone",
            "",
            9,
            True,
            api_name="/synthesize",
        )
        wait_for(lambda: srv.queue()["in_flight"] == 1, 10, "the Gradio request to run")
        queued: dict = {}

        def rest_call():
            queued["resp"] = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "[slow] queued before SIGTERM"))

        waiter = threading.Thread(target=rest_call)
        waiter.start()
        wait_for(lambda: srv.queue()["depth"] == 1, 10, "the REST request to queue")

        srv.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: srv.readyz()[0] == 503, 5, "/readyz to fail")
        assert "SIGTERM" in srv.readyz()[1]["draining"]
        late = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "too late"))
        assert (late.status_code, late.json()["error"]) == (503, "shutting_down")

        path, _ = in_flight.result(timeout=3 * slow + 10)
        assert parse_wav(open(path, "rb").read())[1] > 0
        waiter.join(timeout=3 * slow + 10)
        assert queued["resp"].status_code == 200
        assert parse_wav(queued["resp"].content)[1] > 0
        assert srv.proc.wait(timeout=20) == 0
    finally:
        srv.stop()


def test_engine_that_cannot_load_exits_non_zero(tmp_path):
    srv = ServerProcess(tmp_path, {"espeak": {"binary": "no-such-espeak-binary"}})
    srv.proc = subprocess.Popen(
        [sys.executable, "-m", "cosyvoice_tts_server", "--config", str(srv.config)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SERVER_DIR), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = srv.proc.communicate(timeout=60)
    finally:
        srv.stop()
    assert srv.proc.returncode == 1
    assert "no-such-espeak-binary not found" in out


# --check-config: what the role uses as the template validator ---------------------------


def check_config(tmp_path, settings, *extra):
    path = tmp_path / "server.yml"
    path.write_text(settings if isinstance(settings, str) else yaml.safe_dump(settings, allow_unicode=True))
    return subprocess.run(
        [sys.executable, "-m", "cosyvoice_tts_server", "--check-config", "--config", str(path), *extra],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SERVER_DIR), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_accepts_a_good_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "cosyvoice3.yaml").write_text("{}\n")
    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(b"RIFF")
    res = check_config(
        tmp_path,
        {"engine": "cosyvoice", "cosyvoice": {"model_dir": str(model), "warmup_prompt_wav": str(prompt)}},
    )
    assert res.returncode == 0, res.stderr
    assert "config OK" in res.stdout


BAD_CONFIGS = [
    ("unknown engine", {"engine": "festival"}, "engine: unknown engine 'festival'"),
    ("queue size 0", {"engine": "espeak", "queue": {"max_size": 0}}, "queue.max_size: must be an integer in 1..10000"),
    ("timeout 0", {"engine": "espeak", "queue": {"timeout_s": 0}}, "queue.timeout_s: must be a number in 1..3600"),
    ("timeout huge", {"engine": "espeak", "queue": {"timeout_s": 99999}}, "queue.timeout_s:"),
    (
        "concurrency text",
        {"engine": "espeak", "queue": {"concurrency": "two"}},
        "queue.concurrency: must be an integer",
    ),
    ("port", {"engine": "espeak", "listen": {"port": 70000}}, "listen.port: must be an integer in 1..65535"),
    ("host", {"engine": "espeak", "listen": {"host": "not a host!"}}, "listen.host: must be an IP address"),
    ("unknown key", {"engine": "espeak", "queue": {"maxsize": 3}}, "queue.maxsize: unknown setting"),
    ("model dir missing", {"engine": "cosyvoice", "cosyvoice": {"model_dir": "/nonexistent"}}, "cosyvoice.model_dir:"),
    ("relative outputs", {"engine": "espeak", "outputs": {"dir": "out"}}, "outputs.dir: must be an absolute path"),
    ("not a mapping", "- a\n- list\n", "config: the file must hold a mapping"),
    ("bad yaml", "queue: [unclosed\n", "is not valid YAML"),
]


@pytest.mark.parametrize(("what", "settings", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_check_config_refuses_bad_settings(tmp_path, what, settings, message):
    res = check_config(tmp_path, settings)
    assert res.returncode == 2, (what, res.stdout, res.stderr)
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one line, naming the setting


def test_check_config_model_dir_without_model_yaml(tmp_path):
    (tmp_path / "model").mkdir()
    res = check_config(tmp_path, {"engine": "cosyvoice", "cosyvoice": {"model_dir": str(tmp_path / "model")}})
    assert res.returncode == 2
    assert "cosyvoice3.yaml, cosyvoice2.yaml, cosyvoice.yaml" in res.stderr


def test_check_config_cli_overrides(tmp_path):
    res = check_config(tmp_path, {"engine": "espeak"}, "--set", "queue.max_size=-1")
    assert res.returncode == 2
    assert "queue.max_size" in res.stderr
    res = check_config(tmp_path, {"engine": "espeak"}, "--port", "8080", "--set", "queue.timeout_s=30")
    assert res.returncode == 0, res.stderr
    assert "listen 0.0.0.0:8080" in res.stdout


def test_shipped_example_config_is_valid(tmp_path):
    example = SERVER_DIR / "cosyvoice_tts_server" / "server.example.yml"
    res = check_config(tmp_path, example.read_text(encoding="utf-8"), "--engine", "espeak")
    assert res.returncode == 0, res.stderr
    res = check_config(tmp_path, example.read_text(encoding="utf-8"))
    assert res.returncode == 2  # engine cosyvoice: the model dir of the example is not here
    assert res.stderr.startswith("cosyvoice-tts: invalid setting cosyvoice.model_dir:")
