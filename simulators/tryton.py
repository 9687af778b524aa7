"""A real Tryton 8.2 server for tests and the demo: seeded once into a template, copied per instance.

The template is one SQLite database with Tryton's modules (:data:`MODULES`, plantwatch's own module
among them, activated with their dependencies by ``trytond-admin``) and the seed plantwatch needs:

- a company (party "Plantwatch Demo Plant", currency USD) in the admin's preferences;
- the user :data:`PLANTWATCH_LOGIN` with the groups "Project Administration" (create and write tasks),
  "Quality" (create and process inspections, write alerts) and the company; productions are readable by
  every user;
- the quality control :data:`~plantwatch.gateway.tryton.HOLD_CONTROL` with ``operations`` empty (no
  inspect wizard in the way; see ../shared/notes/tryton-8.2.md) and the boolean point ``hold``;
- a product "Pump housing" (``HOUSING``) with a bill of materials of one "Housing blank" (``BLANK``) each,
  and 100 000 blanks in the warehouse's storage, so that productions can be assigned and run.

Building takes about half a minute (``trytond-admin`` for the modules, then a server to seed through
JSON-RPC); it happens once per cache directory (:func:`default_cache_dir`) and is reused while its key
(the module list, the plantwatch module's files, the trytond version and :data:`SEED_VERSION`) matches.
Concurrent builders wait for each other (a lock file).

:class:`TrytonServer` copies the template into its own directory and runs ``trytond`` on a free loopback
port (``-d``, so that the database is loaded before the port opens). Its helpers do what the MES and the
people at the plant do: :meth:`~TrytonServer.add_production` (an order the MES announces, running, the
MES's name in ``reference``), :meth:`~TrytonServer.close_task` (a planner closes a task with an outcome),
:meth:`~TrytonServer.try_production_do` (an operator finishes an order), :meth:`~TrytonServer.release_hold`
(a quality engineer resolves the hold's alert).

Example::

    with TrytonServer(Path("/tmp/erp")) as server:
        production_id, number = server.add_production("MO-1001")
        adapter = TrytonAdapter(server.url, server.database, server.plantwatch_user, server.plantwatch_password)

From the shell: ``python -m plantwatch.simulators.tryton build`` builds (or checks) the template,
``python -m plantwatch.simulators.tryton serve DIR`` runs a server until Ctrl-C.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from plantwatch.gateway.erp import OUTCOMES, ErpError
from plantwatch.gateway.tryton import HOLD_CONTROL, HOLD_POINT, TrytonRpc
from plantwatch.log import event, setup_logging
from plantwatch.simulators.broker import PlantError, free_port

log = logging.getLogger("plantwatch.simulators.tryton")

MODULES = ("project", "quality", "production", "production_work", "stock_lot", "plantwatch")
"""Modules ``trytond-admin`` activates (with their dependencies: company, stock, product, party, …)."""

DATABASE = "plantwatch"
"""The database name of every instance (the gateway's default; never ``rpc``, the server's root route)."""

ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "pw-admin-7c1e"
PLANTWATCH_LOGIN = "plantwatch"
PLANTWATCH_PASSWORD = "pw-gateway-3f9a"
ADMIN_EMAIL = "admin@plantwatch.invalid"

SEED_VERSION = 1
"""Bump when the seed changes, so that cached templates are rebuilt."""

COMPONENT_STOCK = 100_000
"""Housing blanks in stock in the template: enough for any test or demo run (one per production)."""

BUILD_TIMEOUT_S = 600.0
"""How long ``trytond-admin`` may take to activate the modules (about 20-30 s on 2 cores)."""

START_TIMEOUT_S = 60.0
"""How long ``trytond`` may take to load the database and open its port (about 2.5 s on 2 cores)."""

STOP_TIMEOUT_S = 10.0
"""How long ``trytond`` may take to exit after SIGTERM."""

STALE_TEMPLATE_S = 7 * 86400.0
"""A template of another key unused this long is removed when a new one is built."""

LOG_TAIL_LINES = 20
"""Lines of a Tryton log quoted in an error."""

MODULE_DIR = Path(__file__).resolve().parent.parent / "gateway" / "tryton_module"
"""plantwatch's Tryton module, whose files are part of the template's key."""


@dataclass(frozen=True)
class Seed:
    """Ids of the records the template was seeded with."""

    company: int
    currency: int
    unit: int
    component: int
    product: int
    bom: int
    warehouse: int
    storage_location: int
    production_location: int
    hold_control: int


@dataclass(frozen=True)
class TrytonTemplate:
    """A built and seeded database to copy instances from; ``build_s`` is None when a cached one was
    reused."""

    directory: Path
    key: str
    seed: Seed
    build_s: float | None = None

    @property
    def database_file(self) -> Path:
        """The SQLite file (journal mode DELETE: one self-contained file, safe to copy)."""
        return self.directory / f"{DATABASE}.sqlite"


def default_cache_dir() -> Path:
    """Where templates are kept: ``$PLANTWATCH_TRYTON_CACHE``, else ``$XDG_CACHE_HOME/plantwatch/tryton``
    (``~/.cache/plantwatch/tryton``)."""
    if os.environ.get("PLANTWATCH_TRYTON_CACHE"):
        return Path(os.environ["PLANTWATCH_TRYTON_CACHE"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "plantwatch" / "tryton"


def template_key() -> str:
    """What a template is built from: modules, plantwatch module files, trytond version, seed version."""
    import trytond

    digest = hashlib.sha256()
    seeded = [SEED_VERSION, ADMIN_PASSWORD, PLANTWATCH_PASSWORD]
    digest.update(json.dumps([MODULES, trytond.__version__, *seeded]).encode())
    for path in sorted(MODULE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(MODULE_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_template(cache_dir: Path | None = None) -> TrytonTemplate:
    """The template in ``cache_dir`` (default :func:`default_cache_dir`), built first if it is missing or
    its key is stale. Raises :class:`PlantError` with the end of Tryton's log if the build fails (its
    directory, ``building-<key>``, is kept until the next build for a look at the logs)."""
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = template_key()
    directory = cache_dir / f"template-{key}"
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait and then reuse its result
        seed_file = directory / "seed.json"
        if seed_file.is_file() and (directory / f"{DATABASE}.sqlite").is_file():
            seed = Seed(**json.loads(seed_file.read_text()))
            seed_file.touch()  # in use: see _remove_stale_templates
            event(log, logging.INFO, "tryton_template_reused", directory=directory)
            return TrytonTemplate(directory, key, seed)
        started = time.monotonic()
        for failed in cache_dir.glob("building-*"):  # failed builds, kept until now for their logs
            shutil.rmtree(failed, ignore_errors=True)
        building = cache_dir / f"building-{key}"
        shutil.rmtree(directory, ignore_errors=True)  # an incomplete template
        seed = _build(building, started)
        building.rename(directory)
        _remove_stale_templates(cache_dir, keep=directory)
        build_s = time.monotonic() - started
        event(log, logging.INFO, "tryton_template_built", directory=directory, duration_s=round(build_s, 1))
        return TrytonTemplate(directory, key, seed, build_s)


def _remove_stale_templates(cache_dir: Path, *, keep: Path) -> None:
    """Remove templates of other keys not used for :data:`STALE_TEMPLATE_S` (another checkout sharing the
    cache may still copy from a recent one)."""
    for other in cache_dir.glob("template-*"):
        seed_file = other / "seed.json"
        unused_s = time.time() - seed_file.stat().st_mtime if seed_file.exists() else STALE_TEMPLATE_S
        if other != keep and unused_s >= STALE_TEMPLATE_S:
            shutil.rmtree(other, ignore_errors=True)
            event(log, logging.INFO, "tryton_template_removed", directory=other)


def _build(directory: Path, started: float) -> Seed:
    process = _Trytond(directory)
    process.prepare()
    database_file = process.database_dir / f"{DATABASE}.sqlite"
    database_file.touch()  # the sqlite backend does not create the file
    password_file = directory / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    admin_log = directory / "trytond-admin.log"
    event(log, logging.INFO, "tryton_template_build", step="activate_modules", modules=",".join(MODULES))
    command = [
        *_trytond_command("trytond.cli.admin"),
        *("-c", str(process.config_file), "-d", DATABASE, "--email", ADMIN_EMAIL, "-u", *MODULES),
        "--activate-dependencies",
    ]
    with open(admin_log, "wb") as output:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TRYTONPASSFILE": str(password_file)},
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        raise PlantError(
            f"trytond-admin exited with {result.returncode}; {admin_log} ends:\n{_tail(admin_log)}"
        )
    event(
        log,
        logging.INFO,
        "tryton_template_build",
        step="seed",
        elapsed_s=round(time.monotonic() - started, 1),
    )
    process.start()
    try:
        admin = TrytonRpc(process.url, DATABASE, ADMIN_LOGIN, ADMIN_PASSWORD, timeout_s=60.0)
        seed = _seed(admin)
    finally:
        process.stop()
    # One self-contained file: the WAL folded in, journal mode DELETE (Tryton switches it back to WAL).
    with contextlib.closing(sqlite3.connect(database_file)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    shutil.move(database_file, directory / f"{DATABASE}.sqlite")
    (directory / "seed.json").write_text(json.dumps(asdict(seed), indent=1))
    for leftover in (process.database_dir, password_file):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    event(
        log,
        logging.INFO,
        "tryton_template_build",
        step="done",
        elapsed_s=round(time.monotonic() - started, 1),
    )
    return seed


def _seed(admin: TrytonRpc) -> Seed:
    """Company, users, hold control, products, BOM and stock, through JSON-RPC as admin."""

    def call(model: str, method: str, *params: Any) -> Any:
        return admin.call(f"model.{model}.{method}", *params)

    def create(model: str, values: dict[str, Any]) -> int:
        (record_id,) = call(model, "create", [values])
        return int(record_id)

    def find(model: str, domain: list[Any]) -> int:
        (record_id,) = call(model, "search", domain, 0, None, None)
        return int(record_id)

    currency = create(
        "currency.currency",
        {"name": "U.S. Dollar", "code": "USD", "symbol": "$", "rounding": Decimal("0.01"), "digits": 2},
    )
    party = create("party.party", {"name": "Plantwatch Demo Plant"})
    company = create("company.company", {"party": party, "currency": currency})
    call("res.user", "write", [admin.user_id], {"companies": [["add", [company]]], "company": company})
    admin.login()  # a fresh context, with the company in it
    # By name (the admin's language is English): ir.model.data, which knows the xml ids, is not served over RPC.
    groups = [find("res.group", [["name", "=", name]]) for name in ("Project Administration", "Quality")]
    create(
        "res.user",
        {
            "name": "plantwatch gateway",
            "login": PLANTWATCH_LOGIN,
            "password": PLANTWATCH_PASSWORD,
            "groups": [["add", groups]],
            "companies": [["add", [company]]],
            "company": company,
        },
    )
    hold_control = create(
        "quality.control",
        {
            "name": HOLD_CONTROL,
            "operations": [],
            "points": [["create", [{"name": HOLD_POINT, "string": "Hold", "type_": "boolean"}]]],
        },
    )
    unit = find("product.uom", [["name", "=", "Unit"]])
    products = []
    for name, code, producible in (("Housing blank", "BLANK", False), ("Pump housing", "HOUSING", True)):
        template = create(
            "product.template",
            {
                "name": name,
                "code": code,
                "type": "goods",
                "default_uom": unit,
                "producible": producible,
                "products": [["create", [{}]]],
            },
        )
        products.append(find("product.product", [["template", "=", template]]))
    component, product = products
    line = {"quantity": 1, "unit": unit}
    bom = create(
        "production.bom",
        {
            "name": "Pump housing",
            "inputs": [["create", [{**line, "product": component}]]],
            "outputs": [["create", [{**line, "product": product}]]],
        },
    )
    call("product.product", "write", [product], {"boms": [["create", [{"bom": bom}]]]})
    (warehouse,) = call(
        "stock.location",
        "search_read",
        [["type", "=", "warehouse"]],
        0,
        1,
        None,
        ["storage_location", "production_location"],
    )
    inventory = create(
        "stock.inventory",
        {
            "location": warehouse["storage_location"],
            "company": company,
            "lines": [["create", [{"product": component, "quantity": COMPONENT_STOCK}]]],
        },
    )
    call("stock.inventory", "confirm", [inventory])
    return Seed(
        company=company,
        currency=currency,
        unit=unit,
        component=component,
        product=product,
        bom=bom,
        warehouse=int(warehouse["id"]),
        storage_location=int(warehouse["storage_location"]),
        production_location=int(warehouse["production_location"]),
        hold_control=hold_control,
    )


class _Trytond:
    """One ``trytond`` process over ``directory``: ``trytond.conf``, ``db/`` and ``trytond.log``."""

    def __init__(
        self, directory: Path, port: int | None = None, config: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.config = {section: dict(options) for section, options in (config or {}).items()}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.directory / "trytond.conf"

    @property
    def database_dir(self) -> Path:
        return self.directory / "db"

    @property
    def log_file(self) -> Path:
        return self.directory / "trytond.log"

    def prepare(self) -> None:
        self.database_dir.mkdir(parents=True, exist_ok=True)
        sections: dict[str, dict[str, str]] = {
            "database": {"uri": "sqlite://", "path": str(self.database_dir)},
            "web": {"listen": f"127.0.0.1:{self.port}"},
        }
        for section, options in self.config.items():
            sections.setdefault(section, {}).update(options)
        self.config_file.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{name} = {value}\n" for name, value in options.items())
                for section, options in sections.items()
            )
        )

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise PlantError(f"trytond on port {self.port} is running already (pid {self.process.pid})")
        self.prepare()
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as output:
            self.process = subprocess.Popen(
                [*_trytond_command("trytond.cli"), "-c", str(self.config_file), "-d", DATABASE],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_answering(self.process, offset)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def _wait_until_answering(self, process: subprocess.Popen[bytes], offset: int) -> None:
        """Until ``common.server.version`` answers on the root route (with ``-d``, trytond loads the
        database before it opens its port, so an answer means it is ready)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = json.dumps({"id": 0, "method": "common.server.version", "params": []}).encode()
        while True:
            if process.poll() is not None:
                raise PlantError(
                    f"trytond exited with {process.returncode} before answering on {self.port};"
                    f" {self.log_file} ends:\n{_tail(self.log_file, offset)}"
                )
            request = urllib.request.Request(self.url + "/rpc/", data=probe, method="POST")
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=1.0) as response:
                    if "result" in json.loads(response.read()):
                        return
            except (OSError, ValueError):
                pass  # not listening yet (connection refused) or not yet answering
            if time.monotonic() > deadline:
                process.kill()  # not left behind holding the database
                process.wait(timeout=STOP_TIMEOUT_S)
                raise PlantError(
                    f"trytond did not answer on 127.0.0.1:{self.port} in {START_TIMEOUT_S} s;"
                    f" {self.log_file} ends:\n{_tail(self.log_file, offset)}"
                )
            time.sleep(0.05)


class TrytonServer:
    """A running Tryton on a fresh copy of the template, in ``directory`` (restartable).

    - ``template``: the template to copy (default: :func:`ensure_template` of ``cache_dir``).
    - ``cache_dir``: where the template is kept (default :func:`default_cache_dir`).
    - ``port``: the loopback port (default: a free one, kept across restarts).
    - ``config``: more of ``trytond.conf``, section → option → value, e.g. ``{"session": {"max_attempt":
      "0"}}`` (every failed login counts over the limit: the next login gets HTTP 429).

    The directory holds ``trytond.conf``, ``db/plantwatch.sqlite`` and ``trytond.log``. The helpers act
    as admin over JSON-RPC and raise :class:`~plantwatch.gateway.erp.ErpError` when Tryton refuses.
    """

    database = DATABASE
    admin_user = ADMIN_LOGIN
    admin_password = ADMIN_PASSWORD
    plantwatch_user = PLANTWATCH_LOGIN
    plantwatch_password = PLANTWATCH_PASSWORD

    def __init__(
        self,
        directory: Path,
        *,
        template: TrytonTemplate | None = None,
        cache_dir: Path | None = None,
        port: int | None = None,
        config: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.directory = directory
        self._template = template
        self._cache_dir = cache_dir
        self._process = _Trytond(directory, port, config)
        self._admin: TrytonRpc | None = None
        self._seed: Seed | None = template.seed if template is not None else None
        self._done_status: int | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the adapter's ``base_url``."""
        return self._process.url

    @property
    def port(self) -> int:
        return self._process.port

    @property
    def log_file(self) -> Path:
        """Tryton's log (appended across restarts)."""
        return self._process.log_file

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def pid(self) -> int | None:
        """The process id of ``trytond`` while it runs (to freeze it with SIGSTOP, say), else None."""
        process = self._process.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def seed(self) -> Seed:
        """Ids of the seeded records (company, products, BOM, locations, hold control)."""
        if self._seed is None:
            raise PlantError("the server has not been started yet")
        return self._seed

    def start(self) -> None:
        """Copy the template (first start only) and start ``trytond``; returns once it answers.

        Raises :class:`PlantError` with the end of Tryton's log if it exits or does not listen within
        :data:`START_TIMEOUT_S`.
        """
        started = time.monotonic()
        database_file = self._process.database_dir / f"{DATABASE}.sqlite"
        if not database_file.exists():
            template = self._template or ensure_template(self._cache_dir)
            self._template, self._seed = template, template.seed
            self._process.database_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template.database_file, database_file)
        self._process.start()
        event(
            log,
            logging.INFO,
            "tryton_started",
            url=self.url,
            database=DATABASE,
            duration_s=round(time.monotonic() - started, 2),
        )

    def stop(self) -> None:
        """Stop ``trytond`` (SIGTERM) and wait for it; the database stays for a restart."""
        self._process.stop()
        self._admin = None  # sessions live in the database, but a stopped server is a clean break

    def __enter__(self) -> TrytonServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers: what the MES and the people at the plant do -----------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """A JSON-RPC call as admin (context added), e.g. ``call("model.project.work.search", [], 0, None,
        None)``."""
        if self._admin is None:
            self._admin = TrytonRpc(self.url, DATABASE, ADMIN_LOGIN, ADMIN_PASSWORD, timeout_s=30.0)
        return self._admin.call(method, *params)

    def add_production(self, reference: str, *, quantity: int = 1) -> tuple[int, str]:
        """A running production of ``quantity`` pump housings that the MES calls ``reference`` (kept in the
        production's ``reference``); returns (id, Tryton's number)."""
        seed = self.seed

        def move(product: int, from_location: int, to_location: int) -> dict[str, Any]:
            return {
                "product": product,
                "unit": seed.unit,
                "quantity": quantity,
                "from_location": from_location,
                "to_location": to_location,
                "company": seed.company,
            }

        values = {
            "reference": reference,
            "product": seed.product,
            "bom": seed.bom,
            "quantity": quantity,
            "unit": seed.unit,
            "warehouse": seed.warehouse,
            "location": seed.production_location,
            "company": seed.company,
            "inputs": [["create", [move(seed.component, seed.storage_location, seed.production_location)]]],
            # a move out of production is valued: unit price and currency are required
            "outputs": [
                [
                    "create",
                    [
                        {
                            **move(seed.product, seed.production_location, seed.storage_location),
                            "unit_price": Decimal(0),
                            "currency": seed.currency,
                        }
                    ],
                ]
            ],
        }
        (production_id,) = self.call("model.production.create", [values])
        for transition in ("wait", "assign_try", "run"):
            self.call(f"model.production.{transition}", [production_id])
        (production,) = self.call("model.production.read", [production_id], ["number", "state"])
        if production["state"] != "running":
            raise PlantError(f"production {reference} is {production['state']}, not running, after run")
        event(
            log,
            logging.INFO,
            "tryton_production_running",
            reference=reference,
            id=production_id,
            number=production["number"],
        )
        return int(production_id), str(production["number"])

    def production_state(self, production_id: int) -> str:
        """The production's state: draft, waiting, assigned, running, done or cancelled."""
        (production,) = self.call("model.production.read", [production_id], ["state"])
        return str(production["state"])

    def try_production_do(self, production_id: int) -> str | None:
        """Finish the production (``production.do``) as an operator would: None if it is done now, else
        why not (Tryton's own message, e.g. the quality hold's "To continue, alerts from failed
        inspections must be resolved.").

        ``do`` can also answer with a wizard instead of doing anything (an inspection the quality module
        wants first), so the state is read back.
        """
        try:
            answer = self.call("model.production.do", [production_id])
        except ErpError as error:
            return error.message
        state = self.production_state(production_id)
        if state == "done":
            return None
        wizard = answer.get("wiz_name") if isinstance(answer, dict) else None
        return f"production {production_id} is still {state} after do" + (
            f" (Tryton answered with the wizard {wizard})" if wizard else ""
        )

    def close_task(self, number: str, outcome: str | None) -> None:
        """Set the task's status to Done (progress 100 %) and its outcome, as a planner closing it."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be None or one of {', '.join(OUTCOMES)}, got {outcome!r}")
        (work_id,) = self.call("model.project.work.search", [["number", "=", number]], 0, None, None)
        if self._done_status is None:
            (self._done_status,) = self.call(
                "model.project.work.status.search", [["progress", "=", 1.0]], 0, 1, None
            )
        self.call(
            "model.project.work.write",
            [work_id],
            {"status": self._done_status, "progress": 1.0, "plantwatch_outcome": outcome},
        )
        event(log, logging.INFO, "tryton_task_closed", number=number, outcome=outcome or "-")

    def set_password(self, login: str, password: str) -> None:
        """Set the user's password, as an administrator would; Tryton ends the user's sessions (even when
        the password is the same), so their next call gets HTTP 401."""
        (user_id,) = self.call("model.res.user.search", [["login", "=", login]], 0, 1, None)
        self.call("model.res.user.write", [user_id], {"password": password})

    def release_hold(self, number: str) -> None:
        """Resolve the open alerts of the hold inspection ``number`` (process, then resolve), as a quality
        engineer who found the lot good; the production can then be finished."""
        (inspection,) = self.call(
            "model.quality.inspection.search_read", [["number", "=", number]], 0, 1, None, ["alerts"]
        )
        alerts = self.call("model.quality.alert.read", inspection["alerts"], ["state"])
        pending = [alert["id"] for alert in alerts if alert["state"] in ("open", "deferred")]
        if pending:
            self.call("model.quality.alert.process", pending)
        to_resolve = pending + [alert["id"] for alert in alerts if alert["state"] == "processing"]
        if to_resolve:
            self.call("model.quality.alert.resolve", to_resolve)

    def tasks(self) -> list[dict[str, Any]]:
        """Every ``project.work``, oldest first: id, number, name, comment, status (its name), progress and
        the plantwatch fields."""
        fields = [
            "number",
            "name",
            "comment",
            "status.name",
            "progress",
            "plantwatch_correlation_id",
            "plantwatch_asset",
            "plantwatch_failure_mode",
            "plantwatch_priority",
            "plantwatch_outcome",
        ]
        rows = self.call("model.project.work.search_read", [], 0, None, [["id", "ASC"]], fields)
        for row in rows:
            row["status"] = (row.pop("status.", None) or {}).get("name")
        return list(rows)

    def inspections(self) -> list[dict[str, Any]]:
        """Every ``quality.inspection``, oldest first: id, number, reference, state, origin (``production,
        <id>``), the correlation id and ``alert_states``."""
        fields = ["number", "reference", "state", "origin", "plantwatch_correlation_id", "alerts.state"]
        rows = self.call("model.quality.inspection.search_read", [], 0, None, [["id", "ASC"]], fields)
        for row in rows:
            row["alert_states"] = [alert.get("state") for alert in row.pop("alerts.", None) or []]
        return list(rows)


class WarmServers:
    """Started servers on fresh copies of ``template`` for many short users (a test suite): :meth:`take`
    hands out a started one and starts the next in the background, so that its start (about 1.5 s of
    CPU, mostly Tryton setting up its model classes) overlaps with the work of the previous user.

    Each server gets a directory ``root/server-<n>``; the taker owns and stops it. :meth:`close` stops the
    one still waiting.
    """

    def __init__(self, root: Path, template: TrytonTemplate) -> None:
        self._root = root
        self._template = template
        self._count = 0
        self._next: concurrent.futures.Future[TrytonServer] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tryton-warm")

    def take(self) -> TrytonServer:
        """A started server on a fresh copy; raises :class:`PlantError` if it could not start."""
        future = self._next or self._executor.submit(self._start_one)
        self._next = self._executor.submit(self._start_one)
        return future.result()

    def close(self) -> None:
        """Stop the server started for the next taker, if any."""
        if self._next is not None:
            with contextlib.suppress(PlantError):
                self._next.result().stop()
            self._next = None
        self._executor.shutdown()

    def _start_one(self) -> TrytonServer:
        self._count += 1
        server = TrytonServer(self._root / f"server-{self._count}", template=self._template)
        server.start()
        return server


def _trytond_command(module: str) -> list[str]:
    """Run a trytond command line module with this interpreter (the venv's trytond and plantwatch)."""
    return [sys.executable, "-m", module]


def _tail(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except OSError as error:
        return f"(unreadable: {error})"
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def main(argv: list[str] | None = None) -> int:
    """``python -m plantwatch.simulators.tryton``: build the template or run a server."""
    parser = argparse.ArgumentParser(
        prog="python -m plantwatch.simulators.tryton",
        description="A real Tryton 8.2 for plantwatch's tests and demo. "
        "Example: python -m plantwatch.simulators.tryton serve /tmp/erp --production MO-1001",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="template cache (default ~/.cache/...)")
    parser.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the template if it is missing or stale; print where it is")
    serve = commands.add_parser("serve", help="run Tryton on a fresh copy in DIR until Ctrl-C")
    serve.add_argument("directory", type=Path, help="the instance's directory (created)")
    serve.add_argument(
        "--production", action="append", default=[], help="add a running production with this reference"
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command == "build":
        template = ensure_template(args.cache_dir)
        built = f"built in {template.build_s:.1f} s" if template.build_s is not None else "reused"
        print(f"{template.database_file} ({built}, key {template.key})")
        return 0
    with TrytonServer(args.directory, cache_dir=args.cache_dir) as server:
        for reference in args.production:
            production_id, number = server.add_production(reference)
            print(f"production {reference}: id {production_id}, number {number}, running")
        print(f"url {server.url}  database {server.database}")
        print(f"user {server.plantwatch_user} / {server.plantwatch_password}  (admin: {server.admin_user})")
        print("Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
