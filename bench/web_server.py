"""A bench stack's HTTP server in a process of its own, as ``fabqueue serve`` runs it.

    python bench/web_server.py PORT     (with the stack's environment: FABQUEUE_DATA_DIR,
                                         REDIS_URL, DATABASE_URL)

The host benches time staff's requests (bed-cleared) from outside, over HTTP to uvicorn:
Starlette's TestClient hops to a thread of its own for every call, which costs more than
FabQueue's handler does on loopback (measured: /api/health 3.4 ms through TestClient, 1.5 ms
over HTTP to uvicorn), and would be counted against FabQueue.
"""

from __future__ import annotations

import sys


def main(port: int) -> None:
    import uvicorn

    from fabqueue.config import Settings
    from fabqueue.queue.context import Context, set_context
    from fabqueue.web.app import create_app

    ctx = Context(Settings())  # the environment's data folder, Redis and database
    ctx.install_publisher()
    set_context(ctx)
    uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
