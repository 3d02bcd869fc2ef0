"""A small Tornado shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it with
Tornado's own server, as the README says::

    OTEL_SERVICE_NAME=tornado-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument python -m examples.tornado_app --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading

import tornado.httpclient
import tornado.web

log = logging.getLogger("shop.checkout")


class Checkout(tornado.web.RequestHandler):
    def get(self) -> None:
        """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
        log.info("checkout started")
        log.warning("primary card processor slow, trying the backup")
        log.error("payment declined: card %s expired", "4242")
        self.set_status(402)
        self.write({"status": "declined"})


class Crash(tornado.web.RequestHandler):
    def get(self) -> None:
        """An unhandled exception: Tornado answers 500 and logs "Uncaught exception" with its traceback."""
        raise RuntimeError("inventory service timed out")


class InTask(tornado.web.RequestHandler):
    async def get(self) -> None:
        """An error logged by an asyncio task started for the request."""

        async def render() -> None:
            await asyncio.sleep(0)
            log.error("receipt rendering failed in a task")

        await asyncio.create_task(render())
        self.write({"status": "queued"})


class InThread(tornado.web.RequestHandler):
    async def get(self) -> None:
        """An error logged by a worker thread started for the request."""
        worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
        worker.start()
        await asyncio.to_thread(worker.join)
        self.write({"status": "queued"})


class Call(tornado.web.RequestHandler):
    async def get(self) -> None:
        """Calls another service over HTTP: the session goes along in the request's headers."""
        client = tornado.httpclient.AsyncHTTPClient()
        response = await client.fetch(self.get_argument("url"), raise_error=False)
        self.write({"downstream": response.code})


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        """Readiness probe, logs nothing."""
        self.write({"status": "ok"})


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [
            ("/checkout", Checkout),
            ("/crash", Crash),
            ("/task", InTask),
            ("/thread", InThread),
            ("/call", Call),
            ("/health", Health),
        ]
    )


async def main(port: int, address: str) -> None:
    make_app().listen(port, address)
    await asyncio.Event().wait()  # serve until stopped


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default="127.0.0.1")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.port, arguments.address))
