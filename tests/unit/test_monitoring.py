"""monitoring/: the example Prometheus config, the alert rules and their promtool unit
tests, and the Grafana dashboard. promtool (Debian package `prometheus`) checks the
files; the metric names they use are checked against what the node server really
exposes and the exporters' names listed below."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "monitoring" / "prometheus"
DASHBOARD = ROOT / "monitoring" / "grafana" / "cosyvoice-cluster.json"
SERVER_DIR = ROOT / "roles" / "cosyvoice_node" / "files"

# Metrics from other exporters the rules and the dashboard may use. node_exporter's
# ipvs collector and dcgm-exporter: see shared/reference/keepalived-ipvs-facts.md.
EXPORTER_METRICS = {
    "up",  # Prometheus, per target
    "keepalived_vrrp_state",  # ours: keepalived's notify script, node_exporter textfile collector
    "node_ipvs_connections_total",
    "node_ipvs_backend_connections_active",
    "node_ipvs_backend_connections_inactive",
    "node_ipvs_backend_weight",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_GPU_UTIL",
}

# PromQL words that look like metric names.
PROMQL_WORDS = {"bool", "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_WORDS |= {"offset", "inf", "nan", "atan2"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool not found: install the Debian `prometheus` package "
            "(apt-get install --no-install-recommends prometheus; tools/ci/install-deps.sh does it)"
        )
    return subprocess.run([exe, *args], cwd=PROM, capture_output=True, text=True, timeout=120, check=False)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def load_yaml(name: str):
    return yaml.safe_load((PROM / name).read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (good enough for ours: no metric name in braces)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, label_replace args)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        word, call = match.groups()
        if not call and word not in PROMQL_WORDS:
            names.add(word)
    return names


def test_metric_names_helper():
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{instance=~"$node"}[$__rate_interval])))'
        ' / on (instance) group_left y == bool 2 or label_replace(z, "cause", "a b", "", "")'
    )
    assert metric_names(expr) == {"x_bucket", "y", "z"}


@pytest.fixture(scope="module")
def server_metrics() -> set[str]:
    """The sample names the node server exposes, every metric exercised once."""
    sys.path.insert(0, str(SERVER_DIR))
    try:
        from cosyvoice_tts_server import metrics as metrics_mod
    finally:
        sys.path.remove(str(SERVER_DIR))
    live = {
        "queue_depth": 0,
        "queue_max_size": 8,
        "in_flight": 0,
        "ready": 1,
        "draining": 0,
        "stuck_workers": 0,
        "spool_backlog_files": 0,
        "spool_oldest_age_seconds": 0.0,
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics_mod, "gpu_memory", lambda: [("cuda:0", 1, 2)])
        m = metrics_mod.Metrics("espeak", "n1", "0", lambda: live)
        m.request("rest")
        m.failure("rest", "timeout")
        m.observe("rest", 1.0)
        m.spooled.labels("espeak").inc()
        text = m.render().decode()
    return {re.match(r"[\w:]+", line).group(0) for line in text.splitlines() if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def known_metrics(server_metrics) -> set[str]:
    return server_metrics | EXPORTER_METRICS


# ---- promtool ------------------------------------------------------------------------------


def test_promtool_check_config():
    assert_ok(promtool("check", "config", "scrape.yml"))


def test_promtool_check_rules():
    assert_ok(promtool("check", "rules", "alerts.yml"))


def test_promtool_test_rules():
    proc = promtool("test", "rules", "alerts_test.yml")
    assert_ok(proc)
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_scrape_config_loads_the_alerts():
    assert load_yaml("scrape.yml")["rule_files"] == ["alerts.yml"]
    assert load_yaml("alerts_test.yml")["rule_files"] == ["alerts.yml"]


# ---- alerts and their tests ----------------------------------------------------------------


def test_every_alert_has_a_firing_and_a_quiet_test_case():
    firing, quiet = set(), set()
    for case in load_yaml("alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts, "no alerts in alerts.yml"
    assert not alerts - firing, f"alerts with no test case expecting them to fire: {sorted(alerts - firing)}"
    assert not alerts - quiet, f"alerts with no test case expecting silence: {sorted(alerts - quiet)}"
    assert not (firing | quiet) - alerts, f"tests of alerts that do not exist: {sorted((firing | quiet) - alerts)}"


def test_every_alert_has_for_severity_summary_and_description():
    for rule in alert_rules():
        assert rule.get("for"), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        annotations = rule.get("annotations", {})
        assert {"summary", "description"} <= set(annotations), rule["alert"]
        assert "Check first" in annotations["description"], rule["alert"]


def test_alerts_use_metrics_that_exist(known_metrics):
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - known_metrics
        assert not unknown, f"{rule['alert']}: unknown metrics {sorted(unknown)}"


def test_alert_tests_feed_metrics_that_exist(known_metrics):
    for case in load_yaml("alerts_test.yml")["tests"]:
        for series in case.get("input_series", []):
            name = re.match(r"[\w:]+", series["series"]).group(0)
            assert name in known_metrics, f"{case['name']}: unknown metric {name}"


# ---- Grafana dashboard ---------------------------------------------------------------------


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    return exprs


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_shape(dashboard):
    assert dashboard["schemaVersion"] == 39
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_uses_metrics_that_exist(dashboard, known_metrics):
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 10
    used = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert not names - known_metrics, f"{title}: unknown metrics {sorted(names - known_metrics)}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\(([\w:]+),\s*\w+\)", variable["definition"])
        assert match and match.group(1) in known_metrics, variable["definition"]
    # The panels the operators asked for.
    for name in (
        "keepalived_vrrp_state",
        "node_ipvs_backend_weight",
        "node_ipvs_backend_connections_active",
        "cosyvoice_tts_ready",
        "cosyvoice_tts_draining",
        "cosyvoice_tts_failures_total",
        "cosyvoice_tts_request_duration_seconds_bucket",
        "cosyvoice_tts_queue_max_size",
        "cosyvoice_tts_in_flight",
        "cosyvoice_tts_spool_oldest_age_seconds",
        "DCGM_FI_DEV_GPU_UTIL",
    ):
        assert name in used, name


def test_dashboard_exprs_parse(dashboard, tmp_path):
    """Every panel's expression, Grafana's variables filled in, as a recording rule for promtool."""
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$node", ".*")}
        for i, (_title, expr) in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_ok(promtool("check", "rules", str(path)))
