#!/usr/bin/env python3
"""An echo server (RFC 862) that holds as many idle connections as clients open, in one
thread (asyncio): the upstream of the transparent suite's 10,000 idle relayed connections
(bench/transparent.sh). Usage: hold_server.py ADDR PORT. Runs until killed."""

import asyncio
import resource
import sys


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main(addr, port):
    server = await asyncio.start_server(echo, addr, port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
