"""Unit tests of the node server's pure parts: CosyVoice prompt building and call arguments
(no torch), settings, request validation, result files. No server process."""

import json
import os
import threading

import pytest
from cosyvoice_tts_server import config as config_mod
from cosyvoice_tts_server import outputs, prompts
from cosyvoice_tts_server.config import Config, ConfigError, LimitsConfig, load_config
from cosyvoice_tts_server.engine_base import Engine, EngineError
from cosyvoice_tts_server.engine_cosyvoice import CosyVoiceEngine, gpu_memory, import_paths, load_options
from cosyvoice_tts_server.engine_espeak import speakable, voice_params
from cosyvoice_tts_server.mover import host_tag, stale_pattern, temp_name
from cosyvoice_tts_server.service import Service, is_local_client
from cosyvoice_tts_server.tts_request import InputError, TtsRequest, build_request, parse_seed
from node_server_support import write_tone

EOP = "<|endofprompt|>"
LIMITS = LimitsConfig()


def req(mode, **kw):
    base = {"text": "收到好友从远方寄来的生日礼物。", "mode": mode, "seed": 1, "prompt_wav": "/p.wav"}
    return TtsRequest(**{**base, **kw})


# ---- CosyVoice prompts and call arguments ------------------------------------------------


def test_zero_shot_prompt_text_cosyvoice3():
    assert prompts.zero_shot_prompt_text("希望你以后能够做的比我还好呦。") == (
        "You are a helpful assistant.<|endofprompt|>希望你以后能够做的比我还好呦。"
    )


def test_instruct_text_cosyvoice3_dialect():
    assert prompts.instruct_text("请用四川话表达。") == "You are a helpful assistant. 请用四川话表达。<|endofprompt|>"


def test_cross_lingual_text_cosyvoice3():
    assert prompts.cross_lingual_text("Hello there.") == "You are a helpful assistant.<|endofprompt|>Hello there."


def test_cosyvoice2_prompts_have_no_system_prompt():
    assert prompts.zero_shot_prompt_text("transcript", "cosyvoice2") == "transcript"
    assert prompts.cross_lingual_text("text", "cosyvoice2") == "text"
    assert prompts.instruct_text("用四川话说这句话", "cosyvoice2") == "用四川话说这句话<|endofprompt|>"


def test_values_that_hold_endofprompt_pass_as_given():
    full = "You are a helpful assistant. 请用广东话表达。<|endofprompt|>"
    assert prompts.instruct_text(full) == full
    assert prompts.zero_shot_prompt_text(f"Custom system.{EOP}abc") == f"Custom system.{EOP}abc"
    assert prompts.cross_lingual_text(f"Sys.{EOP}[breath]text") == f"Sys.{EOP}[breath]text"


def test_zero_shot_call():
    call = prompts.build_inference_call(req("zero_shot", prompt_text="希望你以后能够做的比我还好呦。"))
    assert call.method == "inference_zero_shot"
    assert call.args == (
        "收到好友从远方寄来的生日礼物。",
        f"You are a helpful assistant.{EOP}希望你以后能够做的比我还好呦。",
        "/p.wav",
    )
    assert call.kwargs == {"stream": False, "text_frontend": True}


def test_cross_lingual_call():
    call = prompts.build_inference_call(req("cross_lingual", text="Hello."))
    assert call.method == "inference_cross_lingual"
    assert call.args == (f"You are a helpful assistant.{EOP}Hello.", "/p.wav")


def test_instruct_call_uses_instruct2():
    call = prompts.build_inference_call(req("instruct", instruct_text="请用广东话表达。"))
    assert call.method == "inference_instruct2"
    assert call.args[1] == f"You are a helpful assistant. 请用广东话表达。{EOP}"
    assert call.args[2] == "/p.wav"


def test_markup_passes_through_and_text_frontend_switch():
    text = "高管也通过电话对报道[j][ǐ]予好评, [M][AY0] name."
    call = prompts.build_inference_call(req("zero_shot", text=text, prompt_text="t", text_frontend=False))
    assert call.args[0] == text
    assert call.kwargs["text_frontend"] is False


def test_instruct_needs_cosyvoice2_or_3():
    with pytest.raises(InputError) as err:
        prompts.build_inference_call(req("instruct", instruct_text="x"), kind="cosyvoice")
    assert (err.value.status, err.value.code) == (400, "mode_unsupported")


def test_model_kind_from_directory_listing():
    assert prompts.model_kind(["llm.pt", "cosyvoice3.yaml", "flow.pt"]) == "cosyvoice3"
    assert prompts.model_kind(["cosyvoice2.yaml"]) == "cosyvoice2"
    assert prompts.model_kind(["cosyvoice.yaml", "spk2info.pt"]) == "cosyvoice"
    with pytest.raises(ValueError, match=r"cosyvoice3\.yaml"):
        prompts.model_kind(["README.md"])


def test_accepted_kwargs_drops_what_an_older_release_lacks():
    def old(tts_text, prompt_text, prompt_speech_16k, stream=False):
        return None

    def new(tts_text, prompt_text, prompt_wav, zero_shot_spk_id="", stream=False, speed=1.0, text_frontend=True):
        return None

    def anything(*args, **kwargs):
        return None

    kwargs = {"stream": False, "text_frontend": False}
    assert prompts.accepted_kwargs(old, kwargs) == ({"stream": False}, ["text_frontend"])
    assert prompts.accepted_kwargs(new, kwargs) == (kwargs, [])
    assert prompts.accepted_kwargs(anything, kwargs) == (kwargs, [])


def test_instruct_presets_cover_the_dialects():
    values = dict(prompts.INSTRUCT_PRESETS).values()
    assert len(prompts.DIALECTS) == 17
    assert "请用四川话表达。" in values
    assert "请用广东话表达。" in values  # 粤语
    assert all(EOP not in v for v in values)


def test_load_options_and_import_paths():
    cfg = config_mod.CosyvoiceConfig(load_trt=True)
    assert load_options(cfg) == {"load_trt": True}
    assert load_options(config_mod.CosyvoiceConfig()) == {}
    assert import_paths("/opt/CosyVoice") == ["/opt/CosyVoice", "/opt/CosyVoice/third_party/Matcha-TTS"]
    assert import_paths("") == []


def test_cosyvoice_engine_without_its_environment_fails_clearly(tmp_path):
    (tmp_path / "cosyvoice3.yaml").write_text("{}\n")
    engine = CosyVoiceEngine(config_mod.CosyvoiceConfig(model_dir=str(tmp_path)), "/p.wav", "t")
    assert engine.kind == "cosyvoice3"
    with pytest.raises(EngineError, match="cannot import CosyVoice"):
        engine.load()
    with pytest.raises(EngineError, match="not loaded"):
        engine.synthesize(req("zero_shot", prompt_text="t"), threading.Event())
    assert gpu_memory() == []  # torch is not imported here


# ---- espeak engine helpers ---------------------------------------------------------------


def test_espeak_voice_follows_the_seed():
    assert voice_params(1) == voice_params(1)
    assert voice_params(1) != voice_params(2)
    for seed in (1, 41, 12345, 100_000_000):
        pitch, speed = voice_params(seed)
        assert 30 <= pitch <= 70
        assert 150 <= speed <= 179


def test_espeak_reads_markup_as_letters():
    assert speakable("[h][ào] and [M][AY0]") == "hào and MAY0"


# ---- settings ----------------------------------------------------------------------------


def espeak_cfg(**overrides):
    return load_config(None, {"engine": "espeak", **overrides}, environ={})


def test_defaults_with_espeak():
    cfg = espeak_cfg()
    assert (cfg.listen.host, cfg.listen.port) == ("0.0.0.0", 7860)
    assert (cfg.queue.concurrency, cfg.queue.max_size, cfg.queue.timeout_s) == (1, 8, 60.0)
    assert cfg.espeak.test_delay_s == 0


def test_environment_and_cli_overrides():
    env = {"COSYVOICE_TTS_ENGINE": "espeak", "COSYVOICE_TTS_QUEUE_MAX_SIZE": "3", "COSYVOICE_TTS_NODE_NAME": "n1"}
    cfg = load_config(None, {"queue.max_size": "4"}, environ=env)
    assert cfg.queue.max_size == 4  # --set wins over the environment
    assert cfg.node_name == "n1"
    assert load_config(None, None, environ=env).queue.max_size == 3


def test_yaml_file(tmp_path):
    path = tmp_path / "server.yml"
    path.write_text("engine: espeak\nqueue:\n  timeout_s: 30\nlimits:\n  max_text_chars: 50\n")
    cfg = load_config(str(path), environ={})
    assert cfg.queue.timeout_s == 30.0
    assert cfg.limits.max_text_chars == 50


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"engine": "nope"}, "engine"),
        ({"queue.max_size": "0"}, "queue.max_size"),
        ({"queue.timeout_s": "0.5"}, "queue.timeout_s"),
        ({"queue.concurrency": "true"}, "queue.concurrency"),
        ({"listen.port": "0"}, "listen.port"),
        ({"listen.host": "bad host"}, "listen.host"),
        ({"queue.exit_if_stuck": "maybe"}, "queue.exit_if_stuck"),
        ({"limits.prompt_min_s": "40"}, "limits.prompt_min_s"),
        ({"outputs.spool_dir": "/var/lib/cosyvoice-tts/outputs"}, "outputs.spool_dir"),
        ({"log_level": "loud"}, "log_level"),
    ],
)
def test_bad_settings_name_the_setting(overrides, key):
    with pytest.raises(ConfigError) as err:
        espeak_cfg(**overrides)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")


def test_outputs_delivery_and_mover_settings():
    assert espeak_cfg().outputs.delivery == "direct"  # today's behaviour stays the default
    assert espeak_cfg(**{"outputs.delivery": "spool"}).outputs.delivery == "spool"
    cfg = espeak_cfg()
    assert (cfg.mover.interval_s, cfg.mover.max_backoff_s, cfg.mover.require_mountpoint) == (2.0, 30.0, False)
    for overrides, key in (
        ({"outputs.delivery": "nfs"}, "outputs.delivery"),
        ({"mover.interval_s": "0"}, "mover.interval_s"),
        ({"mover.interval_s": "5", "mover.max_backoff_s": "4"}, "mover.max_backoff_s"),
        ({"mover.require_mountpoint": "sometimes"}, "mover.require_mountpoint"),
    ):
        with pytest.raises(ConfigError) as err:
            espeak_cfg(**overrides)
        assert err.value.key == key
    listed = {key for key, _, _ in config_mod.describe_settings()}
    assert {"outputs.delivery", "mover.interval_s", "mover.max_backoff_s", "mover.require_mountpoint"} <= listed


def test_mover_config_skips_the_engine_files():
    overrides = {"engine": "cosyvoice", "cosyvoice.model_dir": "/nonexistent"}
    with pytest.raises(ConfigError):
        load_config(None, overrides, environ={})
    assert load_config(None, overrides, environ={}, check_engine=False).engine == "cosyvoice"


def test_unknown_setting():
    with pytest.raises(ConfigError, match=r"^queue\.size: unknown setting"):
        espeak_cfg(**{"queue.size": "1"})


def test_every_setting_has_an_environment_variable():
    names = [env for _, env, _ in config_mod.describe_settings()]
    assert "COSYVOICE_TTS_QUEUE_MAX_SIZE" in names
    assert "COSYVOICE_TTS_ESPEAK_TEST_DELAY_S" in names
    assert len(names) == len(set(names))
    assert isinstance(Config().queue.max_size, int)


# ---- request validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (100_000_000, 100_000_000), ("42", 42), (7.0, 7)],
)
def test_seed_accepted(value, expected):
    assert parse_seed(value) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [(0, "seed_out_of_range"), (100_000_001, "seed_out_of_range"), (-5, "seed_out_of_range"), ("x", "bad_seed"),
     (1.5, "bad_seed"), (True, "bad_seed")],
)  # fmt: skip
def test_seed_refused(value, code):
    with pytest.raises(InputError) as err:
        parse_seed(value)
    assert (err.value.status, err.value.code) == (400, code)


def test_missing_seed_is_random_in_range():
    assert 1 <= parse_seed(None) <= 100_000_000


def test_build_request_checks_in_order(tmp_path):
    clip = write_tone(tmp_path / "p.wav", 2.0)
    ok = build_request(text="hi", mode="cross_lingual", seed=5, prompt_wav=str(clip), limits=LIMITS)
    assert ok.prompt_info is not None
    assert ok.prompt_info.duration == pytest.approx(2.0)
    with pytest.raises(InputError) as err:
        build_request(text="", mode="nope", seed=0, prompt_wav=None, limits=LIMITS)
    assert err.value.code == "empty_text"  # the first problem is reported
    assert err.value.gradio_message() == "[400 empty_text] text is empty"


# ---- result files ------------------------------------------------------------------------


def test_result_files_are_written_atomically(tmp_path, monkeypatch):
    path = outputs.write_result(str(tmp_path), "stem", b"RIFFdata", {"text": "t"})
    assert path == str(tmp_path / "stem.wav")
    assert json.loads((tmp_path / "stem.json").read_text()) == {"text": "t", "wav": "stem.wav"}

    def failing_replace(src, dst):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        outputs.write_result(str(tmp_path), "broken", b"RIFF", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stem.json", "stem.wav"]  # no partial or temp file


def test_probe_writable(tmp_path):
    assert outputs.probe_writable(str(tmp_path))
    assert not outputs.probe_writable(str(tmp_path / "missing"))
    assert list(tmp_path.iterdir()) == []


def test_spool_backlog_counts_sidecars_only(tmp_path):
    assert outputs.spool_backlog(str(tmp_path / "missing")) == (0, None)
    assert outputs.spool_backlog(str(tmp_path)) == (0, None)
    outputs.write_result(str(tmp_path), "a", b"RIFF", {})
    outputs.write_result(str(tmp_path), "b", b"RIFF", {})
    os.utime(tmp_path / "a.json", (1000, 1000))
    (tmp_path / "c.wav").write_bytes(b"RIFF, no sidecar yet")
    (tmp_path / ".d.json.0123abcd.tmp").write_bytes(b"{}")
    (tmp_path / "dir.json").mkdir()
    assert outputs.spool_backlog(str(tmp_path)) == (2, 1000)


def test_mover_temp_names_carry_a_dotless_host_tag():
    tag = host_tag("node1.example.com")
    assert tag == "node1_example_com"
    name = temp_name("x.wav", tag)
    assert name.startswith(".x.wav.node1_example_com.")
    assert name.endswith(".tmp")
    assert stale_pattern(tag).match(name)
    assert not stale_pattern(host_tag("example.com")).match(name)  # another host's
    assert not stale_pattern(host_tag("com")).match(name)
    assert not stale_pattern(tag).match(".x.wav.0123abcd.tmp")  # the server's own temp file


def test_output_stem_is_safe():
    stem = outputs.output_stem("node/1 a", now=0)
    assert stem.startswith("19700101T000000Z-node_1_a-")


def test_drain_endpoint_needs_a_local_caller():
    assert is_local_client("127.0.0.1")
    assert is_local_client("::1")
    assert is_local_client("::ffff:127.0.0.1")
    assert not is_local_client("10.0.0.5")
    assert not is_local_client("testclient")
    assert not is_local_client(None)


# ---- metrics -----------------------------------------------------------------------------


def test_metrics_expose_the_configured_queue_max_size(tmp_path):
    """Alerts compare cosyvoice_tts_queue_depth with it (monitoring/prometheus/alerts.yml)."""
    cfg = espeak_cfg(**{"queue.max_size": "5", "outputs.spool_dir": str(tmp_path), "drain_file": str(tmp_path / "d")})
    service = Service(cfg, Engine(), node="n1")
    assert service.live_state()["queue_max_size"] == 5
    text = service.metrics.render().decode()
    assert "cosyvoice_tts_queue_max_size 5.0" in text.splitlines()
    assert "# TYPE cosyvoice_tts_queue_max_size gauge" in text
