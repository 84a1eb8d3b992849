"""Config: file, environment, flags; one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from oisp_sensor.config import ConfigError, load_config, unavailable_exporters

SEED_EXPORT = """
[export.jsonl]
enabled = true
path = "/var/log/oisp/events.jsonl"
append = true
pretty = false
flush_each = true
rotate_size_mb = 100
rotate_count = 5

[export.websocket]
enabled = true
port = 7777

[export.otlp]
enabled = true
endpoint = "https://otlp.example.com:4317"
protocol = "grpc"
service_name = "oisp-sensor"
batch_size = 100
flush_interval_ms = 5000
headers = { "Authorization" = "Bearer your-token" }
tls_cert_path = "/path/to/ca.crt"

[export.kafka]
enabled = true
brokers = "kafka1:9092,kafka2:9092,kafka3:9092"
topic = "oisp-events"
batch_size = 100
flush_interval_ms = 1000
compression = "snappy"
acks = "all"
security_protocol = "SASL_SSL"
sasl_mechanism = "PLAIN"
sasl_username = "user"
sasl_password = "password"

[export.webhook]
enabled = true
url = "https://your-service.com/events"
method = "POST"
batch_size = 10
flush_interval_ms = 5000
headers = { "Authorization" = "Bearer token", "Content-Type" = "application/json" }
timeout_ms = 30000
retry_count = 3

[redaction]
mode = "safe"
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_seed_export_config_is_accepted(tmp_path: Path) -> None:
    config, path = load_config(_write(tmp_path, SEED_EXPORT), environ={})
    assert path is not None
    assert config.export.jsonl.rotate_size_mb == 100
    assert config.export.kafka.brokers == ["kafka1:9092", "kafka2:9092", "kafka3:9092"]
    assert config.export.otlp.headers == {"Authorization": "Bearer your-token"}
    assert unavailable_exporters(config) == []  # every exporter of the seed exists


def test_kafka_brokers_as_list(tmp_path: Path) -> None:
    config, _ = load_config(_write(tmp_path, '[export.kafka]\nbrokers = ["localhost:9092"]\n'), environ={})
    assert config.export.kafka.brokers == ["localhost:9092"]


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config, path = load_config(None, environ={})
    if path is None:  # /etc may hold a config on a developer machine
        assert config.redaction.mode == "safe"
        assert config.export.jsonl.path == "oisp-events.jsonl"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[export.jsonl]\npathh = 'x'\n", "export.jsonl.pathh: unknown key"),
        ("[redaction]\nmode = 'loud'\n", "redaction.mode:"),
        ("[capture]\nring_buffer_mb_per_cpu = 'big'\n", "capture.ring_buffer_mb_per_cpu:"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        ("[export.jsonl\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), environ={})
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_environment_then_flags_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "[redaction]\nmode = 'safe'\n[export.jsonl]\npath = 'a.jsonl'\n")
    env = {"OISP_REDACTION__MODE": "minimal", "OISP_EXPORT__JSONL__ROTATE_COUNT": "7"}
    config, _ = load_config(path, environ=env)
    assert config.redaction.mode == "minimal"
    assert config.export.jsonl.rotate_count == 7
    config, _ = load_config(path, overrides={"redaction": {"mode": "full"}}, environ=env)
    assert config.redaction.mode == "full"


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"OISP_CONFIG": "/nonexistent/x.toml"})
    assert "not found" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config("/dev/null", environ={"OISP_CAPTURE__SSL": "perhaps"})
    assert "environment OISP_*: capture.ssl" in str(info.value)


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/oisp.toml", environ={})


def test_readme_config_example_is_valid(tmp_path: Path) -> None:
    """The configuration shown in the README loads as documented (docs cannot drift)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config, _ = load_config(_write(tmp_path, block), environ={})
    assert config.export.jsonl.rotate_size_mb == 100
    assert config.providers.extra_hosts == {"llm-gateway.internal": "openai"}
    assert config.capture.streaming_chunks is True
