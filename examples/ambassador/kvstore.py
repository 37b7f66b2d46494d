"""The ambassador pattern's "database": a tiny in-memory key-value store speaking a line protocol.

Commands, one per line: `GET key` → `$value` (or `$` when unset), `SET key value` → `+OK`,
`INCR key` → `:n`; anything else → `-ERR ...`. Listens on $POD_IP and `--port` (6379).
Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import os

store: dict[str, str] = {}


def answer(line: str) -> str:
    """One command line in, one reply line out (the whole protocol, as a pure function over `store`)."""
    words = line.split(maxsplit=2)
    verb = words[0].upper() if words else ""
    if verb == "GET" and len(words) == 2:
        return "$" + store.get(words[1], "")
    if verb == "SET" and len(words) == 3:
        store[words[1]] = words[2]
        return "+OK"
    if verb == "INCR" and len(words) == 2:
        try:
            value = int(store.get(words[1], "0")) + 1
        except ValueError:
            return "-ERR value is not an integer"
        store[words[1]] = str(value)
        return f":{value}"
    return "-ERR unknown command; use GET key, SET key value or INCR key"


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write((answer(line.decode().strip()) + "\n").encode())
            await writer.drain()
    except (ConnectionError, UnicodeDecodeError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6379)
    args = parser.parse_args()
    server = await asyncio.start_server(serve_client, os.environ.get("POD_IP", "127.0.0.1"), args.port)
    print(f"kvstore: listening on {os.environ.get('POD_IP', '127.0.0.1')}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
