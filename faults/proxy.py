"""A TCP forwarder in front of one server that can fail the way a server or its network fails.

The outage campaign points the operator at a server through one of these, then:
- `down()`: the port refuses new connections and every open one is reset, as when the server
  process stops (a stopped PostgreSQL or S3 server looks exactly like this from the client);
- `blackhole()`: the port still accepts, but nothing is answered or forwarded, on new and open
  connections alike, as when a host hangs or a firewall drops replies: the client learns only
  from its own timeouts;
- `up()`: forwarding again on the same port; connections held by a black hole are reset.

A proxy instead of stopping the real process keeps the server's state (the S3 server keeps its
objects in memory only) and leaves every other client of the shared server untouched. The bytes
are forwarded unchanged, so TLS (the API server) passes through end to end.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Final

UP: Final = "up"
DOWN: Final = "down"
BLACKHOLE: Final = "blackhole"

_TICK: Final = 0.1


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a killed server's kernel does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class OutageProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until told to fail."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.mode = UP
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------------------------

    def start(self) -> OutageProxy:
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        with self._lock:
            self.mode = DOWN
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            listener.close()
        for conn in conns:
            _reset(conn)

    def blackhole(self) -> None:
        with self._lock:
            self.mode = BLACKHOLE
        if self._listener is None:
            self._listen()

    def up(self) -> None:
        with self._lock:
            held = self._conns if self.mode == BLACKHOLE else set()
            self._conns = self._conns - held
            self.mode = UP
        for conn in held:
            _reset(conn)
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stopping.set()
        self.down()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OutageProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the forwarding ----------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.settimeout(_TICK)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._stopping.wait(_TICK)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                mode = self.mode
                self._conns.add(client)
            if mode == BLACKHOLE:
                continue  # accepted and held: never read, never answered
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._forget(client)
            _reset(client)
            return
        with self._lock:
            self._conns.add(server)
        pair = {client: server, server: client}
        try:
            while not self._stopping.is_set():
                if self.mode == BLACKHOLE:
                    self._stopping.wait(_TICK)  # hold both ends silent
                    continue
                if client not in self._conns:
                    return  # reset by down()/up()
                readable, _, _ = select.select(list(pair), [], [], _TICK)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, server):
                self._forget(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)
