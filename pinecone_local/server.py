"""Running the app under uvicorn (uvloop + httptools) on a socket this module binds itself.

Binding the socket before uvicorn starts lets ``--port 0`` pick a free port while the app still knows its own public
URL (index hosts are derived from it). ``--port-file`` receives the bound port once the server accepts connections.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .app import PineconeLocalApp, ServerSettings
from .faults import FaultState
from .limits import DEFAULT_COMPACT_BYTES, DEFAULT_HOST, DEFAULT_PORT

logger = logging.getLogger(__name__)

GC_GEN0_THRESHOLD = 100_000


@dataclass
class ServeOptions:
    """Options of ``serve`` (see ``cli`` for their flags)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    advertise_host: str | None = None
    data_dir: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    fsync: bool = False
    compact_bytes: int = DEFAULT_COMPACT_BYTES
    port_file: Path | None = None
    log_level: str = "warning"
    ack_log: Path | None = None
    faults: dict[str, Any] = field(default_factory=dict)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR, so a restart can take the port of a killed server at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn server that writes the port file once it is accepting connections."""

    def __init__(self, config: uvicorn.Config, port_file: Path | None, port: int) -> None:
        super().__init__(config)
        self._port_file = port_file
        self._port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._port_file is not None:
            tmp = self._port_file.with_suffix(".tmp")
            tmp.write_text(f"{self._port}\n")
            os.replace(tmp, self._port_file)


def serve(options: ServeOptions) -> None:
    """Run until SIGINT/SIGTERM; on a clean stop the data directory is compacted."""
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = bind_socket(options.host, options.port)
    port = sock.getsockname()[1]
    advertise = options.advertise_host or (DEFAULT_HOST if options.host in ("0.0.0.0", "::", "") else options.host)
    if ":" in advertise:
        advertise = f"[{advertise}]"
    settings = ServerSettings(
        public_url=f"http://{advertise}:{port}",
        data_dir=options.data_dir,
        api_key=options.api_key,
        fsync=options.fsync,
        compact_bytes=options.compact_bytes,
        ack_log=options.ack_log,
    )
    faults = FaultState()
    faults.apply(options.faults)
    app = PineconeLocalApp(settings, faults)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=options.log_level,
        timeout_keep_alive=30,
        server_header=False,
    )
    logger.warning("pinecone_local listening on %s (data dir: %s)", settings.public_url, options.data_dir or "memory")
    server = _Server(config, options.port_file, port)
    # Request bodies allocate tens of thousands of short-lived containers; the default gen-0 threshold (700) would
    # run the cyclic collector several times per upsert and rescan the long-lived store. Raising it keeps
    # collection cost proportional to garbage, not to the store.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    server.run(sockets=[sock])
