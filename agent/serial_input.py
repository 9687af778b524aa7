"""The agent's serial input: bytes from a sensor's serial port (or the simulator's pty), decoded to frames.

:class:`SerialReader` owns one port and one :class:`~plantwatch.agent.frames.FrameDecoder`. Its
:meth:`~SerialReader.read_frames` blocks for at most ``timeout_s``, so the agent runs it in an executor
thread and awaits it from the event loop::

    reader = SerialReader("/dev/serial/by-id/usb-plantwatch-sensor-if00")
    while True:
        frames = await loop.run_in_executor(executor, reader.read_frames)
        ...

When the port goes away — the simulator closes its pty, a USB sensor is unplugged — ``read_frames``
raises :class:`SerialInputError` (and keeps raising it on later calls); it never signals the end of
the stream by returning ``[]``, which only means "nothing complete arrived within ``timeout_s``". The
caller decides whether to reopen the port.
"""

from __future__ import annotations

import logging
import threading

import serial

from plantwatch.agent.frames import DecoderStats, Frame, FrameDecoder
from plantwatch.clock import Clock, SystemClock
from plantwatch.log import event

log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 921600
"""The sensors' line rate in bit/s (about 92 kB/s). USB CDC devices and ptys ignore it."""

DEFAULT_READ_SIZE = 65536
"""Most bytes taken in one read: about 60 frames of 512 samples, a few ms of work for the decoder."""

DEFAULT_TIMEOUT_S = 0.1
"""How long one read waits for the first byte: bounds the latency of shutting the reader down."""

ERROR_LOG_INTERVAL_S = 10.0
"""At most one ``frame_errors`` log line per port in this many seconds: a noisy line would otherwise
write one on every read."""


class SerialInputError(OSError):
    """A serial port that cannot be opened or read; the message names the port."""

    def __init__(self, port: str, message: str) -> None:
        super().__init__(message)
        self.port = port
        """The port path or URL as it was given."""


class SerialReader:
    """Reads frames from one serial port.

    ``port`` is a device path (``/dev/ttyUSB0``, a pty such as ``/dev/pts/7``, a symlink to one) or a
    pyserial URL (``loop://``). Keyword options:

    - ``baudrate``: line rate in bit/s (:data:`DEFAULT_BAUDRATE`);
    - ``read_size``: most bytes taken in one read (:data:`DEFAULT_READ_SIZE`);
    - ``timeout_s``: seconds one read waits for the first byte (:data:`DEFAULT_TIMEOUT_S`);
    - ``clock``: the clock that paces error log lines (the system clock by default).

    The port is opened exclusively (a second reader of the same port fails to open it). Raises
    :class:`SerialInputError` naming the port when it cannot be opened.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        read_size: int = DEFAULT_READ_SIZE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Clock | None = None,
    ) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be >= 1, got {read_size}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._port = port
        self._read_size = read_size
        self._clock = clock or SystemClock()
        self._decoder = FrameDecoder()
        self._read_lock = threading.Lock()
        self._closed = False
        self._failure: SerialInputError | None = None
        self._logged_errors = DecoderStats()
        self._last_error_log_s: float | None = None
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout_s, exclusive=True)
        except (serial.SerialException, ValueError) as exc:
            raise SerialInputError(port, f"cannot open serial port {port}: {exc}") from exc
        event(log, logging.INFO, "serial_open", port=port, baudrate=baudrate)

    @property
    def port(self) -> str:
        """The port path or URL as it was given."""
        return self._port

    @property
    def stats(self) -> DecoderStats:
        """A copy of the decoder's counters: frames, bytes_dropped, crc_errors, header_errors."""
        return self._decoder.stats

    def read_frames(self) -> list[Frame]:
        """Wait up to ``timeout_s`` for bytes, read what has arrived (up to ``read_size``), decode it.

        Returns the frames completed by these bytes, in stream order; ``[]`` if none completed. Blocks
        for at most ``timeout_s`` seconds, so it suits an executor thread.

        Raises :class:`SerialInputError` ("... closed") once the port is gone (the writer closed the
        pty, the device disappeared) or :meth:`close` was called, and on every call after that. If the
        port fails after some bytes were read, their frames are returned first and the error is
        raised by the next call, so no decoded frame is lost.
        """
        with self._read_lock:
            if self._failure is not None:
                raise self._failure
            data = b""
            try:
                # One byte first: it waits at most timeout_s and returns as soon as data flows; then
                # whatever has already arrived, without waiting again.
                data = self._serial.read(1)
                if data:
                    waiting = self._serial.in_waiting
                    if waiting:
                        data += self._serial.read(min(waiting, self._read_size - 1))
            except (serial.SerialException, OSError) as exc:
                self._failure = SerialInputError(self._port, f"serial port {self._port} closed: {exc}")
                event(log, logging.WARNING, "serial_closed", port=self._port, error=exc)
                if not data:
                    raise self._failure from exc
            frames = self._decoder.feed(data) if data else []
        self._log_decoder_errors()
        return frames

    def close(self) -> None:
        """Close the port. Idempotent; safe to call from another thread than the one reading.

        A :meth:`read_frames` blocked in another thread returns within about ``timeout_s``; later calls
        raise :class:`SerialInputError`.
        """
        if self._closed:
            return
        self._closed = True
        cancel_read = getattr(self._serial, "cancel_read", None)
        if cancel_read is not None:
            cancel_read()  # wakes a read waiting in another thread
        with self._read_lock:
            if self._failure is None:
                self._failure = SerialInputError(self._port, f"serial port {self._port} closed")
            self._serial.close()
        event(log, logging.INFO, "serial_close", port=self._port)

    def __enter__(self) -> SerialReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log_decoder_errors(self) -> None:
        """Log what the decoder dropped since the last such line, at most every ERROR_LOG_INTERVAL_S."""
        stats = self._decoder.stats
        previous = self._logged_errors
        if _errors(stats) == _errors(previous):
            return
        now = self._clock.monotonic()
        if self._last_error_log_s is not None and now - self._last_error_log_s < ERROR_LOG_INTERVAL_S:
            return
        self._last_error_log_s = now
        self._logged_errors = stats
        event(
            log,
            logging.WARNING,
            "frame_errors",
            port=self._port,
            bytes_dropped=stats.bytes_dropped - previous.bytes_dropped,
            crc_errors=stats.crc_errors - previous.crc_errors,
            header_errors=stats.header_errors - previous.header_errors,
            frames=stats.frames,
        )


def _errors(stats: DecoderStats) -> tuple[int, int, int]:
    return (stats.bytes_dropped, stats.crc_errors, stats.header_errors)
