"""The one configuration loader, with the agent's and the gateway's settings, and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantwatch.agent.config import AgentSettings
from plantwatch.config import ConfigError, build, load, secret
from plantwatch.gateway.config import GatewaySettings

AGENT_TOML = """\
site = "plant1"
agent_id = "gw-line3"
state_dir = "state"

[serial]
port = "/dev/ttyUSB0"

[mqtt]
host = "broker.plant1.local"
port = 8883
username = "gw-line3"

[[assets]]
id = "pump-7"
vibration_channel = 0
temperature_channel = 1
shaft_hz = 29.95
[assets.bearing]
bpfo = 3.585
bpfi = 5.415
bsf = 2.357
ftf = 0.398

[[assets]]
id = "fan-2"
vibration_channel = 2
shaft_hz = 24
"""

GATEWAY_TOML = """\
site = "plant1"
gateway_id = "gw1"
state_dir = "state"

[mqtt]
host = "broker.plant1.local"
port = 8883

[erp]
kind = "sap"
base_url = "https://s4.example.com"
user = "PLANTWATCH"

[policy]
create_on = "warning"
"""


def write(tmp_path: Path, text: str, name: str = "service.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, cls: type = AgentSettings) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), cls)
    return caught.value.problems


def test_the_agent_example_loads(tmp_path: Path) -> None:
    settings = load(write(tmp_path, AGENT_TOML), AgentSettings)
    assert (settings.site, settings.agent_id, settings.serial.port) == ("plant1", "gw-line3", "/dev/ttyUSB0")
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.username) == (
        "broker.plant1.local",
        8883,
        "gw-line3",
    )
    pump, fan = settings.assets
    assert (pump.id, pump.vibration_channel, pump.temperature_channel) == ("pump-7", 0, 1)
    assert pump.bearing.orders() == {"bpfo": 3.585, "bpfi": 5.415, "bsf": 2.357, "ftf": 0.398}
    # an integer where a number is expected is taken as a float; defaults fill the rest
    assert fan.shaft_hz == 24.0 and isinstance(fan.shaft_hz, float)
    assert fan.temperature_channel is None
    assert (settings.window_samples, settings.overlap, settings.mqtt.keepalive_s) == (4096, 0.5, 30)


def test_the_gateway_example_loads(tmp_path: Path) -> None:
    settings = load(write(tmp_path, GATEWAY_TOML), GatewaySettings)
    assert (settings.site, settings.gateway_id) == ("plant1", "gw1")
    assert (settings.erp.kind, settings.erp.base_url) == ("sap", "https://s4.example.com")
    assert settings.policy.create_on == "warning"
    assert settings.mqtt.port == 8883


def test_the_examples_in_the_config_module_docstrings_load(tmp_path: Path) -> None:
    import plantwatch.agent.config as agent_config
    import plantwatch.gateway.config as gateway_config

    for module, cls in ((agent_config, AgentSettings), (gateway_config, GatewaySettings)):
        example = module.__doc__.split("Example::", 1)[1]
        text = "\n".join(line[4:] for line in example.splitlines())
        assert load(write(tmp_path, text), cls).site == "plant1"


def test_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    text = AGENT_TOML.replace('host = "broker.plant1.local"', 'hostname = "broker.plant1.local"')
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("mqtt.hostname: unknown key")
    assert "host" in problem  # the known keys are listed


def test_an_unknown_key_in_an_array_of_tables_names_its_index(tmp_path: Path) -> None:
    text = AGENT_TOML.replace("shaft_hz = 24\n", "shaft_hz = 24\nspeed_rpm = 1440\n")
    assert problems(tmp_path, text)[0].startswith("assets[1].speed_rpm: unknown key")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("port = 8883", 'port = "8883"', "mqtt.port: expected an integer"),
        ("port = 8883", "port = 8883.0", "mqtt.port: expected an integer"),
        ("port = 8883", "port = true", "mqtt.port: expected an integer"),
        ('username = "gw-line3"', "username = 3", "mqtt.username: expected a string"),
        ("shaft_hz = 29.95", 'shaft_hz = "29.95"', "assets[0].shaft_hz: expected a number"),
        ("[serial]", "serial = 1\n[serial_]", "serial: expected a table"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    found = problems(tmp_path, AGENT_TOML.replace(old, new, 1))
    assert any(problem.startswith(expected) for problem in found), found


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("port = 8883", "port = 0", "mqtt.port: must be a port number"),
        ("port = 8883", "port = 65536", "mqtt.port: must be a port number"),
        ('id = "pump-7"', 'id = "Pump-7"', "assets[0].id: must match [a-z0-9_-]+"),
        ('id = "pump-7"', 'id = "pump-7\\n"', "assets[0].id: must match [a-z0-9_-]+"),
        ('site = "plant1"', 'site = "plant 1"', "site: must match"),
        ("shaft_hz = 29.95", "shaft_hz = 0", "assets[0].shaft_hz: must be greater than 0"),
        (
            "vibration_channel = 2",
            "vibration_channel = 256",
            "assets[1].vibration_channel: must be a channel",
        ),
        ("[serial]", "window_samples = 1000\n[serial]", "window_samples: must be a power of two"),
        ("[serial]", "overlap = 1.0\n[serial]", "overlap: must be within [0, 1)"),
        ("[serial]", 'log_level = "LOUD"\n[serial]', "log_level: must be DEBUG"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    found = problems(tmp_path, AGENT_TOML.replace(old, new, 1))
    assert any(problem.startswith(expected) for problem in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GATEWAY_TOML.replace('create_on = "warning"', 'create_on = "normal"'),
            "policy.create_on: 'normal' is not",
        ),
        (GATEWAY_TOML.replace('kind = "sap"', 'kind = "oracle"'), "erp.kind: 'oracle' is not"),
        (GATEWAY_TOML.replace("https://s4", "ftp://s4"), "erp.base_url: must start with http"),
    ],
)
def test_a_bad_gateway_value_is_refused_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text, GatewaySettings)
    assert any(problem.startswith(expected) for problem in found), found


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        ('agent_id = "gw-line3"\n', "agent_id: required"),
        ('port = "/dev/ttyUSB0"\n', "serial.port: required"),
        ("shaft_hz = 29.95\n", "assets[0].shaft_hz: required"),
    ],
)
def test_a_missing_required_key_is_refused_naming_it(tmp_path: Path, old: str, expected: str) -> None:
    assert expected in problems(tmp_path, AGENT_TOML.replace(old, "", 1))


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = (
        AGENT_TOML.replace("port = 8883", "port = 0")
        .replace('id = "pump-7"', 'id = "Pump-7"')
        .replace('agent_id = "gw-line3"\n', "")
        .replace('host = "broker.plant1.local"', 'hostname = "x"')
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, AgentSettings)
    found = caught.value.problems
    assert len(found) == 4
    for key in ("mqtt.port:", "assets[0].id:", "agent_id: required", "mqtt.hostname:"):
        assert any(problem.startswith(key) for problem in found), (key, found)
        assert key in str(caught.value)


def test_a_channel_used_by_two_assets_is_refused(tmp_path: Path) -> None:
    text = AGENT_TOML.replace(
        "vibration_channel = 2", "vibration_channel = 1"
    )  # pump-7's temperature channel
    (problem,) = problems(tmp_path, text)
    assert "channel 1 is used by both pump-7 and fan-2" in problem


def test_an_asset_whose_two_channels_are_the_same_is_refused(tmp_path: Path) -> None:
    text = AGENT_TOML.replace("temperature_channel = 1", "temperature_channel = 0")
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("assets[0]:") and "must differ" in problem


def test_duplicate_asset_ids_are_refused(tmp_path: Path) -> None:
    text = AGENT_TOML.replace('id = "fan-2"', 'id = "pump-7"')
    assert any("asset ids must be unique" in problem for problem in problems(tmp_path, text))


def test_an_agent_without_assets_is_refused(tmp_path: Path) -> None:
    text = "assets = []\n" + AGENT_TOML.split("[[assets]]")[0]
    (problem,) = problems(tmp_path, text)
    assert "at least one [[assets]]" in problem


def test_a_missing_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load(path, AgentSettings)
    assert caught.value.source == str(path)
    assert str(caught.value) == f"{path}: file not found"


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'site = "plant1\n')
    with pytest.raises(ConfigError) as caught:
        load(path, AgentSettings)
    assert str(caught.value).startswith(f"{path}: not valid TOML")


def test_a_problem_in_a_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, AGENT_TOML.replace("port = 8883", "port = 0"))
    with pytest.raises(ConfigError) as caught:
        load(path, AgentSettings)
    assert str(caught.value).startswith(f"{path}: mqtt.port:")


def test_build_without_a_file_reports_only_the_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        build(GatewaySettings, {"site": "plant1"})
    assert caught.value.problems == ["gateway_id: required"]
    assert caught.value.source is None


# --- secrets -----------------------------------------------------------------------------------------


def test_secret_prefers_the_systemd_credential_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mqtt-password").write_text("from-credentials\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("PLANTWATCH_MQTT_PASSWORD", "from-environment")
    assert secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD") == "from-credentials"


def test_secret_falls_back_to_the_environment_without_a_credential_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))  # the directory holds no such file
    monkeypatch.setenv("PLANTWATCH_MQTT_PASSWORD", "from-environment")
    assert secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD") == "from-environment"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD") == "from-environment"


def test_secret_is_none_when_nobody_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("PLANTWATCH_MQTT_PASSWORD", raising=False)
    assert secret("mqtt-password", env="PLANTWATCH_MQTT_PASSWORD") is None


def test_secrets_are_not_accepted_in_the_toml(tmp_path: Path) -> None:
    text = AGENT_TOML.replace('username = "gw-line3"', 'username = "gw-line3"\npassword = "hunter2"')
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("mqtt.password: unknown key")


OUTBOX_TOML = AGENT_TOML.replace(
    '[[assets]]\nid = "pump-7"', '[outbox]\n{outbox}\n\n[[assets]]\nid = "pump-7"', 1
)


def test_the_outbox_table_sets_the_disk_budget_and_the_drain_rate(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(OUTBOX_TOML.format(outbox="disk_budget_mb = 64\ndrain_rate_per_s = 0\nkeep_one_in = 8"))
    outbox = load(path, AgentSettings).outbox
    assert (outbox.disk_budget_mb, outbox.drain_rate_per_s, outbox.keep_one_in) == (64.0, 0.0, 8)
    budget = outbox.budget()
    assert (budget.budget_bytes, budget.thin_at, budget.thin_to, budget.keep_one_in) == (
        64_000_000,
        0.8,
        0.6,
        8,
    )


def test_the_outbox_defaults_bound_the_disk_and_the_drain(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(AGENT_TOML)
    outbox = load(path, AgentSettings).outbox
    assert (outbox.disk_budget_mb, outbox.drain_rate_per_s) == (512.0, 5000.0)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("disk_budget_mb = 0.5", "outbox.disk_budget_mb: must be at least 1"),
        ("drain_rate_per_s = -1", "outbox.drain_rate_per_s: must be 0 (unlimited) or more"),
        ("keep_one_in = 1", "outbox.keep_one_in: must be at least 2"),
        (
            "thin_at_percent = 50\nthin_to_percent = 70",
            "outbox: thin_to_percent must be below thin_at_percent",
        ),
        ("budget_mb = 10", "outbox.budget_mb: unknown key"),
    ],
)
def test_a_bad_outbox_value_is_refused_naming_the_key(tmp_path: Path, table: str, expected: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(OUTBOX_TOML.format(outbox=table))
    with pytest.raises(ConfigError) as caught:
        load(path, AgentSettings)
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_broker_settings_take_tls_from_the_table_and_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("PLANTWATCH_MQTT_PASSWORD", "from-the-environment")
    path = tmp_path / "agent.toml"
    path.write_text(
        AGENT_TOML.replace('username = "gw-line3"', 'username = "gw-line3"\ntls_ca_file = "/etc/ca.pem"')
    )
    broker = load(path, AgentSettings).mqtt.broker_settings("client-1", persistent_session=True)
    assert (broker.host, broker.port, broker.client_id, broker.username, broker.password) == (
        "broker.plant1.local",
        8883,
        "client-1",
        "gw-line3",
        "from-the-environment",
    )
    assert broker.tls is not None and (broker.tls.ca_file, broker.tls.cert_file) == ("/etc/ca.pem", None)
    assert broker.persistent_session
