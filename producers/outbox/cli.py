"""The `outbox` command: run the relay, create the table, print its DDL."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.errors import CacheInvalidationError
from contracts.logs import add_log_options, configure_logging
from contracts.settings import read_settings
from producers.outbox.relay import OutboxRelay
from producers.outbox.settings import RelaySettings
from producers.outbox.table import DIALECTS, create_outbox_table, ddl

EXIT_OK, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 2, 3

log = logging.getLogger("producers.outbox")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outbox", description="The transactional outbox's relay and table."
    )
    add_log_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("relay", help="publish pending rows to Kafka until SIGTERM")
    commands.add_parser("init", help="create the outbox table in OUTBOX_DATABASE_URL")
    printing = commands.add_parser("ddl", help="print the table's CREATE statements")
    printing.add_argument("--dialect", choices=sorted(DIALECTS), required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `outbox` console script; the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(
        args.log_level, args.log_format, "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "ddl":
        print(ddl(args.dialect), end="")
        return EXIT_OK
    try:
        settings = read_settings(RelaySettings)
        return asyncio.run(_init(settings) if args.command == "init" else _relay(settings))
    except CacheInvalidationError as error:
        print(f"outbox: {error}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        print(f"outbox: the database or Kafka is unreachable: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def engine_of(settings: RelaySettings) -> AsyncEngine:
    """The database engine of `settings` (the password from its own setting)."""
    url = settings.connection_url()
    return (
        create_async_engine(url, pool_size=2)
        if url.get_backend_name() != "sqlite"
        else (create_async_engine(url))
    )


async def _init(settings: RelaySettings) -> int:
    engine = engine_of(settings)
    try:
        await create_outbox_table(engine)
    finally:
        await engine.dispose()
    print("outbox table ready")
    return EXIT_OK


async def _relay(settings: RelaySettings) -> int:
    engine = engine_of(settings)
    relay = OutboxRelay(
        engine,
        settings.kafka,
        batch_size=settings.batch_size,
        poll_interval_s=settings.poll_interval_s,
        retention_s=settings.retention_s,
        client_id=f"outbox-relay.{os.getpid()}",
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, relay.stop)
    reporting = asyncio.create_task(_report(relay, settings))
    try:
        await relay.start()
        log.info("outbox relay started")
        await relay.run()
    finally:
        reporting.cancel()
        await relay.stop_producer()
        await engine.dispose()
        _write_stats(relay, settings)
    log.info("outbox relay stopped: %s", relay.stats.as_dict())
    return EXIT_OK


async def _report(relay: OutboxRelay, settings: RelaySettings) -> None:
    while True:
        await asyncio.sleep(settings.stats_interval_s)
        pending, age = await relay.pending()
        relay.stats.oldest_unpublished_age_s = age
        log.info("outbox relay: pending=%d %s", pending, relay.stats.as_dict())
        _write_stats(relay, settings)


def _write_stats(relay: OutboxRelay, settings: RelaySettings) -> None:
    if settings.stats_file is None:
        return
    partial = settings.stats_file.with_suffix(settings.stats_file.suffix + ".partial")
    partial.write_text(json.dumps(relay.stats.as_dict()))
    os.replace(partial, settings.stats_file)


if __name__ == "__main__":
    sys.exit(main())
