"""The `invalidator` command: run a region's consumer (operator commands come alongside)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaConnectionError, KafkaError
from redis.exceptions import RedisError

from contracts.connection_checks import check_kafka, check_redis
from contracts.errors import CacheInvalidationError, ConnectionSecurityError
from contracts.logs import add_log_options, configure_logging, set_log_context
from contracts.settings import read_settings
from invalidator.consumer import Invalidator
from invalidator.operators import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    add_catalogue_option,
    add_operator_commands,
    handler_of,
    require_topics,
    set_handler,
)
from invalidator.settings import InvalidatorSettings


def command_parser() -> argparse.ArgumentParser:
    """The `invalidator` parser: `run` and the operator commands, each naming its handler."""
    parser = argparse.ArgumentParser(
        prog="invalidator", description="Event-driven cache invalidation over Kafka."
    )
    add_log_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="consume events and purge one region's Redis")
    run.add_argument("--region", required=True, help="a region of INVALIDATOR_REGIONS")
    add_catalogue_option(run)
    set_handler(run, run_region)
    add_operator_commands(commands)
    return parser


def load_settings(catalogue: str | None = None) -> InvalidatorSettings:
    """Settings from the environment; raises SettingsError naming each variable at fault.

    catalogue: a `--catalogue` option, over INVALIDATOR_CATALOGUE.
    """
    settings = read_settings(InvalidatorSettings)
    if catalogue:
        settings = settings.model_copy(update={"catalogue": catalogue})
    return settings


def run_region(args: argparse.Namespace, settings: InvalidatorSettings) -> int:
    """`invalidator run`: consume and purge one region until SIGTERM or SIGINT; the exit
    status."""
    set_log_context({"region": args.region, "group": settings.group_id(args.region)})
    invalidator = Invalidator(settings, region=args.region)
    asyncio.run(_run(invalidator))
    return EXIT_OK


async def check_connections(settings: InvalidatorSettings, region: str) -> None:
    """Raise ConnectionSecurityError when Kafka or one of `region`'s Redis targets refuses the
    connection's TLS or login (an outage is left to the start-up that follows).

    settings: the invalidator's settings; region: whose Redis targets are checked.
    """
    await check_kafka(settings.kafka)
    for target in settings.targets(region):
        await check_redis(target)


async def _run(invalidator: Invalidator) -> None:
    # Before joining the group: a refused TLS handshake or login would otherwise show as an
    # unreachable broker, or as purges retried for ever; a missing topic would be retried for
    # ever, and an unreachable broker is reported here with exit status 3 instead of from inside
    # the loop. Mirrored topics that MirrorMaker has not created yet are waited for, not an error.
    await check_connections(invalidator.settings, invalidator.region)
    absent = await require_topics(invalidator.settings, invalidator.catalogue)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, invalidator.stop)
    await invalidator.run(absent_topics=absent)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `invalidator` command; returns the exit status."""
    parser = command_parser()
    args = parser.parse_args(argv)
    handler = handler_of(args)
    if handler is None:  # registered on the parser without a handler: never run another one
        parser.error(f"the command {args.command!r} has no handler; nothing was run")
    configure_logging(
        args.log_level, args.log_format, "%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings: InvalidatorSettings | None = None
    try:
        settings = load_settings(args.catalogue)
        return handler(args, settings)
    except CacheInvalidationError as error:
        print(f"invalidator: {error}", file=sys.stderr)
        return EXIT_INPUT
    except (KafkaError, RedisError, OSError) as error:
        refusal = kafka_refusal(settings) if isinstance(error, KafkaConnectionError) else None
        if refusal is None and isinstance(error, RedisError | OSError):
            refusal = redis_refusal(settings, getattr(args, "region", None))
        if refusal is not None:
            print(f"invalidator: {refusal}", file=sys.stderr)
            return EXIT_INPUT
        print(f"invalidator: a service cannot be reached: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def kafka_refusal(settings: InvalidatorSettings | None) -> ConnectionSecurityError | None:
    """After a command could not bootstrap from Kafka: the refused TLS handshake or login behind
    it, if that is what it was (aiokafka only logs the cause); None for an outage.

    settings: the command's settings (None: they were not read, nothing to check).
    """
    if settings is None:
        return None
    try:
        asyncio.run(check_kafka(settings.kafka))
    except ConnectionSecurityError as refusal:
        return refusal
    except (KafkaError, OSError):
        return None
    return None


def redis_refusal(
    settings: InvalidatorSettings | None, region: str | None
) -> ConnectionSecurityError | None:
    """After a command failed on Redis: the refused TLS handshake or login of a target behind
    it (those of `region`, or of every region), if that is what it was; None for an outage."""
    if settings is None:
        return None
    regions = [region] if region in settings.regions else sorted(settings.regions)
    for name in regions:
        for target in settings.targets(name):
            try:
                asyncio.run(check_redis(target))
            except ConnectionSecurityError as refusal:
                return refusal
            except (RedisError, OSError):
                continue
    return None


if __name__ == "__main__":
    sys.exit(main())
