"""The integration tests' services as containers (testcontainers), for
`INVALIDATOR_TEST_STACK=containers`: Kafka, Redis of region eu, the Redis Cluster of region us (3
masters + 3 replicas) and PostgreSQL, the topology of deploy/local/stack.sh.

Every container shares the host's network: each service listens on 127.0.0.1, on a port picked
free from `INVALIDATOR_TEST_PORTS`, so the addresses the cluster's nodes and the broker announce
are the ones the tests connect to. The Kafka and Redis containers share the host's process ids
too, so a test can signal a server by the pid INFO or the engine (`State.Pid`) reports, as on the
local stack. While the stack runs, its containers are found by role (`started_container`): a
fault test stops, freezes or kills a container's server and starts the same container again.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from docker.errors import DockerException, ImageNotFound
from redis.asyncio import Redis
from redis.exceptions import RedisError
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient

from bench.stack import REPO, StackUnavailableError
from contracts import KafkaConnection
from invalidator.operators._coordinator import until_coordinator_answers
from tests.integration.us_cluster import replicated_and_ok

log = logging.getLogger(__name__)

T = TypeVar("T")

KAFKA_VARIABLE = "INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS"
REGIONS_VARIABLE = "INVALIDATOR_REGIONS"
DATABASE_VARIABLE = "OUTBOX_DATABASE_URL"
PORTS_VARIABLE = "INVALIDATOR_TEST_PORTS"
DEFAULT_PORTS = "28000-28999"
"""Apart from deploy/local/stack.sh's default ports and their cluster bus ports (27001-27006), so
a local stack can run beside the containers."""
BUS_OFFSET = 10000
"""A Redis Cluster node also listens on its port + 10000 (the cluster bus)."""
TOPICS_FILE = REPO / "deploy" / "local" / "topics.txt"
US_NODES = 6
US_REPLICAS_PER_MASTER = 1
POSTGRES_DATABASE = "outbox"

KAFKA_START_S = 120.0
"""Until the broker answers, its topics are created and a group coordinator answers."""
REDIS_START_S = 30.0
"""Until every Redis answers PING."""
US_CLUSTER_S = 60.0
"""Until the cluster is formed: every node cluster_state:ok, each master's replica linked."""
POSTGRES_START_S = 120.0
"""Until PostgreSQL accepts connections (the image's first start runs initdb)."""
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Image:
    """A container image the tests use: its default (the official image) and the environment
    variable that replaces it (shared with docker-compose.yml)."""

    variable: str
    default: str

    def name(self, environ: Mapping[str, str] = os.environ) -> str:
        """The image to run: the variable's value, else the default."""
        return environ.get(self.variable, "").strip() or self.default


KAFKA_IMAGE = Image("KAFKA_IMAGE", "apache/kafka:4.1.0")
REDIS_IMAGE = Image("REDIS_IMAGE", "redis:7")
POSTGRES_IMAGE = Image("POSTGRES_IMAGE", "postgres:15")

BROKER_PROPERTIES = {
    "num.partitions": "6",
    "auto.create.topics.enable": "false",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}
"""The broker settings of deploy/local/stack.sh's server.properties (one node)."""
KAFKA_HEAP_OPTS = "-Xms256m -Xmx768m"
COORDINATOR_PROBE_GROUP = "containers-coordinator-probe"


# ---------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class PortRange:
    """The host ports the containers may listen on (`INVALIDATOR_TEST_PORTS`, FIRST-LAST)."""

    first: int
    last: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> PortRange:
        """The range `INVALIDATOR_TEST_PORTS` names (default 28000-28999); a clear error
        naming the variable when it is not a usable range."""
        text = environ.get(PORTS_VARIABLE, "").strip() or DEFAULT_PORTS
        first, dash, last = (part.strip() for part in text.partition("-"))
        highest = 65535 - BUS_OFFSET
        if not (dash and first.isdigit() and last.isdigit()):
            raise StackUnavailableError(
                f"{PORTS_VARIABLE}={text!r} is not a port range: write FIRST-LAST, e.g. "
                f"{DEFAULT_PORTS}"
            )
        if not 1024 <= int(first) <= int(last) <= highest:
            raise StackUnavailableError(
                f"{PORTS_VARIABLE}={text!r}: the ports must run upwards from 1024 to at most "
                f"{highest} (a Redis Cluster node also listens on its port + {BUS_OFFSET})"
            )
        return cls(int(first), int(last))

    def pick(self, count: int, *, taken: set[int], with_bus: bool = False) -> list[int]:
        """`count` ports of the range that nothing listens on now and that are not in `taken`
        (which the picked ones, and their bus ports with `with_bus`, are added to).

        with_bus: each port's port + 10000 must be free too (Redis Cluster nodes).
        """
        candidates = list(range(self.first, self.last + 1))
        random.shuffle(candidates)  # two runs at once rarely reach for the same ports
        picked: list[int] = []
        for port in candidates:
            needed = [port, port + BUS_OFFSET] if with_bus else [port]
            if any(p in taken for p in needed) or not all(map(port_free, needed)):
                continue
            picked.append(port)
            taken.update(needed)
            if len(picked) == count:
                return picked
        raise StackUnavailableError(
            f"{PORTS_VARIABLE}={self.first}-{self.last}: only {len(picked)} of the {count} free "
            "ports needed"
            + (f" (with port + {BUS_OFFSET} free too)" if with_bus else "")
            + "; widen the range or stop what listens there"
        )


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class StackPlan:
    """The ports of the services to start; None (or empty) for one the environment gives."""

    kafka: tuple[int, int] | None = None
    """The broker's client port and its controller port."""
    redis_eu: int | None = None
    redis_us: tuple[int, ...] = ()
    """The us cluster's nodes; the first is the one INVALIDATOR_REGIONS names."""
    postgres: int | None = None

    @classmethod
    def for_variables(cls, variables: Collection[str], ports: PortRange) -> StackPlan:
        """The services that supply `variables`, on ports picked free from `ports`."""
        unknown = set(variables) - {KAFKA_VARIABLE, REGIONS_VARIABLE, DATABASE_VARIABLE}
        if unknown:
            raise ValueError(f"no container supplies {', '.join(sorted(unknown))}")
        taken: set[int] = set()
        kafka = redis_eu = postgres = None
        redis_us: tuple[int, ...] = ()
        if KAFKA_VARIABLE in variables:
            client, controller = ports.pick(2, taken=taken)
            kafka = (client, controller)
        if REGIONS_VARIABLE in variables:
            redis_eu = ports.pick(1, taken=taken)[0]
            redis_us = tuple(ports.pick(US_NODES, taken=taken, with_bus=True))
        if DATABASE_VARIABLE in variables:
            postgres = ports.pick(1, taken=taken)[0]
        return cls(kafka=kafka, redis_eu=redis_eu, redis_us=redis_us, postgres=postgres)

    def endpoints(self) -> dict[str, str]:
        """The variables these services supply, in the form `deploy/local/stack.sh env`
        prints them."""
        endpoints = {}
        if self.kafka:
            endpoints[KAFKA_VARIABLE] = f"127.0.0.1:{self.kafka[0]}"
        if self.redis_eu and self.redis_us:
            endpoints[REGIONS_VARIABLE] = regions_json(self.redis_eu, self.redis_us[0])
        if self.postgres:
            endpoints[DATABASE_VARIABLE] = (
                f"postgresql+asyncpg://postgres@127.0.0.1:{self.postgres}/{POSTGRES_DATABASE}"
            )
        return endpoints

    def specs(self, environ: Mapping[str, str] = os.environ) -> list[ContainerSpec]:
        """The containers to run, of the images `environ` names."""
        specs = []
        if self.kafka:
            specs.append(kafka_spec(*self.kafka, environ=environ))
        if self.redis_eu:
            specs.append(redis_spec("redis-eu", self.redis_eu, environ=environ))
        specs.extend(
            redis_spec(f"redis-us-{port}", port, environ=environ, cluster=True)
            for port in self.redis_us
        )
        if self.postgres:
            specs.append(postgres_spec(self.postgres, environ=environ))
        return specs


def regions_json(eu_port: int, us_port: int) -> str:
    """INVALIDATOR_REGIONS for a standalone eu Redis and the us cluster seeded at `us_port`,
    exactly as `deploy/local/stack.sh env` prints it (purges wait for one replica in us)."""
    return (
        f'{{"eu":[{{"name":"eu-standalone","url":"redis://127.0.0.1:{eu_port}/0",'
        f'"cluster":false}}],"us":[{{"name":"us-cluster","url":"redis://127.0.0.1:{us_port}",'
        f'"cluster":true,"min_replicas_acked":1,"replicas_timeout_ms":1000}}]}}'
    )


def read_topics(path: Path = TOPICS_FILE) -> dict[str, int]:
    """The topics `stack.sh up` creates: `name partitions` lines, `#` comments ignored."""
    topics = {}
    for line in path.read_text().splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) >= 2:
            topics[fields[0]] = int(fields[1])
    return topics


@dataclass(frozen=True)
class ContainerSpec:
    """One container: what the image runs, on the host's network."""

    role: str
    """What it is (`kafka`, `redis-eu`, `redis-us-<port>`, `postgres`): its name's end."""
    image: str
    image_variable: str
    """The setting that chose `image`, for messages; it also says which service runs."""
    port: int
    """The port the service listens on, on 127.0.0.1 (the broker's client port)."""
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    host_pids: bool = False
    """Share the host's process ids (a test may signal the server by its pid)."""


def kafka_spec(
    port: int, controller_port: int, *, environ: Mapping[str, str] = os.environ
) -> ContainerSpec:
    """One KRaft node (broker and controller) configured the image's way, with KAFKA_*
    variables: listening and advertised on 127.0.0.1:`port`, its controller on
    127.0.0.1:`controller_port`, with stack.sh's broker settings."""
    env = {
        "CLUSTER_ID": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_HEAP_OPTS": KAFKA_HEAP_OPTS,
    }
    # The image maps KAFKA_A_B to the property a.b (these names have no _ or - of their own).
    env.update(
        {f"KAFKA_{name.replace('.', '_').upper()}": v for name, v in BROKER_PROPERTIES.items()}
    )
    return ContainerSpec(
        "kafka", KAFKA_IMAGE.name(environ), KAFKA_IMAGE.variable, port, env=env, host_pids=True
    )


def redis_spec(
    role: str, port: int, *, environ: Mapping[str, str] = os.environ, cluster: bool = False
) -> ContainerSpec:
    """A Redis on 127.0.0.1:`port` without persistence; a cluster node with `cluster` (node
    timeout 5 s, as stack.sh).

    Without persistence the container started again has no data: nothing is saved at shutdown,
    and the RDB a replica's full sync leaves in /data is deleted once loaded.
    """
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--rdb-del-sync-files", "yes"]
    if cluster:
        command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        command += ["--cluster-node-timeout", "5000"]
    return ContainerSpec(
        role, REDIS_IMAGE.name(environ), REDIS_IMAGE.variable, port, command=command, host_pids=True
    )


def postgres_spec(port: int, *, environ: Mapping[str, str] = os.environ) -> ContainerSpec:
    """PostgreSQL on 127.0.0.1:`port` as stack.sh runs it: superuser postgres trusted without a
    password, database `outbox`."""
    return ContainerSpec(
        "postgres",
        POSTGRES_IMAGE.name(environ),
        POSTGRES_IMAGE.variable,
        port,
        command=["postgres", "-c", f"port={port}", "-c", "listen_addresses=127.0.0.1"],
        env={
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": POSTGRES_DATABASE,
            "POSTGRES_HOST_AUTH_METHOD": "trust",
        },
    )


# ---------------------------------------------------------------------------- containers


class RunningContainer:
    """A started container of `spec`, removed by `stop`; its server may exit (stopped or killed
    by a test) and the same container be started again."""

    def __init__(self, spec: ContainerSpec, container: DockerContainer) -> None:
        self.spec = spec
        self._container = container

    @classmethod
    def start(cls, spec: ContainerSpec, *, session: str) -> RunningContainer:
        """Create and start it (blocking); a StackUnavailableError if the engine refuses."""
        kwargs: dict[str, Any] = {"network_mode": "host"}
        if spec.host_pids:
            kwargs["pid_mode"] = "host"
        container = None
        try:
            container = DockerContainer(spec.image, env=dict(spec.env))
            container.with_name(f"invalidator-test-{session}-{spec.role}").with_kwargs(**kwargs)
            if spec.command is not None:
                container.with_command(spec.command)
            container.start()
        except DockerException as error:
            if container is not None:
                with contextlib.suppress(DockerException):
                    container.stop()
            raise StackUnavailableError(
                f"the container {spec.role} ({spec.image_variable}={spec.image}) did not start:"
                f" {error}"
            ) from error
        return cls(spec, container)

    def running(self) -> bool:
        """Whether it still runs (blocking)."""
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def pid(self) -> int | None:
        """The host pid of its main process (the engine's State.Pid) while it runs, else None
        (blocking)."""
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        pid = int(wrapped.attrs["State"].get("Pid") or 0)
        return pid if wrapped.status == "running" and pid > 0 else None

    def start_again(self) -> None:
        """Start it again after its main process exited (blocking): the same container, with
        its command, environment and filesystem (a broker keeps its log directory)."""
        self._container.get_wrapped_container().start()

    def logs(self, lines: int = 30) -> str:
        """Its last `lines` lines of output, stdout and stderr (blocking)."""
        output = self._container.get_wrapped_container().logs(tail=lines)
        return str(output.decode(errors="replace")).rstrip()

    def execute(self, *command: str) -> tuple[int, str]:
        """Run `command` in it (blocking): its exit status and output."""
        result = self._container.exec(list(command))
        return int(result.exit_code or 0), result.output.decode(errors="replace")

    def stop(self) -> None:
        """Remove it, killed (blocking); nothing of it is kept."""
        with contextlib.suppress(DockerException):
            self._container.stop()


def engine() -> DockerClient:
    """A client of the container engine (DOCKER_HOST, else the default socket); a
    StackUnavailableError naming DOCKER_HOST when it does not answer."""
    host = os.environ.get("DOCKER_HOST") or "(unset: the default socket)"
    try:
        client = DockerClient()
        client.client.ping()
    except DockerException as error:
        raise StackUnavailableError(
            f"the container engine at DOCKER_HOST={host} is not answering ({error}): start Docker,"
            " or Podman's API service (deploy/containers/podman-service.sh), and export its"
            " DOCKER_HOST"
        ) from error
    return client


def require_images(client: DockerClient, specs: Collection[ContainerSpec]) -> None:
    """Every image of `specs` is in the engine's store, pulled if need be; a
    StackUnavailableError naming the variable that chose it otherwise."""
    for name, variable in {spec.image: spec.image_variable for spec in specs}.items():
        try:
            client.client.images.get(name)
            continue
        except ImageNotFound:
            pass
        except DockerException as error:
            raise StackUnavailableError(f"{variable}={name}: {error}") from error
        log.info("pulling %s", name)
        try:
            client.client.images.pull(name)
        except DockerException as error:
            raise StackUnavailableError(
                f"{variable}={name}: the image is not in the container engine's store and"
                f" pulling it failed ({error}); pull it, or set {variable} to an image that is"
                " there (deploy/containers/build-images.sh builds local ones)"
            ) from error


_started: dict[str, RunningContainer] = {}
"""The containers of the running `container_stack`, by role (one stack per test session)."""


def started_container(role: str) -> RunningContainer:
    """The running stack's container `role` (`kafka`, `redis-eu`, `redis-us-<port>`,
    `postgres`); a StackUnavailableError when the stack did not start it (its endpoint came from
    the environment, or no stack of containers runs)."""
    try:
        return _started[role]
    except KeyError:
        started = ", ".join(sorted(_started)) or "none"
        raise StackUnavailableError(
            f"no container {role} was started for this run (started: {started}): this test acts"
            f" on the server's process, so its endpoint must come from the stack (unset"
            f" {KAFKA_VARIABLE}, {REGIONS_VARIABLE} and {DATABASE_VARIABLE})"
        ) from None


@contextlib.contextmanager
def container_stack(variables: Collection[str]) -> Iterator[dict[str, str]]:
    """Start the containers that supply `variables` (a subset of the endpoint variables), wait
    until each serves as `deploy/local/stack.sh up` leaves it (topics created, a group
    coordinator answering, the cluster formed), yield the variables' values, remove them on exit.
    Meanwhile `started_container` finds them by role.
    """
    ports = PortRange.from_environment()
    plan = StackPlan.for_variables(variables, ports)
    specs = plan.specs()
    client = engine()
    try:
        require_images(client, specs)
    finally:
        client.client.close()
    started_at = time.monotonic()
    running: list[RunningContainer] = []
    try:
        _run_in_own_loop(_start_all(specs, running))
        _run_in_own_loop(_ready(plan, running))
        log.info("containers ready in %.1fs: %s", time.monotonic() - started_at, plan.endpoints())
        _started.update({container.spec.role: container for container in running})
        yield plan.endpoints()
    finally:
        for container in running:
            _started.pop(container.spec.role, None)
        _stop_all(running)


def _run_in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end in an event loop of a thread of its own (the caller may be a
    sync fixture of a session whose loop must stay as it is). Interrupted (Ctrl-C), it cancels
    the coroutine and waits for the threads it started before raising."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="containers", daemon=True)
    thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(_settle(asyncio.all_tasks(loop)))
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def _settle(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Let `tasks` (cancelled or not) run to their end."""
    await asyncio.gather(*tasks, return_exceptions=True)


async def _start_all(specs: list[ContainerSpec], running: list[RunningContainer]) -> None:
    """Start every container at once, each added to `running` once started (there for the
    caller to remove, whatever happens next); the first failure is raised."""
    session = uuid.uuid4().hex[:8]  # sets this run's container names apart from another's

    def start(spec: ContainerSpec) -> None:
        running.append(RunningContainer.start(spec, session=session))

    results = await asyncio.gather(
        *(asyncio.to_thread(start, spec) for spec in specs), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _stop_all(running: list[RunningContainer]) -> None:
    """Remove every container of `running` at once."""
    with concurrent.futures.ThreadPoolExecutor(max(len(running), 1)) as pool:
        for stopping in [pool.submit(container.stop) for container in running]:
            stopping.result(timeout=STOP_TIMEOUT_S)


async def _ready(plan: StackPlan, running: list[RunningContainer]) -> None:
    """Wait for every service at once."""
    by_role = {container.spec.role: container for container in running}
    waits: list[Awaitable[None]] = []
    if plan.kafka:
        waits.append(kafka_ready(plan.kafka[0], read_topics(), by_role["kafka"]))
    if plan.redis_eu:
        waits.append(redis_ready(plan.redis_eu, by_role["redis-eu"]))
    if plan.redis_us:
        nodes = [by_role[f"redis-us-{port}"] for port in plan.redis_us]
        waits.append(us_cluster_ready(plan.redis_us, nodes))
    if plan.postgres:
        waits.append(postgres_ready(plan.postgres, by_role["postgres"]))
    await asyncio.gather(*waits)


# ---------------------------------------------------------------------------- readiness


async def until_serving(container: RunningContainer) -> None:
    """Wait until the container's server serves as after the stack's start (after a restart):
    the broker answers with its topics and a group coordinator, a Redis answers PING,
    PostgreSQL a query."""
    port, image_variable = container.spec.port, container.spec.image_variable
    if image_variable == KAFKA_IMAGE.variable:
        await kafka_ready(port, read_topics(), container)
    elif image_variable == REDIS_IMAGE.variable:
        await redis_ready(port, container)
    elif image_variable == POSTGRES_IMAGE.variable:
        await postgres_ready(port, container)
    else:
        raise ValueError(f"no readiness check for {container.spec.role} ({image_variable})")


async def until_ready(
    ready: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    watched: Collection[RunningContainer],
) -> None:
    """Poll `ready` until it is true; a StackUnavailableError with the containers' last log
    lines when `within` seconds pass first or a watched container exits."""
    deadline = time.monotonic() + within
    while not await ready():
        for container in watched:
            if not await asyncio.to_thread(container.running):
                raise StackUnavailableError(
                    f"the container {container.spec.role} exited while waiting for {what}:\n"
                    f"{await asyncio.to_thread(container.logs)}"
                )
        if time.monotonic() > deadline:
            logs = [
                f"--- {container.spec.role}:\n{await asyncio.to_thread(container.logs)}"
                for container in watched
            ]
            raise StackUnavailableError(
                f"timed out after {within:.0f}s waiting for {what}\n" + "\n".join(logs)
            )
        await asyncio.sleep(0.2)


async def kafka_ready(port: int, topics: Mapping[str, int], broker: RunningContainer) -> None:
    """The broker on `port` answers, `topics` (name -> partitions) exist and a group
    coordinator answers: what `stack.sh up` waits for."""
    bootstrap = f"127.0.0.1:{port}"
    kafka = KafkaConnection(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + KAFKA_START_S

    async def answers() -> bool:
        if not await _accepts(port):  # spares aiokafka's error log of each refused connection
            return False
        admin = AIOKafkaAdminClient(**kafka.client_kwargs())
        try:
            await admin.start()
            await admin.list_topics()
        except (KafkaError, OSError):
            return False
        finally:
            await admin.close()
        return True

    await until_ready(answers, within=KAFKA_START_S, what=f"Kafka on {bootstrap}", watched=[broker])
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(n, parts, 1) for n, parts in topics.items() if n not in existing]
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, *detail in response.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise StackUnavailableError(
                        f"creating topic {name} on {bootstrap} failed: {detail[-1] or code}"
                    )
        # A fresh broker creates __consumer_offsets on the first group request and answers
        # "coordinator not available" until it is loaded: clients in that window would fail.
        await until_coordinator_answers(
            lambda: admin.find_coordinator(COORDINATOR_PROBE_GROUP),
            group_id=COORDINATOR_PROBE_GROUP,
            deadline_s=max(deadline - time.monotonic(), 10.0),
        )
    finally:
        await admin.close()


async def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def _pings(port: int) -> bool:
    client = Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def redis_ready(port: int, server: RunningContainer) -> None:
    """The Redis on `port` answers PING."""
    await until_ready(
        lambda: _pings(port), within=REDIS_START_S, what=f"Redis on {port}", watched=[server]
    )


async def us_cluster_ready(ports: tuple[int, ...], nodes: list[RunningContainer]) -> None:
    """Every node answers; `redis-cli --cluster create` (run in the first node's container)
    makes them 3 masters with a replica each; then wait until every node says cluster_state:ok
    and each replica's link is up, as stack.sh does."""

    async def all_ping() -> bool:
        return all(await asyncio.gather(*(_pings(port) for port in ports)))

    await until_ready(all_ping, within=REDIS_START_S, what="the us cluster's nodes", watched=nodes)
    addresses = [f"127.0.0.1:{port}" for port in ports]
    status, output = await asyncio.to_thread(
        nodes[0].execute,
        "redis-cli",
        "--cluster",
        "create",
        *addresses,
        "--cluster-replicas",
        str(US_REPLICAS_PER_MASTER),
        "--cluster-yes",
    )
    if status != 0:
        raise StackUnavailableError(f"redis-cli --cluster create failed ({status}):\n{output}")
    await until_ready(
        lambda: replicated_and_ok("127.0.0.1", ports[0], masters=US_NODES // 2),
        within=US_CLUSTER_S,
        what="the us cluster: cluster_state:ok on every node, each master's replica linked",
        watched=nodes,
    )


async def postgres_ready(port: int, server: RunningContainer) -> None:
    """The outbox database on `port` answers a query."""
    dsn = f"postgresql://postgres@127.0.0.1:{port}/{POSTGRES_DATABASE}"

    async def answers() -> bool:
        try:
            connection = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            return bool(await connection.fetchval("SELECT 1") == 1)
        finally:
            await connection.close()

    await until_ready(
        answers, within=POSTGRES_START_S, what=f"PostgreSQL on {port}", watched=[server]
    )
