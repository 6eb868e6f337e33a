"""`make run` (`python -m yiju_infra.local.run`): broker, Redis and all five services, until Ctrl-C.

Ports and the data dir come from the environment (YIJU_HTTP_PORT, YIJU_KAFKA_PORT, ..., YIJU_DATA_DIR;
see yiju_infra.local.platform). `--services intent,planning` (or $YIJU_LOCAL_SERVICES) starts only
those services; `--services none` runs only the broker and Redis (e.g. to run a service in a debugger).
`--jaeger` (or YIJU_JAEGER=1; `make jaeger`) first starts Jaeger v2 (yiju_infra.local.jaeger) and points
the services at it: spans go there over OTLP/HTTP and traces are read back from its query API.
YIJU_MODEL=sim starts the simulated Qwen server first (yiju_infra.local.model_sim) and puts it in the model
gateway's chain (openai,rules).
The console's demo-token endpoint (a bearer token for any demo user) is turned on here, and only here
(YIJU_DEMO_TOKENS=1 for the services; `--no-demo-tokens` leaves it off): no other environment has it.
Ctrl-C or SIGTERM stops every process and exits 0; a start-up failure
stops everything and exits 1 (2 for a taken port or a bad setting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from yiju_infra.local.binaries import BinaryNotFoundError
from yiju_infra.local.jaeger import Jaeger, JaegerPortInUseError
from yiju_infra.local.kafka_dist import KafkaUnavailableError
from yiju_infra.local.model_sim import ModelSimProcess, model_sim_from_env
from yiju_infra.local.platform import HOST, SERVICES, LocalPlatform, PortInUseError, ServiceNotReadyError
from yiju_infra.local.processes import ProcessError


def say(message: str) -> None:
    print(message, flush=True)


def banner(platform: LocalPlatform, jaeger: Jaeger | None = None) -> str:
    ports = platform.ports
    rows = [
        ("HTTP API", platform.api_url),
        ("healthz", f"{platform.api_url}/healthz"),
        ("gRPC", f"{HOST}:{ports.grpc} (intent)"),
        ("Kafka", platform.bootstrap),
        ("Redis", platform.redis_url),
        ("metrics", f"{HOST}:{ports.metrics_base}..{ports.metrics_base + len(SERVICES) - 1}"),
        ("logs", str(platform.logs_dir)),
    ]
    if jaeger is not None:
        rows += [
            ("Jaeger", f"{jaeger.query_url} (query API and UI; search by service or trace id)"),
            ("OTLP", f"{jaeger.otlp_http_endpoint} (HTTP), {jaeger.otlp_grpc_endpoint} (gRPC)"),
            ("CLI", f"export YIJU_TRACE_QUERY_URL={jaeger.query_url}; yiju trace ORDER_ID"),
        ]
    line = "─" * 64
    body = "\n".join(f"  {label:<9} {value}" for label, value in rows)
    return f"{line}\n  yiju is up. Ctrl-C stops everything.\n{body}\n{line}"


def parse_services(spec: str) -> tuple[str, ...]:
    """ "all", "none", or a comma-separated list of service names."""
    spec = spec.strip().lower()
    if spec in ("", "all"):
        return SERVICES
    if spec == "none":
        return ()
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"unknown services {', '.join(unknown)}; known: {', '.join(SERVICES)}, all, none")
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m yiju_infra.local.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--services",
        default=os.environ.get("YIJU_LOCAL_SERVICES", "all"),
        help="all (default), none, or a comma-separated list of: " + ", ".join(SERVICES),
    )
    parser.add_argument(
        "--jaeger",
        action="store_true",
        default=os.environ.get("YIJU_JAEGER", "").strip().lower() in ("1", "true", "yes", "on"),
        help="start Jaeger v2 first and send the services' spans to it (default: $YIJU_JAEGER)",
    )
    parser.add_argument(
        "--demo-tokens",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the console's demo users and their tokens (GET /v1/console/session; default: on)",
    )
    return parser.parse_args(argv)


def demo_env(demo_tokens: bool) -> dict[str, str]:
    """What `make run` asks of the services beyond the local platform's defaults."""
    return {"YIJU_DEMO_TOKENS": "1"} if demo_tokens else {}


async def boot(
    platform: LocalPlatform,
    services: Sequence[str],
    jaeger: Jaeger | None = None,
    model_sim: ModelSimProcess | None = None,
) -> None:
    say(f"yiju local platform: data dir {platform.data_dir}")
    if model_sim is not None:  # YIJU_MODEL=sim: the gateway's chain is openai (this server), rules
        seconds = await model_sim.start()
        say(f"simulated Qwen up on {model_sim.url} (pid {model_sim.process.pid}) in {seconds:.2f}s")
    if jaeger is not None:
        seconds = await jaeger.start()
        say(
            f"jaeger up on {jaeger.query_url} (OTLP {jaeger.otlp_http_endpoint}, pid {jaeger.process.pid}) "
            f"in {seconds:.2f}s"
        )
    created = await platform.start_infra()
    broker, redis = platform.broker, platform.redis
    assert broker is not None and redis is not None
    t = platform.timings
    say(
        f"broker up on {broker.bootstrap} ({broker.description}, pid {broker.process.pid}) "
        f"in {t['broker']:.2f}s"
    )
    say(
        f"redis up on {HOST}:{redis.port} ({redis.description}, pid {redis.process.pid}) in {t['redis']:.2f}s"
    )
    say(f"topics: {len(created)} created in {t['topics']:.2f}s")
    if platform.state_cleared:
        say(
            "starting clean: Redis held state from an event log the broker no longer has "
            "(a new or wiped broker log); it was cleared so that state and events agree"
        )
    if services:
        await platform.start_services(services)
        pids = platform.pids
        say("services started: " + ", ".join(f"{n} (pid {pids.get(n, '?')})" for n in services))
    else:
        say("services: none started (--services none)")

    def ready(name: str, seconds: float) -> None:
        extra = f", HTTP {HOST}:{platform.ports.http}" if name == "intent" else ""
        say(f"{name} ready (gRPC {HOST}:{platform.ports.health(name)}{extra}) in {seconds:.1f}s")

    await platform.wait_ready(on_ready=ready)
    say(banner(platform, jaeger))


async def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        say(f"\n{sig.name}: stopping ..." if not stop.is_set() else f"{sig.name}: already stopping ...")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        args = parse_args(argv)
        services = parse_services(args.services)
        platform = LocalPlatform()
        jaeger = Jaeger(platform.data_dir) if args.jaeger else None
        model_sim = model_sim_from_env(platform.data_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except BinaryNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    platform.extra_env.update(demo_env(args.demo_tokens))
    if jaeger is not None:
        platform.extra_env.update(jaeger.service_env())
    if model_sim is not None:
        platform.extra_env.update(model_sim.gateway_env())

    code = 0
    starting = asyncio.create_task(boot(platform, services, jaeger, model_sim))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()
            await stopping
    except (PortInUseError, JaegerPortInUseError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 2
    except (
        ProcessError,
        ServiceNotReadyError,
        BinaryNotFoundError,
        KafkaUnavailableError,
        TimeoutError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        stopping.cancel()
        await platform.stop_all()  # before Jaeger: the services flush their last spans to it
        left = dict(platform.pids)
        if model_sim is not None:
            await model_sim.stop()
            if model_sim.process.is_alive and model_sim.process.pid is not None:
                left["model_sim"] = model_sim.process.pid
        if jaeger is not None:
            await jaeger.stop()
            if jaeger.process.is_alive and jaeger.process.pid is not None:
                left["jaeger"] = jaeger.process.pid
        say("stopped: every process is gone" if not left else f"left running: {left}")
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
