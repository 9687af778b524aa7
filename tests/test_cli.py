"""Every command answers --help with an example; --check-config accepts good files and names bad keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

AGENT = "plantwatch.agent.cli"
GATEWAY = "plantwatch.gateway.cli"
SIMULATORS = "plantwatch.simulators.cli"
MODELS = "plantwatch.models.cli"

AGENT_TOML = """\
site = "plant1"
agent_id = "gw-line3"
state_dir = "state"

[serial]
port = "/dev/ttyUSB0"

[mqtt]
host = "127.0.0.1"
port = 1883

[[assets]]
id = "pump-7"
vibration_channel = 0
temperature_channel = 1
shaft_hz = 29.95
"""

GATEWAY_TOML = """\
site = "plant1"
gateway_id = "gw1"
state_dir = "state"

[mqtt]
host = "127.0.0.1"
port = 1883

[erp]
kind = "sap"
base_url = "http://127.0.0.1:8080"
"""


def run(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command as its console script would, through the interpreter running the tests."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "args", "program"),
    [
        (AGENT, [], "plantwatch-agent"),
        (GATEWAY, [], "plantwatch-gateway"),
        (SIMULATORS, [], "plantwatch-sim"),
        (SIMULATORS, ["machine"], "plantwatch-sim machine"),
        (SIMULATORS, ["sap"], "plantwatch-sim sap"),
        (MODELS, [], "plantwatch-models"),
        (MODELS, ["build"], "plantwatch-models build"),
        (MODELS, ["list"], "plantwatch-models list"),
        (MODELS, ["verify"], "plantwatch-models verify"),
    ],
)
def test_every_command_answers_help_with_an_example(module: str, args: list[str], program: str) -> None:
    result = run(module, *args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {program}")
    assert "example" in result.stdout.lower()
    # the example shows the command itself being used
    example = result.stdout.lower().split("example", 1)[1]
    assert program.split()[0] in example


def test_agent_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(AGENT_TOML, encoding="utf-8")
    result = run(AGENT, "--config", "agent.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration ok")
    assert "site=plant1 agent=gw-line3 assets=1" in result.stdout
    assert "model=anomaly-ae-" in result.stdout
    assert not (tmp_path / "state").exists()  # checking starts nothing and writes no state


def test_agent_check_config_refuses_a_bad_key_with_exit_2_naming_it(tmp_path: Path) -> None:
    bad = AGENT_TOML.replace('host = "127.0.0.1"', 'hostname = "127.0.0.1"').replace(
        "port = 1883", "port = 0"
    )
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    result = run(AGENT, "--config", "bad.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "bad.toml" in result.stderr
    assert "mqtt.hostname: unknown key" in result.stderr
    assert "mqtt.port: must be a port number" in result.stderr


def test_agent_check_config_refuses_a_missing_file_with_exit_2(tmp_path: Path) -> None:
    result = run(AGENT, "--config", "absent.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "absent.toml: file not found" in result.stderr


def test_agent_check_config_refuses_a_model_directory_without_the_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    text = AGENT_TOML.replace('state_dir = "state"', 'state_dir = "state"\nmodel_dir = "models"')
    (tmp_path / "agent.toml").write_text(text, encoding="utf-8")
    result = run(AGENT, "--config", "agent.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "model refused" in result.stderr


def test_gateway_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text(GATEWAY_TOML, encoding="utf-8")
    result = run(GATEWAY, "--config", "gateway.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration ok")
    assert "site=plant1 gateway=gw1 erp=sap" in result.stdout
    assert not (tmp_path / "state").exists()


def test_gateway_check_config_refuses_a_bad_key_with_exit_2_naming_it(tmp_path: Path) -> None:
    bad = GATEWAY_TOML.replace('kind = "sap"', 'kind = "sap"\nurl = "http://x"')
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    result = run(GATEWAY, "--config", "bad.toml", "--check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "erp.url: unknown key" in result.stderr


@pytest.mark.parametrize("module", [AGENT, GATEWAY])
def test_a_service_without_config_is_a_usage_error(module: str) -> None:
    result = run(module)
    assert result.returncode == 2
    assert "--config" in result.stderr
