"""A threading HTTP server on its own daemon thread: the gateway's API and the simulators' services.

Binding happens when the object is made (port 0: a free port, read it back from :attr:`port`); requests
are served from :meth:`start` until :meth:`stop`, which may be called more than once.
"""

from __future__ import annotations

import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHUTDOWN_POLL_S = 0.05
"""How often the serving loop looks for a shutdown request: a stop returns within this."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # a browser that navigates away closes its connections mid-answer: not an error of the server
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class BackgroundHttpServer:
    """``handler`` served on ``host``:``port`` by a daemon thread named ``name``; HTTPS with ``tls``."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        host: str,
        port: int,
        name: str,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.tls = tls
        self.httpd = _Server((host, port), handler)
        if tls is not None:
            # the handshake happens in the request's thread, on its first read, not in the accept loop
            self.httpd.socket = tls.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` (an IPv6 host in brackets)."""
        host = self.httpd.server_address[0]
        text = host.decode() if isinstance(host, bytes) else str(host)
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://[{text}]:{self.port}" if ":" in text else f"{scheme}://{text}:{self.port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            name=self.name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port (again: nothing)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5.0)
        self.httpd.server_close()
