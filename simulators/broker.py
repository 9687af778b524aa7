"""A private Mosquitto for tests and the demo, on a free loopback port, in one directory.

Two configurations:

- plain (the default): anonymous MQTT on 127.0.0.1, persistence in the directory; what the plant in a
  box (:mod:`plantwatch.simulators.plant`) and most tests use;
- ``secure=True``: the shipped ``systemd/mosquitto.conf`` and ``systemd/mosquitto.acl`` as they are (TLS
  only, password file, ACL), with only the paths of an installation moved into the directory, a
  throwaway CA and server certificate (:mod:`plantwatch.simulators.pki`) and a password file for the
  given users; so tests run the configuration that is installed, not a look-alike.

The directory holds ``mosquitto.conf``, ``mosquitto.log`` (the broker's log, appended across
restarts), ``mosquitto.db`` (persistence) and, when secure, ``plantwatch.passwd``, ``plantwatch.acl``
and ``tls/`` (CA, server and client certificates).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: cryptography is a test dependency, and the demo's plain broker needs none.
    from plantwatch.simulators.pki import CertificateAuthority, IssuedCertificate

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")
MOSQUITTO_PASSWD_CANDIDATES = ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd")

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
"""The shipped ``mosquitto.conf`` and ``mosquitto.acl``: the repository root is the parent of the
``simulators/`` folder (a checkout or an editable install; a wheel does not carry them)."""

START_TIMEOUT_S = 10.0
"""How long Mosquitto may take to open its listener (it takes well under a second)."""

STOP_TIMEOUT_S = 10.0
"""How long Mosquitto may take to save its persistence file and exit after SIGTERM."""

LOG_TAIL_LINES = 15
"""Lines of the broker's log quoted in an error."""

RUNNING = re.compile(r"mosquitto version \S+ running")
"""What Mosquitto logs once every listener is open (after "Opening ... listen socket")."""

ID = re.compile(r"[a-z0-9_-]+")
"""Every id in a topic, user names included (see mosquitto.acl: %u is substituted as it is)."""


class PlantError(RuntimeError):
    """A part of the plant in a box could not start."""


def find_mosquitto() -> str | None:
    """Path of the ``mosquitto`` broker binary, or ``None``."""
    return _find_binary("mosquitto", MOSQUITTO_CANDIDATES)


def find_mosquitto_passwd() -> str | None:
    """Path of the ``mosquitto_passwd`` tool (it makes password files), or ``None``."""
    return _find_binary("mosquitto_passwd", MOSQUITTO_PASSWD_CANDIDATES)


def _find_binary(name: str, candidates: tuple[str, ...]) -> str | None:
    # /usr/sbin is not on a normal user's PATH on Debian
    found = shutil.which(name)
    if found:
        return found
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise PlantError(
                f"process {process.args!r} exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise PlantError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def shipped_config(
    text: str,
    *,
    port: int,
    cert_file: Path,
    key_file: Path,
    password_file: Path,
    acl_file: Path,
    persistence_dir: Path,
    user: str,
    ca_file: Path | None = None,
) -> str:
    """The shipped ``mosquitto.conf`` (``text``) with the paths of an installation replaced.

    The listener is bound to 127.0.0.1:``port``; ``user`` is the account Mosquitto keeps (started as
    root it would switch to "mosquitto", who cannot read a temporary directory). ``ca_file``: require a
    client certificate signed by that CA (besides the password). Every other line stays as shipped;
    raises :class:`PlantError` if a line to replace is not there exactly once, since then the test would
    run something other than what is shipped.
    """
    replacements = {
        "listener 8883": f"listener {port} 127.0.0.1",
        "certfile /etc/mosquitto/certs/server.crt": f"certfile {cert_file}",
        "keyfile /etc/mosquitto/certs/server.key": f"keyfile {key_file}",
        "password_file /etc/mosquitto/plantwatch.passwd": f"password_file {password_file}",
        "acl_file /etc/mosquitto/plantwatch.acl": f"acl_file {acl_file}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {persistence_dir}/",
    }
    if ca_file is not None:
        # Listener options, so they replace a line of the listener's block; the user name still comes
        # from the password login, not from the certificate.
        replacements["require_certificate false"] = (
            f"require_certificate true\nuse_identity_as_username false\ncafile {ca_file}"
        )
    lines = text.splitlines()
    for old, new in replacements.items():
        count = lines.count(old)
        if count != 1:
            raise PlantError(f"mosquitto.conf should have the line {old!r} once, it has it {count} times")
        lines[lines.index(old)] = new
    return "\n".join([*lines, f"user {user}", ""])


def shipped_acl(text: str, gateway_users: dict[str, str]) -> str:
    """The shipped ``mosquitto.acl`` (``text``) with a block for each gateway user → site appended.

    Each block has the shape of the shipped ``gateway-site1`` block: the gateway reads its site and
    writes only its own status. Raises :class:`PlantError` for a name that breaks the ACL's naming
    rule or a user the shipped ACL already has a block for.
    """
    existing = {line.split(None, 1)[1].strip() for line in text.splitlines() if line.startswith("user ")}
    blocks = []
    for user, site in gateway_users.items():
        if not (ID.fullmatch(user) and user.startswith("gateway-")):
            raise PlantError(f"gateway user {user!r}: must start with 'gateway-' and match {ID.pattern}")
        if not ID.fullmatch(site):
            raise PlantError(f"site {site!r} of gateway user {user!r}: must match {ID.pattern}")
        if user in existing:
            raise PlantError(f"gateway user {user!r} already has a block in the shipped mosquitto.acl")
        blocks.append(
            f"user {user}\ntopic read plantwatch/v1/{site}/#\n"
            f"topic write plantwatch/v1/{site}/gateway/{user}/status\n"
        )
    if not blocks:
        return text
    return text.rstrip("\n") + "\n\n# --- gateways added for this broker ---\n" + "\n".join(blocks)


@dataclass
class Broker:
    """A private Mosquitto on a loopback port, with persistence in ``directory``; restartable.

    ``secure``: run the shipped TLS-only configuration and ACL instead of the plain anonymous one.
    ``users``: user name → password, the accounts of the password file (``secure`` only).
    ``gateway_users``: gateway user name → site, ACL blocks appended to the shipped ones (``secure``
    only; each user needs a password in ``users``). ``require_certificate``: clients must also present a
    certificate signed by :attr:`ca_file` (``secure`` only; see :meth:`issue_client_certificate`).

    A restart keeps the port, the certificates, the passwords and the persistence file.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _: KW_ONLY
    secure: bool = False
    users: dict[str, str] = field(default_factory=dict)
    gateway_users: dict[str, str] = field(default_factory=dict)
    require_certificate: bool = False
    _ca: CertificateAuthority | None = field(default=None, init=False, repr=False)
    _server: IssuedCertificate | None = field(default=None, init=False, repr=False)
    _passwords_written: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.secure and (self.users or self.gateway_users or self.require_certificate):
            raise PlantError("users, gateway_users and require_certificate need secure=True")
        for user in self.users:
            if not ID.fullmatch(user):
                raise PlantError(f"user {user!r}: must match {ID.pattern} (see mosquitto.acl)")
        for user in self.gateway_users:
            if user not in self.users:
                raise PlantError(f"gateway user {user!r} has no password in users")

    @property
    def log_file(self) -> Path:
        """The broker's log (appended across restarts)."""
        return self.directory / "mosquitto.log"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients trust; the CA is made on first use (``secure`` only)."""
        return self._certificate_authority().cert_file

    def issue_client_certificate(self, name: str) -> IssuedCertificate:
        """A client certificate (common name ``name``) signed by :attr:`ca_file` (``secure`` only)."""
        from plantwatch.simulators.pki import issue

        return issue(self._certificate_authority(), self.directory / "tls" / "clients", name, server=False)

    def start(self) -> None:
        """Start (or restart) the broker and wait until it has opened its listener.

        Raises :class:`PlantError` with the end of the broker's log if it exits or does not open its
        listener within :data:`START_TIMEOUT_S`, or if it is running already.
        """
        if self.process is not None and self.process.poll() is None:
            raise PlantError(f"the broker on port {self.port} is running already (pid {self.process.pid})")
        binary = find_mosquitto()
        if binary is None:
            raise PlantError("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "mosquitto.conf"
        config.write_text(self._secure_config() if self.secure else self._plain_config())
        # Mosquitto appends to the log; what this run writes starts at the current end.
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        # The plain configuration logs to the file itself; stderr still carries errors met before
        # logging starts (a bad option). The shipped one logs to stderr, for the journal.
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self._wait_until_running(self.process, offset)

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def kill(self) -> None:
        """Kill the broker (SIGKILL: a crash; what it held in memory since its last autosave is lost)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def _plain_config(self) -> str:
        return (
            f"listener {self.port} 127.0.0.1\n"
            # started as root, Mosquitto switches to the "mosquitto" user and then cannot write its
            # persistence file here: sessions (the gateway's subscription) would not survive a restart
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log_file}\n"
            "max_queued_messages 100000\n"
        )

    def _secure_config(self) -> str:
        conf_path, acl_path = SYSTEMD_DIR / "mosquitto.conf", SYSTEMD_DIR / "mosquitto.acl"
        if not (conf_path.is_file() and acl_path.is_file()):
            raise PlantError(
                f"the shipped {conf_path} and {acl_path} are missing: secure=True needs a checkout of "
                "plantwatch (or an editable install), whose systemd/ folder a wheel does not carry"
            )
        ca = self._certificate_authority()
        if self._server is None:
            from plantwatch.simulators.pki import issue

            self._server = issue(ca, self.directory / "tls", "server", server=True)
        password_file = self.directory / "plantwatch.passwd"
        if not self._passwords_written:
            self._write_password_file(password_file)
            self._passwords_written = True
        acl_file = self.directory / "plantwatch.acl"
        acl_file.write_text(shipped_acl(acl_path.read_text(), self.gateway_users))
        return shipped_config(
            conf_path.read_text(),
            port=self.port,
            cert_file=self._server.cert_file,
            key_file=self._server.key_file,
            password_file=password_file,
            acl_file=acl_file,
            persistence_dir=self.directory,
            user=getpass.getuser(),
            ca_file=ca.cert_file if self.require_certificate else None,
        )

    def _certificate_authority(self) -> CertificateAuthority:
        if not self.secure:
            raise PlantError("the plain broker has no certificates: use Broker(..., secure=True)")
        if self._ca is None:
            from plantwatch.simulators.pki import make_ca

            self._ca = make_ca(self.directory / "tls")
        return self._ca

    def _write_password_file(self, path: Path) -> None:
        """``path`` with a salted hash of each user's password, made by ``mosquitto_passwd -b``."""
        tool = find_mosquitto_passwd()
        if tool is None:
            raise PlantError("mosquitto_passwd is not installed (Debian/Ubuntu: apt-get install mosquitto)")
        path.write_text("")  # no users: an empty file, which Mosquitto reads as "nobody may log in"
        path.chmod(0o600)
        for user, password in self.users.items():
            result = subprocess.run(
                [tool, "-b", str(path), user, password], capture_output=True, text=True, timeout=30
            )
            if result.returncode != 0:
                raise PlantError(
                    f"mosquitto_passwd could not add user {user!r}: {(result.stdout + result.stderr).strip()}"
                )

    def _wait_until_running(self, process: subprocess.Popen[bytes], offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with open(self.log_file, "rb") as log:
                log.seek(offset)
                written = log.read().decode(errors="replace")
            if RUNNING.search(written):
                return
            if process.poll() is not None:
                raise PlantError(
                    f"mosquitto exited with {process.returncode} before it ran "
                    f"(port {self.port}); its log {self.log_file} ends:\n{self._log_tail(written)}"
                )
            if time.monotonic() > deadline:
                process.kill()  # not left behind holding the port
                process.wait(timeout=STOP_TIMEOUT_S)
                raise PlantError(
                    f"mosquitto did not open 127.0.0.1:{self.port} in {START_TIMEOUT_S} s; "
                    f"its log {self.log_file} ends:\n{self._log_tail(written)}"
                )
            time.sleep(0.02)

    @staticmethod
    def _log_tail(text: str) -> str:
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
