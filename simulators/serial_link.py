"""The simulator's end of a serial line: a pseudo-terminal pair that the agent opens like a USB sensor.

:class:`PtyLink` creates a pty in raw mode, so bytes pass unchanged (no echo, no CR/LF translation, no
line buffering), and names its slave side (``port_path``, e.g. ``/dev/pts/7``) for the agent to open
with pyserial. ``link_path=`` adds a symlink with a stable name that a configuration can point at.

A pty holds only a few kilobytes between writer and reader, far less than a second of a vibration
channel, so :meth:`PtyLink.write` waits for the reader to make room instead of dropping bytes, and gives
up with :class:`PtyLinkError` only when the reader has taken nothing for ``write_timeout_s``.

Example (the agent's side would normally be another process)::

    with PtyLink(link_path="/tmp/plantwatch-sensor") as link:
        reader = SerialReader(link.port_path)   # plantwatch.agent.serial_input
        link.write(encode(frame))                # plantwatch.agent.frames
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import termios
import time
import tty
from pathlib import Path
from types import TracebackType

from plantwatch.log import event

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 5.0
"""How long :meth:`PtyLink.write` waits without the reader taking a single byte before it gives up.
The agent reads every ``timeout_s`` (0.1 s by default); 50 times that without progress means the
reader is gone or stuck, and failing loudly beats blocking the simulator forever."""

DRAIN_POLL_S = 0.005
"""Poll interval of :meth:`PtyLink.drain`: the kernel tells a pty writer nothing when the reader reads,
so draining polls the queue length; 5 ms is short next to the agent's 100 ms read timeout."""

_EAGAIN_BACKOFF_S = 0.001
"""Pause when ``select`` reports room but the write still would block, so the loop cannot spin."""


class PtyLinkError(OSError):
    """The pseudo-terminal cannot be created or written; the message names the port and the problem."""


class PtyLink:
    """A raw pseudo-terminal pair: the simulator writes the master, the agent opens ``port_path``.

    Keyword options:

    - ``link_path``: also create a symlink at this path pointing to ``port_path`` (a stale symlink
      there is replaced; any other file there is an error). :meth:`close` removes it.
    - ``write_timeout_s``: seconds :meth:`write` waits without progress before raising
      (:data:`WRITE_TIMEOUT_S`).

    The link keeps its own descriptor of the slave side open, so the pty survives the reader closing
    and reopening it; when the link closes, a reader gets an error on its next read (pyserial raises
    ``SerialException``). Bytes not yet read when the link closes are discarded by the kernel: call
    :meth:`drain` first to hand over everything. Use from one thread.
    """

    def __init__(
        self,
        *,
        link_path: str | os.PathLike[str] | None = None,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        if write_timeout_s <= 0:
            raise ValueError(f"write_timeout_s must be > 0, got {write_timeout_s}")
        self._write_timeout_s = write_timeout_s
        self._link_path: Path | None = None
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise PtyLinkError(exc.errno, f"cannot create a pseudo-terminal: {exc.strerror}") from exc
        self._master: int | None = master
        self._slave: int | None = slave
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._port_path = os.ttyname(slave)
            if link_path is not None:
                self._link_path = _replace_symlink(Path(link_path), self._port_path)
        except BaseException:
            self._close_descriptors()
            raise
        event(log, logging.INFO, "pty_open", port=self._port_path, link=self._link_path or "")

    @property
    def port_path(self) -> str:
        """The slave side's device path (e.g. ``/dev/pts/7``), for the reader to open."""
        return self._port_path

    @property
    def link_path(self) -> Path | None:
        """The stable symlink to :attr:`port_path`, if one was asked for."""
        return self._link_path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._master is None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``, waiting for the reader to make room whenever the pty is full.

        Raises :class:`PtyLinkError` if the link is closed, or if the reader takes no byte for
        ``write_timeout_s`` seconds (the message says how much of ``data`` was written).
        """
        master = self._require_open()
        view = memoryview(data).cast("B")
        total = len(view)
        written = 0
        stalled_since: float | None = None
        room_reported = False
        while written < total:
            try:
                written += os.write(master, view[written:])
                stalled_since = None
                room_reported = False
                continue
            except BlockingIOError:
                if room_reported:
                    time.sleep(_EAGAIN_BACKOFF_S)  # room was reported, yet the write would block: no spinning
            except OSError as exc:
                raise PtyLinkError(
                    exc.errno, f"pty {self._port_path}: write failed after {written} of {total} bytes"
                ) from exc
            # Real time on purpose: this waits on a kernel buffer, not on simulated time.
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
            remaining = stalled_since + self._write_timeout_s - now
            if remaining <= 0:
                event(
                    log,
                    logging.WARNING,
                    "pty_write_timeout",
                    port=self._port_path,
                    written=written,
                    total=total,
                )
                raise PtyLinkError(
                    errno.ETIMEDOUT,
                    f"pty {self._port_path}: reader took nothing for {self._write_timeout_s} s; "
                    f"wrote {written} of {total} bytes (is the agent reading the port?)",
                )
            _, writable, _ = select.select([], [master], [], remaining)
            room_reported = bool(writable)

    def pending(self) -> int:
        """Bytes written but not yet read by the reader (those in the pty's input queue).

        The kernel moves written bytes into that queue a moment after :meth:`write` returns, so right
        after a write this may still say 0.
        """
        slave = self._slave
        if slave is None:
            return 0
        buffer = fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", buffer)[0])

    def drain(self, timeout_s: float = 1.0) -> bool:
        """Wait up to ``timeout_s`` seconds for the reader to read everything written; True if it did.

        The queue must be seen empty twice in a row, since the kernel moves bytes into the queue a
        little after they are written.
        """
        self._require_open()
        deadline = time.monotonic() + timeout_s
        empty_checks = 0
        while True:
            empty_checks = empty_checks + 1 if self.pending() == 0 else 0
            if empty_checks >= 2:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(DRAIN_POLL_S)

    def close(self) -> None:
        """Close both sides of the pty and remove the symlink (if it still points to this pty).

        Idempotent. A reader holding the port open gets an error on its next read.
        """
        if self._master is None:
            return
        link = self._link_path
        if link is not None:
            try:
                if link.is_symlink() and os.readlink(link) == self._port_path:
                    link.unlink()
            except OSError as exc:
                event(log, logging.WARNING, "pty_link_not_removed", link=link, error=exc)
        self._close_descriptors()
        event(log, logging.INFO, "pty_closed", port=self._port_path)

    def __enter__(self) -> PtyLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _require_open(self) -> int:
        if self._master is None:
            raise PtyLinkError(errno.EBADF, f"pty {self._port_path} is closed")
        return self._master

    def _close_descriptors(self) -> None:
        for name in ("_master", "_slave"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)


def _replace_symlink(link: Path, target: str) -> Path:
    """Point ``link`` at ``target`` atomically; a stale symlink is replaced, any other file refused."""
    if os.path.lexists(link) and not link.is_symlink():
        raise PtyLinkError(errno.EEXIST, f"{link} exists and is not a symlink; refusing to replace it")
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise PtyLinkError(exc.errno, f"cannot create symlink {link} -> {target}: {exc.strerror}") from exc
    return link
