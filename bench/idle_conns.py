#!/usr/bin/env python3
"""Opens N keep-alive connections to a gateway, sends one request on each, then holds them.

Usage: idle_conns.py PORT PATH COUNT [HEADER: VALUE ...]
Prints `open N` once every connection has had its response (N may be less than COUNT if
some failed: the caller divides by N), then holds them until killed. bench/run measures the
gateway's RSS before and while they are held.

Why one request each: a connection that never sent a request costs some servers nothing
but a socket; one that has served a request holds its read/write buffers and per-connection
state, which is what an idle keep-alive client really costs.
"""
import asyncio
import sys


async def one(port: int, request: bytes, gate: asyncio.Semaphore, held: list) -> None:
    # The semaphore bounds connects in flight, so the listen backlog never overflows.
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                writer.close()
                return
            held.append(writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass


async def main() -> None:
    port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    headers = "".join(f"{h}\r\n" for h in sys.argv[4:])
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    gate = asyncio.Semaphore(200)
    held: list = []
    await asyncio.gather(*(one(port, request, gate, held) for _ in range(count)))
    print(f"open {len(held)}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
