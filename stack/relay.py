"""`python -m stack.relay LISTEN=TARGET ...`: TCP relays from the node's addresses to loopback.

Every server of the stack listens on 127.0.0.1 only, which a Pod cannot reach (its loopback is
its own). This process listens on addresses of this machine that Pods can reach - the bridge's
gateway and the `kubernetes` Service's cluster IP - and copies bytes to the server on loopback.
So the servers keep running as they are (no restart, no other interface), no packet is ever
forwarded or rewritten by the kernel (no NAT, ip_forward stays off), and it is the equivalent
of kube-proxy for the one Service a Pod needs, `kubernetes` (TLS passes through untouched; the
API server's certificate names 10.0.0.1).

    python -m stack.relay 10.244.0.1:55432=127.0.0.1:55432 10.0.0.1:443=127.0.0.1:56443
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve_one(
    target: tuple[str, int], client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
) -> None:
    try:
        server_reader, server = await asyncio.wait_for(asyncio.open_connection(*target), 5)
    except (OSError, TimeoutError):
        client.close()
        return
    try:
        await asyncio.gather(_pipe(client_reader, server), _pipe(server_reader, client))
    finally:
        for writer in (client, server):
            writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(pairs: list[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = []
    for listen, target in pairs:

        async def handle(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            target: tuple[str, int] = target,
        ) -> None:
            await _serve_one(target, reader, writer)

        servers.append(await asyncio.start_server(handle, *listen, reuse_address=True))
    print(f"relaying {len(servers)} addresses", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str]) -> int:
    pairs = []
    for arg in argv:
        listen, _, target = arg.partition("=")
        pairs.append((_address(listen), _address(target)))
    asyncio.run(_main(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
