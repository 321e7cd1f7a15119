"""The `outbox` command: run the relay, create the table, print its DDL or the Debezium
connector's configuration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.errors import CacheInvalidationError, SettingsError
from contracts.logs import add_log_options, configure_logging
from contracts.settings import read_settings
from producers.outbox.database_check import check_database
from producers.outbox.debezium import DebeziumSettings, as_json, as_properties, connector_config
from producers.outbox.relay import OutboxRelay
from producers.outbox.settings import RelaySettings
from producers.outbox.sqlite import sqlite_engine
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
    debezium = commands.add_parser(
        "debezium-config",
        help="print the Debezium connector's configuration for OUTBOX_DATABASE_URL (no secret)",
        description="The settings of a Debezium PostgreSQL connector that publishes the outbox"
        " exactly as `outbox relay` does. The password is never printed: --password-file names"
        " a properties file on the Connect worker (database.password=...), read by its file"
        " config provider. TLS to PostgreSQL is the relay's (OUTBOX_DATABASE_TLS__*; the"
        " files' paths must be valid on the worker; a client certificate's key as PKCS#8 DER,"
        " --client-key-file); without it the config says database.sslmode=disable.",
    )
    debezium.add_argument("--format", choices=("json", "properties"), default="json")
    debezium.add_argument(
        "--database-url",
        default=None,
        help="default OUTBOX_DATABASE_URL (no password in it), with TLS as"
        " OUTBOX_DATABASE_TLS__* say; given here: plaintext",
    )
    debezium.add_argument("--name", default="outbox", help="the connector's name")
    debezium.add_argument("--table", default=None, help="default public.event_outbox")
    debezium.add_argument("--slot", default="dbz_outbox", help="the replication slot's name")
    debezium.add_argument(
        "--topic-prefix", default="outboxdb", help="logical server name (heartbeat topic)"
    )
    debezium.add_argument(
        "--route-prefix", default="", help="put before each row's topic, e.g. dbz."
    )
    debezium.add_argument("--password-file", default=None, help="absolute path on the worker")
    debezium.add_argument(
        "--client-key-file",
        default=None,
        help="with a client certificate (OUTBOX_DATABASE_TLS__CERT_FILE): its key as unencrypted"
        " PKCS#8 DER, an absolute path on the worker (openssl pkcs8 -topk8 -nocrypt -outform"
        " DER -in client-key.pem -out client-key.pk8)",
    )
    debezium.add_argument(
        "--snapshot-mode", default="no_data", choices=("no_data", "initial", "never")
    )
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
        if args.command == "debezium-config":
            return _debezium_config(args)
        settings = read_settings(RelaySettings)
        return asyncio.run(_init(settings) if args.command == "init" else _relay(settings))
    except CacheInvalidationError as error:
        print(f"outbox: {error}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        print(f"outbox: the database or Kafka is unreachable: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _debezium_config(args: argparse.Namespace) -> int:
    password_set = False
    database_tls = None
    if args.database_url is None:
        relay = read_settings(RelaySettings)
        args.database_url = relay.database_url
        password_set = relay.database_password is not None
        database_tls = relay.database_tls
    chosen = {
        "database_url": args.database_url,
        "name": args.name,
        "slot_name": args.slot,
        "topic_prefix": args.topic_prefix,
        "route_topic_prefix": args.route_prefix,
        "password_file": args.password_file,
        "client_key_file": args.client_key_file,
        "snapshot_mode": args.snapshot_mode,
        "database_tls": database_tls,
    }
    if args.table is not None:
        chosen["table"] = args.table
    try:
        settings = DebeziumSettings(**chosen)
    except ValidationError as error:
        faults = "; ".join(_setting_fault(item) for item in error.errors())
        raise SettingsError(f"invalid Debezium settings: {faults}") from None
    if password_set and settings.password_file is None:
        print(
            "outbox: OUTBOX_DATABASE_PASSWORD is not printed; give --password-file (a file on"
            " the Connect worker holding database.password=...)",
            file=sys.stderr,
        )
    config = connector_config(settings)
    print(as_json(config) if args.format == "json" else as_properties(config), end="")
    return EXIT_OK


def _setting_fault(error: ErrorDetails) -> str:
    """One validation error as `setting: message`, the message alone if it is about several."""
    setting = ".".join(str(part) for part in error["loc"])
    return f"{setting}: {error['msg']}" if setting else error["msg"]


def engine_of(settings: RelaySettings) -> AsyncEngine:
    """The database engine of `settings` (the password from its own setting, TLS from its
    `database_tls`)."""
    url = settings.connection_url()
    if url.get_backend_name() == "sqlite":
        return sqlite_engine(url, pool_size=2)
    tls = settings.database_tls
    connect_args: dict[str, object] = {}
    if tls is not None:
        connect_args["ssl"] = tls.context()
    elif not {"ssl", "sslmode"} & set(url.query):
        # Plaintext, said so: asyncpg's default tries TLS without verifying the server, and
        # falls back to plaintext without a word.
        connect_args["ssl"] = False
    return create_async_engine(url, pool_size=2, connect_args=connect_args)


async def _init(settings: RelaySettings) -> int:
    engine = engine_of(settings)
    try:
        await check_database(engine)
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
        await check_database(engine)
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
    if settings.stats_file is not None:
        relay.stats.write_json(settings.stats_file)


if __name__ == "__main__":
    sys.exit(main())
