"""The agent service: serial frames in, records into the outbox, records out to the broker.

One asyncio event loop; blocking work (serial reads, numpy and the interpreter, SQLite) runs in a
bounded executor. Pure parts (frames, windows, features, decision) are wired to I/O here only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plantwatch.agent.analysis import AssetAnalyser, model_ref
from plantwatch.agent.baseline import ANOMALY_INPUTS, CLASSIFIER_INPUTS
from plantwatch.agent.config import AgentSettings
from plantwatch.agent.frames import Frame
from plantwatch.agent.outbox import Outbox
from plantwatch.agent.publisher import Publisher
from plantwatch.agent.serial_input import SerialInputError, SerialReader
from plantwatch.agent.windows import WindowBatch, Windower
from plantwatch.clock import Clock, SystemClock, rfc3339
from plantwatch.contract import STATUS_SCHEMA, agent_status_topic
from plantwatch.log import event
from plantwatch.models.registry import (
    CLASSIFIER_KIND,
    DEFAULT_REGISTRY,
    AnomalyModel,
    FaultClassifier,
    load_model,
)
from plantwatch.mqtt import MqttClient, RetainedStatus, Will
from plantwatch.runtime import keep_status_fresh, supervise

log = logging.getLogger("plantwatch.agent")

SERIAL_REPORT_EVERY_S = 60.0
"""While the sensor's port stays unavailable, how often the log says so again."""

EXECUTOR_THREADS = 2
"""Serial reads and analysis each get a thread; more would only contend for the GIL and two cores."""


def load_agent_models(settings: AgentSettings) -> tuple[AnomalyModel, FaultClassifier | None]:
    """The configured anomaly model and fault classifier, each verified against its manifest and the
    inputs the agent computes (raises ``ModelMismatch``, ``ModelNotFound``)."""
    directory = Path(settings.model_dir) if settings.model_dir else DEFAULT_REGISTRY
    anomaly = load_model(directory, settings.model, expected_features=ANOMALY_INPUTS)
    classifier = None
    if settings.classifier:
        classifier = load_model(
            directory, settings.classifier, expected_features=CLASSIFIER_INPUTS, kind=CLASSIFIER_KIND
        )
    return anomaly, classifier


def _model_status(model: AnomalyModel | FaultClassifier) -> dict[str, object]:
    """A model's reference and the evaluation figures its manifest carries, for the status."""
    return {**dataclasses.asdict(model_ref(model)), "evaluation": dict(model.manifest.evaluation) or None}


class AgentService:
    """Runs one agent until it is stopped."""

    def __init__(self, settings: AgentSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.model, self.classifier = load_agent_models(settings)
        state_dir = Path(settings.state_dir)
        self.outbox = Outbox(
            state_dir / "agent.sqlite", agent=settings.agent_id, budget=settings.outbox.budget()
        )
        self.windower = Windower(window_samples=settings.window_samples, overlap=settings.overlap)
        self.analysers: dict[int, AssetAnalyser] = {}
        self.temperature_channels: dict[int, AssetAnalyser] = {}
        for asset in settings.assets:
            memory, baseline = self.outbox.load_asset(asset.id)
            analyser = AssetAnalyser(
                settings,
                asset,
                anomaly=self.model,
                classifier=self.classifier,
                memory_json=memory,
                baseline_json=baseline,
            )
            self.analysers[asset.vibration_channel] = analyser
            if asset.temperature_channel is not None:
                self.temperature_channels[asset.temperature_channel] = analyser
        self.executor = ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="agent")
        self.status_topic = agent_status_topic(settings.site, settings.agent_id)
        self._level = self.outbox.level()
        self.client = MqttClient(
            settings.mqtt.broker_settings(f"plantwatch-agent-{settings.site}-{settings.agent_id}"),
            will=Will(self.status_topic, self._status_payload("offline")),
            status=RetainedStatus(self.status_topic, lambda: self._status_payload("online")),
            max_in_flight=settings.mqtt.max_in_flight,
        )
        self.publisher = Publisher(
            self.outbox,
            self.client,
            window=settings.mqtt.max_in_flight,
            drain_rate_per_s=settings.outbox.drain_rate_per_s,
        )
        self.windows_analysed = 0
        self.unknown_channels: set[int] = set()
        self._stop = asyncio.Event()

    def _status_payload(self, state: str) -> bytes:
        # called from paho's thread on every connect: the cached level (refreshed each status interval,
        # not after every stored batch: a count over a large backlog does not belong on the hot path)
        level = self._level
        now = self.clock.now()
        percent = level.percent
        body = {
            "schema": STATUS_SCHEMA,
            "ts": rfc3339(now),
            "site": self.settings.site,
            "agent": self.settings.agent_id,
            "state": state,
            "buffered_records": level.records,
            "buffered_alerts": level.alerts,
            "oldest_record_age_s": round(now - level.oldest_created_at, 3)
            if level.oldest_created_at
            else 0.0,
            "last_seq": level.last_seq,
            "buffer": {
                "used_mb": round(level.used_bytes / 1e6, 3),
                "budget_mb": round(level.budget_bytes / 1e6, 3) if level.budget_bytes else None,
                "percent": round(percent, 1) if percent is not None else None,
                "records_thinned": level.records_thinned,
                "alarm": level.alarm,
            },
            "errors": self._errors(),
            "model": _model_status(self.model),
            "classifier": _model_status(self.classifier) if self.classifier else None,
            "assets": {analyser.asset.id: analyser.status() for analyser in self.analysers.values()},
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def _errors(self) -> list[str]:
        """What an operator must look at, in words (empty when all is well)."""
        errors = []
        moved = self.outbox.moved_aside
        if moved is not None:
            errors.append(
                f"database was corrupt ({moved.reason}); moved aside to {moved.path.name}, started fresh"
            )
        publisher = getattr(self, "publisher", None)  # the last will is rendered before it exists
        if publisher is not None and publisher.refused:
            errors.append(f"broker refuses records: {publisher.refused}")
        return errors

    def stop(self) -> None:
        """Ask the service to stop (signal handlers call this)."""
        self._stop.set()

    async def run(self) -> int:
        """Read, analyse, store and publish until :meth:`stop`; 1 if a part failed, else 0."""
        event(
            log,
            logging.INFO,
            "agent_starting",
            site=self.settings.site,
            agent=self.settings.agent_id,
            model=f"{self.model.manifest.name}-{self.model.manifest.version}",
            classifier=(
                f"{self.classifier.manifest.name}-{self.classifier.manifest.version}"
                if self.classifier
                else None
            ),
            assets=len(self.analysers),
            buffered=self._level.records,
            last_seq=self._level.last_seq,
        )
        await self.client.start()
        failed = await supervise(
            log,
            self._stop,
            {
                "publisher": self.publisher.run(),
                "reader": self._read_loop(),
                "status": keep_status_fresh(
                    log,
                    self.client,
                    self.status_topic,
                    lambda: self._status_payload("online"),
                    interval_s=self.settings.status_interval_s,
                    refresh=self._refresh_level,
                ),
            },
        )
        await self.client.stop(publish_offline=(self.status_topic, self._status_payload("offline")))
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.outbox.close()
        event(
            log,
            logging.INFO,
            "agent_stopped",
            windows=self.windows_analysed,
            published=self.publisher.published,
        )
        return 1 if failed else 0

    async def _refresh_level(self) -> None:
        loop = asyncio.get_running_loop()
        self._level = level = await loop.run_in_executor(self.executor, self.outbox.level)
        if not self.client.is_connected:
            # the status cannot reach anyone: the log says what is kept meanwhile
            event(
                log,
                logging.ERROR if self.client.refused else logging.WARNING,
                "buffering_offline",
                buffered=level.records,
                alerts=level.alerts,
                oldest_age_s=round(self.clock.now() - level.oldest_created_at, 1)
                if level.oldest_created_at
                else 0,
                thinned=level.records_thinned,
                reason=self.client.refused or self.client.last_error or "connecting",
            )
        elif level.records > self.settings.mqtt.max_in_flight:
            event(
                log,
                logging.INFO,
                "backlog_draining",
                buffered=level.records,
                alerts=level.alerts,
                published=self.publisher.published,
            )
        for asset in await loop.run_in_executor(self.executor, self.outbox.take_recommission_requests):
            analyser = next((a for a in self.analysers.values() if a.asset.id == asset), None)
            if analyser is None:
                event(log, logging.WARNING, "recommission_unknown_asset", asset=asset)
                continue
            # between batches: the analysis runs in the executor, and so does this
            await loop.run_in_executor(self.executor, analyser.recommission)

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        serial_settings = self.settings.serial
        failed_attempts = 0
        while True:
            try:
                reader = await loop.run_in_executor(
                    self.executor,
                    lambda: SerialReader(serial_settings.port, baudrate=serial_settings.baudrate),
                )
            except SerialInputError as error:
                # the first failure is news; repeats are logged once a minute, not every reopen delay
                if (
                    failed_attempts % max(1, round(SERIAL_REPORT_EVERY_S / serial_settings.reopen_delay_s))
                    == 0
                ):
                    event(
                        log,
                        logging.WARNING,
                        "serial_unavailable",
                        port=serial_settings.port,
                        attempts=failed_attempts + 1,
                        reason=error,
                    )
                failed_attempts += 1
                await asyncio.sleep(serial_settings.reopen_delay_s)
                continue
            failed_attempts = 0
            event(log, logging.INFO, "serial_open", port=serial_settings.port)
            try:
                while True:
                    frames = await loop.run_in_executor(self.executor, reader.read_frames)
                    if frames:
                        await self._handle_frames(frames)
            except SerialInputError as error:
                event(
                    log,
                    logging.WARNING,
                    "serial_lost",
                    port=serial_settings.port,
                    reason=error,
                    **vars(reader.stats),
                )
            finally:
                reader.close()
            await asyncio.sleep(serial_settings.reopen_delay_s)

    async def _handle_frames(self, frames: list[Frame]) -> None:
        batches: list[tuple[AssetAnalyser, WindowBatch]] = []
        for frame in frames:
            if frame.channel in self.temperature_channels:
                values = frame.values()
                if values.size:
                    self.temperature_channels[frame.channel].add_temperature(
                        frame.timestamp_us / 1e6, float(values[-1])
                    )
                continue
            analyser = self.analysers.get(frame.channel)
            if analyser is None:
                if frame.channel not in self.unknown_channels:
                    self.unknown_channels.add(frame.channel)
                    event(log, logging.WARNING, "unknown_channel", channel=frame.channel)
                continue
            batch = self.windower.add(
                frame.channel, frame.sequence, frame.timestamp_us, frame.fs_hz, frame.values()
            )
            if batch is not None:
                batches.append((analyser, batch))
        if batches:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._analyse_and_store, batches)
            self.publisher.wake.set()

    def _analyse_and_store(self, batches: list[tuple[AssetAnalyser, WindowBatch]]) -> None:
        drafts = []
        touched: dict[str, AssetAnalyser] = {}
        for analyser, batch in batches:
            drafts.extend(analyser.analyse(batch))
            touched[analyser.asset.id] = analyser
        stored = self.outbox.append(
            drafts, now_s=self.clock.now(), assets=[a.update() for a in touched.values()]
        )
        self.windows_analysed += len(stored)
        for record in stored:
            if record.is_alert:
                event(
                    log,
                    logging.WARNING if record.state != "normal" else logging.INFO,
                    "alert_stored",
                    asset=record.asset,
                    state=record.state,
                    previous=record.previous_state,
                    failure_mode=record.failure_mode,
                    score=record.score,
                    seq=record.seq,
                    id=record.id,
                )
