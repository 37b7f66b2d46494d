"""The ambassador pattern's proxy: the app's "localhost" database, forwarded to wherever the database really is.

It listens on the pod's own address ($POD_IP, which plays the part of the pod's localhost here) and
`--port` (6379), and pumps every connection to the `db` service, found through the kubelet's
variables DB_SERVICE_HOST / DB_SERVICE_PORT. The app never learns where the database runs; moving it
(or sharding it, or adding TLS) changes the ambassador only. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6379)
    args = parser.parse_args()
    try:
        upstream = (os.environ["DB_SERVICE_HOST"], int(os.environ["DB_SERVICE_PORT"]))
    except KeyError:
        sys.exit("ambassador: no DB_SERVICE_HOST: the service `db` did not exist when this container started")

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            db_reader, db_writer = await asyncio.open_connection(*upstream)
        except OSError as exc:
            print(f"ambassador: cannot reach the database at {upstream[0]}:{upstream[1]}: {exc}", flush=True)
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, db_writer), pump(db_reader, client_writer))

    local = os.environ.get("POD_IP", "127.0.0.1")
    server = await asyncio.start_server(forward, local, args.port)
    print(f"ambassador: {local}:{args.port} -> db service {upstream[0]}:{upstream[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
