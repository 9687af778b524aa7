"""A stand-in for the MES: which production order and lot run on each asset, published as the wire
contract's retained production context (``plantwatch/v1/{site}/mes/{asset}/context``, QoS 1).

The gateway needs the context to hold the right lot when an asset ran out of its normal state (DESIGN.md,
"Wire contract"); a real MES publishes it through its own MQTT connector. This simulator publishes what a
test or the demo tells it, in two ways:

- directly: :meth:`MesSimulator.start_order` (an order starts on an asset) and :meth:`MesSimulator.stop`
  (the asset goes idle), each at a given time;
- from a plan: a list of changes ``(at_s, asset, production_order, lot, material)`` (``production_order``
  None: the asset goes idle), published by :meth:`MesSimulator.advance_to` as time passes; time is the
  caller's (e.g. the simulated time of the machine simulator), so a plan over days replays in seconds.
  :meth:`MesSimulator.run_plan` drives a plan from a :class:`~plantwatch.clock.Clock`.

Every payload is checked with :func:`plantwatch.contract.parse_context` before it is sent, so the
simulator cannot publish what a gateway would refuse. It connects with the project's
:class:`~plantwatch.mqtt.MqttClient` and a :class:`~plantwatch.mqtt.BrokerSettings` (user name, password
and TLS as for the agent; the shipped ACL lets the user ``mes`` write only context topics).

Example (inside a coroutine)::

    settings = BrokerSettings("127.0.0.1", broker.port, client_id="plantwatch-mes")
    plan = [(0.0, "press-3", "1000123", "L-0042", "BRK-DISC-220"), (3600.0, "press-3", None, None, None)]
    async with MesSimulator(settings, site="plant1", plan=plan) as mes:
        await mes.advance_to(0.0)  # press-3 runs order 1000123 from t = 0
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from plantwatch.clock import Clock, rfc3339
from plantwatch.contract import (
    CONTEXT_SCHEMA,
    ProductionContext,
    context_topic,
    parse_context,
    uuid7,
)
from plantwatch.log import event
from plantwatch.mqtt import BrokerSettings, MqttClient, MqttError

log = logging.getLogger("plantwatch.simulators.mes")

CONNECT_TIMEOUT_S = 10.0
"""How long :meth:`MesSimulator.connect` waits for the broker (a local Mosquitto answers at once)."""

PLAN_POLL_S = 0.05
"""How often :meth:`MesSimulator.run_plan` reads its clock, in seconds of wall time."""


class MesError(RuntimeError):
    """The MES simulator could not connect or publish; ``str()`` says what and why."""


@dataclass(frozen=True)
class PlanStep:
    """One change of a plan: from ``at_s`` (epoch seconds), ``asset`` runs ``production_order``.

    ``production_order`` None: the asset goes idle (then ``lot``, ``material``, ``quantity`` and ``unit``
    must be None). ``quantity`` / ``unit``: how much the lot holds (both or neither).
    """

    at_s: float
    asset: str
    production_order: str | None
    lot: str | None = None
    material: str | None = None
    quantity: float | None = None
    unit: str | None = None


class MesSimulator:
    """Publishes production context for the assets of one ``site``, retained at QoS 1.

    - ``broker``: where and how to connect (its ``client_id`` is the MES's MQTT client id).
    - ``site``: the site whose assets this MES serves.
    - ``plan``: changes to publish as :meth:`advance_to` passes their times (:class:`PlanStep` or
      ``(at_s, asset, production_order, lot, material)`` tuples); sorted by time, stable.
    - ``plant``, ``storage_location``: where lots made here are stocked, written into every running
      context (``plant`` also into idle ones).

    Use as ``async with`` (connects, and disconnects at the end) or call :meth:`connect` /
    :meth:`close`. Not thread-safe: one event loop.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        *,
        site: str,
        plan: Iterable[PlanStep | Sequence[object]] = (),
        plant: str | None = None,
        storage_location: str | None = None,
    ) -> None:
        steps = [step if isinstance(step, PlanStep) else PlanStep(*step) for step in plan]  # type: ignore[arg-type]
        self.site = site
        self.plant = plant
        self.storage_location = storage_location
        self._plan = sorted(steps, key=lambda step: step.at_s)
        self._next_step = 0
        self._current: dict[str, ProductionContext] = {}
        self._changed_at_s: dict[str, float] = {}
        self._client = MqttClient(broker)
        self._connected = False
        # a bad plan fails here, naming the field, not hours into a demo
        for step in self._plan:
            self._context(step.asset, step.production_order, step.lot, step.material, step.at_s, step)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def connect(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect to the broker; :class:`MesError` if that fails within ``timeout_s``."""
        if self._connected:
            return
        await self._client.start()
        self._connected = True
        if not await self._client.wait_connected(timeout_s):
            why = self._client.refused or self._client.last_error or "no answer"
            await self.close()
            raise MesError(
                f"MES simulator: no connection to {self._client.settings.host}:{self._client.settings.port}"
                f" within {timeout_s:g} s ({why})"
            )

    async def close(self) -> None:
        """Disconnect. The retained contexts stay on the broker, as a real MES's would."""
        if self._connected:
            self._connected = False
            await self._client.stop()

    async def __aenter__(self) -> MesSimulator:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- direct changes ------------------------------------------------------------------------------

    async def start_order(
        self,
        asset: str,
        production_order: str,
        lot: str | None,
        material: str | None,
        at_s: float,
        *,
        quantity: float | None = None,
        unit: str | None = None,
    ) -> ProductionContext:
        """Publish that ``production_order`` (lot ``lot`` of ``material``) runs on ``asset`` from ``at_s``.

        ``at_s``: epoch seconds, both the order's start (``since``) and the message's ``ts``. Returns the
        context published; raises :class:`~plantwatch.contract.PayloadError` (a ``ValueError``) for values
        the contract refuses, ``ValueError`` for a time before the asset's last change, :class:`MesError`
        if the broker did not acknowledge it.
        """
        step = PlanStep(at_s, asset, production_order, lot, material, quantity, unit)
        return await self._publish(self._context(asset, production_order, lot, material, at_s, step), at_s)

    async def stop(self, asset: str, at_s: float) -> ProductionContext:
        """Publish that ``asset`` is idle from ``at_s`` (epoch seconds); see :meth:`start_order`."""
        context = self._context(asset, None, None, None, at_s, PlanStep(at_s, asset, None))
        return await self._publish(context, at_s)

    def context(self, asset: str) -> ProductionContext | None:
        """The last context this simulator published for ``asset``, or None."""
        return self._current.get(asset)

    # --- plan ----------------------------------------------------------------------------------------

    @property
    def pending(self) -> tuple[PlanStep, ...]:
        """The plan's changes not yet published, in order."""
        return tuple(self._plan[self._next_step :])

    async def advance_to(self, now_s: float) -> list[ProductionContext]:
        """Publish, in order, every planned change due by ``now_s`` (epoch seconds) and not yet published.

        Returns what was published. If the broker is away, stops at the change that failed (it stays
        pending, for the next call) and returns what went out before it; a plan never skips a change.
        """
        published: list[ProductionContext] = []
        while self._next_step < len(self._plan) and self._plan[self._next_step].at_s <= now_s:
            step = self._plan[self._next_step]
            context = self._context(
                step.asset, step.production_order, step.lot, step.material, step.at_s, step
            )
            try:
                published.append(await self._publish(context, step.at_s))
            except MesError as error:
                event(log, logging.WARNING, "mes_plan_step_deferred", asset=step.asset, reason=error)
                break
            self._next_step += 1
        return published

    async def run_plan(self, clock: Clock, *, poll_s: float = PLAN_POLL_S) -> None:
        """Publish the plan's changes as ``clock`` reaches their times; return when all are published.

        ``clock``: the time the plan's ``at_s`` refer to (e.g. the demo's simulated clock). Cancel the
        task to stop early.
        """
        while self.pending:
            await self.advance_to(clock.now())
            if self.pending:
                await asyncio.sleep(poll_s)

    # --- internals -----------------------------------------------------------------------------------

    def _context(
        self,
        asset: str,
        production_order: str | None,
        lot: str | None,
        material: str | None,
        at_s: float,
        step: PlanStep,
    ) -> ProductionContext:
        """The context for a change, checked against the contract."""
        running = production_order is not None
        stamp = rfc3339(at_s)
        context = ProductionContext(
            schema=CONTEXT_SCHEMA,
            id=uuid7(),
            site=self.site,
            asset=asset,
            ts=stamp,
            production_order=production_order,
            lot=lot,
            material=material,
            since=stamp,
            plant=self.plant,
            storage_location=self.storage_location if running else None,
            quantity=step.quantity,
            unit=step.unit,
        )
        return parse_context(context.to_json().encode("utf-8"))

    async def _publish(self, context: ProductionContext, at_s: float) -> ProductionContext:
        last_s = self._changed_at_s.get(context.asset)
        if last_s is not None and at_s < last_s:
            # a retained message is the asset's state: one from the past would undo a newer change
            raise ValueError(
                f"asset {context.asset!r}: change at {context.since} is before its last change at {rfc3339(last_s)}"
            )
        if not self._connected:
            raise MesError("MES simulator: not connected (use connect() or 'async with')")
        topic = context_topic(context.site, context.asset)
        try:
            await self._client.publish(topic, context.to_json().encode("utf-8"), qos=1, retain=True)
        except MqttError as error:
            raise MesError(f"MES simulator: {error}") from error
        self._current[context.asset] = context
        self._changed_at_s[context.asset] = at_s
        event(
            log,
            logging.INFO,
            "mes_context_published",
            asset=context.asset,
            production_order=context.production_order or "-",
            lot=context.lot or "-",
            since=context.since,
        )
        return context
