"""The simulated fleet: its assets, the agent configuration rendered from it, and the stream of its frames."""

from __future__ import annotations

import doctest
import tomllib
from pathlib import Path

import numpy as np
import pytest

from plantwatch.agent.config import AgentSettings
from plantwatch.agent.frames import Frame, FrameDecoder, encode
from plantwatch.config import ConfigError, build, load
from plantwatch.simulators import cli, fleet
from plantwatch.simulators.fleet import (
    FleetAsset,
    agent_asset_tables,
    bearing_name,
    check_fleet,
    default_fleet,
)
from plantwatch.simulators.machine import BEARINGS, FaultSpec, MachineSpec
from plantwatch.simulators.plant import agent_toml
from plantwatch.simulators.streamer import StreamSettings, snapshot_frames, stream

HEADER = """\
site = "plant1"
agent_id = "gw-line1"

[serial]
port = "/dev/ttyUSB0"

"""


def test_default_fleet_has_one_faulty_and_two_different_healthy_machines() -> None:
    assets = default_fleet()
    assert [a.asset_id for a in assets] == ["pump-7", "fan-2", "compressor-4"]
    assert [(a.vibration_channel, a.temperature_channel) for a in assets] == [(0, 1), (2, 3), (4, 5)]
    assert [a.fault.mode if a.fault else None for a in assets] == ["outer_race", None, None]
    assert assets[0].machine == MachineSpec()
    assert bearing_name(assets[0].machine.bearing) == "SKF 6205"
    assert len({a.machine.bearing for a in assets}) == 3
    assert len({round(a.machine.running_hz) for a in assets}) == 3
    assert all(bearing_name(a.machine.bearing) in BEARINGS for a in assets)


def test_default_fleet_takes_the_fault_for_pump_7() -> None:
    fault = FaultSpec(mode="looseness", onset_s=10.0, life_s=20.0)
    assert default_fleet(fault=fault)[0].fault == fault
    assert all(a.fault is None for a in default_fleet(fault=None))


def test_agent_config_rendered_from_the_fleet_loads_and_matches_it() -> None:
    assets = default_fleet()
    settings = build(AgentSettings, tomllib.loads(HEADER + agent_asset_tables(assets)))
    assert [a.id for a in settings.assets] == [a.asset_id for a in assets]
    for configured, asset in zip(settings.assets, assets, strict=True):
        assert configured.vibration_channel == asset.vibration_channel
        assert configured.temperature_channel == asset.temperature_channel
        assert configured.shaft_hz == pytest.approx(asset.machine.running_hz, rel=1e-5)
        expected = asset.machine.bearing.defect_orders()
        assert configured.bearing.orders() == pytest.approx(expected, rel=1e-4)
    # slip: the loaded compressor runs below its no-load speed, and the agent is told the running speed
    assert settings.assets[2].shaft_hz < assets[2].machine.shaft_hz


def test_plant_agent_config_file_loads_with_every_fleet_asset(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        agent_toml(
            site="demo",
            agent_id="gw-line1",
            port_path="/tmp/sensor.tty",
            mqtt={"host": "127.0.0.1", "port": 1883, "username": "gw-line1", "tls_ca_file": "/tmp/ca.crt"},
            state_dir=tmp_path / "agent",
            fleet=default_fleet(),
            outbox={"disk_budget_mb": 2.5, "drain_rate_per_s": 0},
        )
    )
    settings = load(path, AgentSettings)
    assert [a.id for a in settings.assets] == ["pump-7", "fan-2", "compressor-4"]
    assert (settings.mqtt.port, settings.mqtt.username, settings.mqtt.tls_ca_file) == (
        1883,
        "gw-line1",
        "/tmp/ca.crt",
    )
    assert (settings.outbox.disk_budget_mb, settings.outbox.drain_rate_per_s) == (2.5, 0.0)


def test_a_fleet_with_a_channel_used_twice_is_refused_here_and_by_the_agent() -> None:
    pump, fan, _ = default_fleet()
    clash = (pump, FleetAsset("fan-2", fan.machine, None, vibration_channel=1, temperature_channel=3))
    with pytest.raises(ValueError, match="channel 1 is used by both pump-7 and fan-2"):
        check_fleet(clash)
    with pytest.raises(ValueError, match="unique; repeated: pump-7"):
        check_fleet((pump, pump))
    with pytest.raises(ValueError, match="at least one asset"):
        agent_asset_tables(())
    # the agent's own loader would refuse the same clash: rendered by hand, it fails to build
    tables = agent_asset_tables((pump,)) + "\n" + agent_asset_tables((clash[1],))
    with pytest.raises(ConfigError, match="channel 1 is used by both pump-7 and fan-2"):
        build(AgentSettings, tomllib.loads(HEADER + tables))


def test_fleet_asset_refuses_a_bad_id_or_channel() -> None:
    with pytest.raises(ValueError, match="must match"):
        FleetAsset("Pump 7", MachineSpec(), None, 0, 1)
    with pytest.raises(ValueError, match="0..255"):
        FleetAsset("pump-7", MachineSpec(), None, 0, 256)
    with pytest.raises(ValueError, match="must differ"):
        FleetAsset("pump-7", MachineSpec(), None, 3, 3)


def decode(data: bytes) -> list[Frame]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.buffered == 0
    return frames


def test_a_fleet_snapshot_sends_each_assets_vibration_then_its_temperature() -> None:
    settings = StreamSettings(start_epoch_s=1_700_000_000.0, snapshot_samples=2048, fleet=default_fleet())
    sequences: dict[int, int] = {}
    rng = np.random.default_rng(1)
    frames = snapshot_frames(settings, 0, rng, sequences)
    assert [f.channel for f in frames] == [0, 0, 1, 2, 2, 3, 4, 4, 5]
    frames = decode(b"".join(encode(f) for f in snapshot_frames(settings, 1, rng, sequences)))
    assert [f.sequence for f in frames if f.channel == 2] == [2, 3]
    assert [f.sequence for f in frames if f.channel == 5] == [1]
    temperatures = {f.channel: float(f.values()[0]) for f in frames if f.fs_hz == 1}
    # each asset's own ambient and operating rise (load raises it): 45, 43, 57.4 °C
    assert temperatures == pytest.approx({1: 45.0, 3: 43.0, 5: 57.4}, abs=1.0)
    assert all(f.timestamp_us == 1_700_000_900_000_000 for f in frames if f.fs_hz == 1)


def test_one_machine_still_streams_on_its_own_channels() -> None:
    settings = StreamSettings(
        start_epoch_s=0.0,
        duration_s=1800.0,
        snapshot_samples=1024,
        vibration_channel=7,
        temperature_channel=9,
        fault=None,
    )
    assert [a.asset_id for a in settings.assets()] == ["pump-7"]
    chunks: list[bytes] = []
    progress: list[tuple[int, int, float]] = []
    sent = stream(settings, chunks.append, progress=lambda *args: progress.append(args))
    frames = decode(b"".join(chunks))
    assert sent == len(frames) == 6
    assert [f.channel for f in frames] == [7, 9] * 3
    assert progress == [(1, 3, 0.0), (2, 3, 0.0), (3, 3, 0.0)]


def test_stream_reports_the_faulty_assets_progress() -> None:
    fault = FaultSpec(onset_s=900.0, life_s=1800.0)
    settings = StreamSettings(
        start_epoch_s=0.0, duration_s=2700.0, snapshot_samples=1024, fleet=default_fleet(fault=fault)
    )
    progress: list[float] = []
    stream(
        settings, lambda data: None, progress=lambda done, total, degradation: progress.append(degradation)
    )
    assert progress == [0.0, 0.0, 0.5, 1.0]


def test_cli_prints_the_agent_tables_of_what_it_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--log-level", "ERROR", "machine", "--fleet", "--print-agent-assets"]) == 0
    assert capsys.readouterr().out == agent_asset_tables(default_fleet())
    assert cli.main(["--log-level", "ERROR", "machine", "--fault", "ball", "--print-agent-assets"]) == 0
    assert capsys.readouterr().out == agent_asset_tables(default_fleet()[:1])


@pytest.mark.parametrize(
    "mode", ["outer_race", "inner_race", "ball", "imbalance", "misalignment", "looseness"]
)
def test_cli_grows_every_fault_mode(mode: str) -> None:
    args = cli.parser().parse_args(
        ["machine", "--fleet", "--fault", mode, "--onset-days", "0.5", "--life-days", "2"]
    )
    settings = cli.machine_settings(args)
    pump = settings.assets()[0]
    assert pump.fault == FaultSpec(mode=mode, onset_s=43_200.0, life_s=172_800.0)
    assert [a.fault for a in settings.assets()[1:]] == [None, None]


def test_docstring_examples_run() -> None:
    assert doctest.testmod(fleet, raise_on_error=False).failed == 0
