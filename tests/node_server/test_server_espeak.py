"""The node server end to end: one real server process (espeak engine) on 127.0.0.1, driven
with the real gradio_client and plain HTTP.

Server settings: concurrency 1, queue max_size 1, texts containing "[slow]" take 2.5 s
(espeak.test_delay_s, a test-only knob), at most 200 characters of text.
"""

import base64
import json
import threading
import time

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from node_server_support import ServerProcess, gradio_client, parse_wav, wait_for

SLOW_S = 2.5
SETTINGS = {
    "queue": {"concurrency": 1, "max_size": 1, "timeout_s": 60},
    "limits": {"max_text_chars": 200},
    "espeak": {"test_delay_s": SLOW_S, "test_delay_marker": "[slow]"},
}
SIDECAR_FIELDS = {"text", "mode", "seed", "engine", "duration", "node"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("server"), SETTINGS).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return gradio_client(server.url, tmp_path_factory.mktemp("downloads"))


@pytest.fixture
def idle(server):
    """Each test starts and ends with nothing queued and nothing running."""
    wait_for(lambda: server.queue() == {"depth": 0, "max_size": 1, "in_flight": 0, "concurrency": 1}, 30, "idle")
    yield server
    wait_for(lambda: server.queue()["in_flight"] == 0 and server.queue()["depth"] == 0, 30, "idle after the test")


def ui_args(prompt, text="Hello from the test.", seed=7, mode="zero_shot", prompt_text="a test tone", instruct=""):
    return (text, mode, handle_file(str(prompt)) if prompt else None, prompt_text, instruct, seed, True)


def predict(client, prompt, **kw):
    return client.predict(*ui_args(prompt, **kw), api_name="/synthesize")


def rest_body(prompt, text="Hello from the test.", seed=7, mode="zero_shot", prompt_text="a test tone", **extra):
    body = {"text": text, "mode": mode, "seed": seed, "prompt_text": prompt_text, **extra}
    if prompt is not None:
        body["prompt_wav_b64"] = base64.b64encode(prompt.read_bytes()).decode()
    return body


def test_livez(server):
    resp = server.http.get("/livez")
    assert resp.status_code == 200
    assert resp.json()["status"] == "alive"
    assert resp.json()["engine"] == "espeak"


def test_readyz_reports_every_condition(idle):
    status, body = idle.readyz()
    assert status == 200
    assert body["ready"] is True
    assert set(body["checks"]) == {
        "model_loaded",
        "warmup_done",
        "outputs_writable_or_spooled",
        "not_draining",
        "queue_not_saturated",
        "no_stuck_worker",
    }
    assert body["outputs"] == "outputs"


def test_gradio_synthesis_gives_wav_and_atomic_sidecar(idle, client, prompt_clip):
    path, info = predict(client, prompt_clip, text="Gradio path works.", seed=11)
    data = open(path, "rb").read()
    rate, frames = parse_wav(data)
    assert rate == 22050
    assert frames > 0
    assert info["engine"] == "espeak"
    assert info["stored"] == "outputs"
    wav = idle.outputs / f"{info['output']}.wav"
    sidecar = json.loads((idle.outputs / f"{info['output']}.json").read_text())
    assert wav.read_bytes() == data
    assert SIDECAR_FIELDS <= set(sidecar)
    assert sidecar["text"] == "Gradio path works."
    assert sidecar["mode"] == "zero_shot"
    assert sidecar["seed"] == 11
    assert sidecar["engine"] == "espeak"
    assert sidecar["node"] == "test-node"
    assert sidecar["duration"] == pytest.approx(frames / rate, abs=0.002)
    assert sidecar["wav"] == wav.name
    assert sidecar["stored"] == "outputs"
    # Written under a hidden temporary name and renamed: nothing half-written is left.
    assert not [p.name for p in idle.outputs.iterdir() if p.name.startswith(".")]


def test_rest_synthesis_gives_wav(idle, prompt_clip):
    resp = idle.http.post("/v1/tts", json=rest_body(prompt_clip, mode="cross_lingual", seed=12))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav"
    rate, frames = parse_wav(resp.content)
    assert (rate, frames > 0) == (22050, True)
    assert resp.headers["x-tts-seed"] == "12"
    stem = resp.headers["x-tts-output"]
    assert (idle.outputs / f"{stem}.wav").read_bytes() == resp.content
    assert json.loads((idle.outputs / f"{stem}.json").read_text())["mode"] == "cross_lingual"


def test_same_seed_same_audio_other_seed_differs(idle, client, prompt_clip):
    text = "Reproducible speech, please."
    first = open(predict(client, prompt_clip, text=text, seed=4242)[0], "rb").read()
    second = open(predict(client, prompt_clip, text=text, seed=4242)[0], "rb").read()
    rest = idle.http.post("/v1/tts", json=rest_body(prompt_clip, text=text, seed=4242)).content
    other = open(predict(client, prompt_clip, text=text, seed=4243)[0], "rb").read()
    assert first == second == rest
    assert other != first
    assert parse_wav(other)[1] > 0


def test_instruct_mode_and_markup(idle, client, prompt_clip):
    path, info = predict(
        client, prompt_clip, text="你好[h][ào], [M][AY0] test.", mode="instruct", instruct="请用四川话表达。"
    )
    assert parse_wav(open(path, "rb").read())[1] > 0
    sidecar = json.loads((idle.outputs / f"{info['output']}.json").read_text())
    assert sidecar["mode"] == "instruct"
    assert sidecar["instruct_text"] == "请用四川话表达。"
    assert sidecar["text"] == "你好[h][ào], [M][AY0] test."


REST_ERRORS = [
    ("empty text", {"text": "   "}, "ok", 400, "empty_text"),
    ("text too long", {"text": "x" * 201}, "ok", 413, "text_too_long"),
    ("seed 0", {"seed": 0}, "ok", 400, "seed_out_of_range"),
    ("seed too big", {"seed": 100_000_001}, "ok", 400, "seed_out_of_range"),
    ("seed not a number", {"seed": "abc"}, "ok", 400, "bad_seed"),
    ("unknown mode", {"mode": "sing"}, "ok", 400, "bad_mode"),
    ("no prompt clip", {}, None, 400, "prompt_missing"),
    ("no transcript", {"prompt_text": ""}, "ok", 400, "prompt_text_missing"),
    ("instruct without instruction", {"mode": "instruct"}, "ok", 400, "instruct_missing"),
    ("clip too short", {}, "short", 422, "prompt_too_short"),
    ("clip too long", {}, "long", 422, "prompt_too_long"),
    ("clip not audio", {}, "not_audio", 415, "prompt_unsupported_format"),
    ("unknown field", {"voice": "x"}, "ok", 400, "bad_request"),
]


@pytest.mark.parametrize(("what", "change", "clip", "status", "code"), REST_ERRORS, ids=[e[0] for e in REST_ERRORS])
def test_rest_input_errors(idle, prompt_clip, clips, what, change, clip, status, code):
    prompt = prompt_clip if clip == "ok" else (clips[clip] if clip else None)
    started = time.monotonic()
    resp = idle.http.post("/v1/tts", json={**rest_body(prompt), **change})
    assert resp.status_code == status, (what, resp.text)
    assert resp.json()["error"] == code
    assert resp.json()["detail"]
    assert time.monotonic() - started < 5


def test_rest_malformed_bodies(idle):
    assert idle.http.post("/v1/tts", content=b"{not json").json()["error"] == "bad_request"
    assert idle.http.post("/v1/tts", json=["a list"]).status_code == 400
    bad_b64 = idle.http.post("/v1/tts", json={"text": "x", "prompt_text": "t", "prompt_wav_b64": "%%%"})
    assert (bad_b64.status_code, bad_b64.json()["error"]) == (400, "bad_request")


GRADIO_ERRORS = [
    ("empty text", {"text": ""}, "ok", "[400 empty_text]"),
    ("seed out of range", {"seed": 0}, "ok", "[400 seed_out_of_range]"),
    ("clip too short", {}, "short", "[422 prompt_too_short]"),
    ("clip too long", {}, "long", "[422 prompt_too_long]"),
    ("clip not audio", {}, "not_audio", "[415 prompt_unsupported_format]"),
    ("text too long", {"text": "y" * 201}, "ok", "[413 text_too_long]"),
]


@pytest.mark.parametrize(("what", "change", "clip", "prefix"), GRADIO_ERRORS, ids=[e[0] for e in GRADIO_ERRORS])
def test_gradio_input_errors(idle, client, prompt_clip, clips, what, change, clip, prefix):
    prompt = prompt_clip if clip == "ok" else clips[clip]
    with pytest.raises(AppError) as err:
        predict(client, prompt, **change)
    assert prefix in str(err.value), (what, str(err.value))


def test_still_serving_after_errors(idle, client, prompt_clip):
    assert idle.http.get("/livez").status_code == 200
    path, _ = predict(client, prompt_clip, text="Still here.")
    assert parse_wav(open(path, "rb").read())[1] > 0


def test_queue_cannot_be_bypassed(idle):
    # api_open=False: the direct route that would skip the queue is closed.
    resp = idle.http.post("/gradio_api/run/synthesize", json={"data": ["x", "zero_shot", None, "t", "", 1, True]})
    assert resp.status_code == 404


def test_ui_labels_the_test_engine(idle):
    config = idle.http.get("/config")
    assert config.status_code == 200
    assert "espeak-ng CPU test engine — not CosyVoice" in config.text


def test_full_queue_is_refused_fast(idle, client, prompt_clip):
    running = client.submit(*ui_args(prompt_clip, text="[slow] one"), api_name="/synthesize")
    wait_for(lambda: idle.queue()["in_flight"] == 1, 10, "the first request to run")
    waiting = client.submit(*ui_args(prompt_clip, text="[slow] two"), api_name="/synthesize")
    wait_for(lambda: idle.queue()["depth"] == 1, 10, "the second request to wait")

    started = time.monotonic()
    with pytest.raises(QueueError):
        predict(client, prompt_clip, text="no room")
    assert time.monotonic() - started < 2

    started = time.monotonic()
    resp = idle.http.post("/v1/tts", json=rest_body(prompt_clip))
    assert (resp.status_code, resp.json()["error"]) == (503, "queue_full")
    assert time.monotonic() - started < 1
    status, body = idle.readyz()
    assert status == 503
    assert body["failing"] == ["queue_not_saturated"]

    for job in (running, waiting):
        path, _ = job.result(timeout=4 * SLOW_S + 10)
        assert parse_wav(open(path, "rb").read())[1] > 0
    wait_for(lambda: idle.readyz()[0] == 200, 10, "/readyz 200 again")


def test_rest_waits_behind_gradio_on_the_shared_limiter(idle, client, prompt_clip):
    running = client.submit(*ui_args(prompt_clip, text="[slow] gradio first"), api_name="/synthesize")
    wait_for(lambda: idle.queue()["in_flight"] == 1, 10, "the Gradio request to run")
    started = time.monotonic()
    resp = idle.http.post("/v1/tts", json=rest_body(prompt_clip, text="rest second"))
    assert resp.status_code == 200
    waited = json.loads((idle.outputs / f"{resp.headers['x-tts-output']}.json").read_text())["queue_wait_s"]
    assert waited > 0.5  # it queued behind the Gradio request: one limiter for both paths
    assert time.monotonic() - started < SLOW_S + 5
    assert parse_wav(open(running.result(timeout=SLOW_S + 10)[0], "rb").read())[1] > 0


def test_drain_fails_readyz_while_in_flight_work_completes(idle, client, prompt_clip):
    job = client.submit(*ui_args(prompt_clip, text="[slow] finish me while draining"), api_name="/synthesize")
    wait_for(lambda: idle.queue()["in_flight"] == 1, 10, "the request to run")
    resp = idle.http.post("/drain")
    assert resp.status_code == 200
    assert resp.json()["draining"] is True
    status, body = idle.readyz()
    assert status == 503
    assert body["failing"] == ["not_draining"]
    assert body["draining"] == ["POST /drain"]
    path, _ = job.result(timeout=SLOW_S + 10)
    assert parse_wav(open(path, "rb").read())[1] > 0
    assert idle.readyz()[0] == 503
    assert idle.http.delete("/drain").json()["draining"] is False
    assert idle.readyz()[0] == 200


def test_drain_file(idle):
    idle.drain_file.write_text("")
    try:
        status, body = idle.readyz()
        assert status == 503
        assert body["draining"] == [f"drain file {idle.drain_file}"]
        assert idle.http.get("/drain").json()["draining"] is True
    finally:
        idle.drain_file.unlink()
    assert idle.readyz()[0] == 200


def test_metrics(idle, prompt_clip):
    assert idle.http.post("/v1/tts", json=rest_body(prompt_clip)).status_code == 200
    assert idle.http.post("/v1/tts", json=rest_body(prompt_clip, text="")).status_code == 400
    resp = idle.http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    for needle in (
        'cosyvoice_tts_requests_total{engine="espeak",route="rest"}',
        'cosyvoice_tts_requests_total{engine="espeak",route="gradio"}',
        'cosyvoice_tts_failures_total{engine="espeak",reason="empty_text",route="rest"}',
        'cosyvoice_tts_failures_total{engine="espeak",reason="queue_full",route="gradio"}',
        'cosyvoice_tts_request_duration_seconds_bucket{engine="espeak",le="0.5",route="rest"}',
        "cosyvoice_tts_queue_depth 0.0",
        "cosyvoice_tts_queue_max_size 1.0",
        "cosyvoice_tts_in_flight 0.0",
        "cosyvoice_tts_ready 1.0",
        "cosyvoice_tts_draining 0.0",
        'cosyvoice_tts_info{engine="espeak",node="test-node"',
    ):
        assert needle in text, needle
    assert "gpu_memory" not in text  # no torch here: the GPU metrics are absent


def test_access_log_has_one_json_line_per_request(idle, prompt_clip):
    before = idle.access_log.read_text().splitlines()
    ok = idle.http.post("/v1/tts", json=rest_body(prompt_clip, text="logged"))
    idle.http.post("/v1/tts", json=rest_body(prompt_clip, seed=-1))
    idle.http.get("/livez")  # health checks are not synthesis requests: not logged

    def new_lines():
        lines = idle.access_log.read_text().splitlines()[len(before) :]
        return lines if len(lines) >= 2 else None

    lines = wait_for(new_lines, 5, "two access log lines")
    entries = [json.loads(line) for line in lines]
    assert [(e["route"], e["status"], e["code"]) for e in entries] == [
        ("rest", 200, "ok"),
        ("rest", 400, "seed_out_of_range"),
    ]
    assert entries[0]["client"] == "127.0.0.1"
    assert entries[0]["chars"] == len("logged")
    # The stem of the result file, so that a line can be matched with its files.
    assert entries[0]["output"] == ok.headers["x-tts-output"]
    assert entries[0]["stored"] == "outputs"
    assert "output" not in entries[1]


def test_concurrent_rest_clients_are_all_answered(idle, prompt_clip):
    # Two slow requests fill the slot and the waiting room; the third is refused: every
    # client gets an answer (200 or 503) and nothing hangs.
    results: list[int] = []

    def call(text):
        with httpx.Client(base_url=idle.url, timeout=30, trust_env=False) as http:
            results.append(http.post("/v1/tts", json=rest_body(prompt_clip, text=text)).status_code)

    threads = [threading.Thread(target=call, args=(f"[slow] rest {i}",)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    wait_for(lambda: idle.queue()["depth"] == 1, 10, "one waiting request")
    call("refused")
    for t in threads:
        t.join(timeout=4 * SLOW_S + 10)
    assert sorted(results) == [200, 200, 503]
