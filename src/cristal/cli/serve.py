"""``cristal serve``: the REST API, the OpenAI-compatible API and the web UI over HTTP."""

from __future__ import annotations

import ipaddress
import signal
import socket
from types import FrameType

import typer

from cristal.cli.runtime import note, open_database, settings
from cristal.errors import InvalidInput

app = typer.Typer()


def _listen(host: str, port: int) -> socket.socket:
    """Bind first, so a taken port or an unknown host is a one-line error rather than a server log."""
    if not 0 < port < 65536:
        raise InvalidInput(f"--port must be between 1 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, _type, _proto, _name, address = infos[0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
    # without it every response waits ~40 ms (Nagle's algorithm meeting the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM/SIGINT ends in exit status 0 (as ``cristal worker``) after the graceful stop.

        uvicorn re-raises the signal once it has shut down, which makes the
        process die of it (status -15) and skips closing the database.
        """

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
            else:
                self.should_exit = True

    return Server


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8600, "--port", help="TCP port."),
) -> None:
    """Serve the REST API (/api/v1), the OpenAI-compatible API (/v1) and the web UI (/) until Ctrl-C or SIGTERM."""
    import uvicorn

    from cristal.server import create_app

    cfg = settings()
    db = open_database(cfg)
    sock = _listen(host, port)
    try:
        shown = f"[{host}]" if ":" in host else host
        note("Cristal serving on http://{}:{}/ (API /api/v1, OpenAI-compatible /v1); Ctrl-C stops", shown, sock.getsockname()[1])
        if not _is_loopback(host):
            note("[yellow]note[/]: listening beyond loopback without TLS; put a TLS-terminating proxy in front")
        config = uvicorn.Config(create_app(db, cfg), log_level="warning", access_log=False, server_header=False,
                                timeout_graceful_shutdown=10)
        _server_class()(config).run(sockets=[sock])
    finally:
        sock.close()
        db.dispose()
