"""The sandbox's load balancer: a round-robin TCP proxy in front of its replicas.

As nginx's `upstream` with its default `proxy_next_upstream error`, a replica that
refuses the connection is skipped for the next one, so the balancer answers while a
replica is down (that is why the checks ask each replica too). Bytes are passed
through untouched (TLS included); when either side closes, both are closed, as nginx
closes the upstream connection when its client goes away.

`python -m opscheck.sandbox.balancer FD HOST:PORT...`: FD is a listening socket the
caller bound (control.py), so the port is known and taken before this starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import sys

READ_SIZE = 64 * 1024
CONNECT_TIMEOUT_S = 2.0
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Balancer:
    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self._next = itertools.cycle(range(len(upstreams)))

    async def _connect(self) -> Stream | None:
        """The next replica in turn that accepts a connection; None when none does."""
        first = next(self._next)
        order = [*range(first, len(self.upstreams)), *range(first)]
        for n in order:
            host, port = self.upstreams[n]
            with contextlib.suppress(OSError, TimeoutError):
                conn = asyncio.open_connection(host, port)
                return await asyncio.wait_for(conn, CONNECT_TIMEOUT_S)
        return None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:  # nginx would answer 502; closing says as much to a probe
            writer.close()
            return
        up_reader, up_writer = upstream
        up_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            for w in (writer, up_writer):
                w.close()  # buffered bytes are still sent


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await src.read(READ_SIZE):
            dst.write(data)
            await dst.drain()


async def main(fd: int, upstreams: list[tuple[str, int]]) -> None:
    sock = socket.socket(fileno=fd)
    server = await asyncio.start_server(Balancer(upstreams).serve, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), [_address(a) for a in sys.argv[2:]]))
