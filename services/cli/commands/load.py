"""``yiju load``: offer an open-loop load of sentences and report latency, throughput and losses.

    YIJU_SYNTHETIC_USERS=1000 make run                  # the platform must know the synthetic users
    yiju load --via kafka --rate 200 --duration 60
    yiju load --via http --profile spike --rate 100     # ten times the rate within 10 s
    yiju load --profile steps --steps 100:30,400:30,800:30 --json

Addresses and the signing secret come from the environment as for the services (YIJU_KAFKA_BOOTSTRAP,
YIJU_API_URL or YIJU_HTTP_PORT, YIJU_GRPC_PORT, YIJU_REDIS_URL, YIJU_JWT_SECRET or YIJU_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvloop

from yiju.cli import exitcodes
from yiju.cli.context import CliContext, CliError
from yiju.cli.options import positive_float

PRIORITY = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load-test the platform (open loop) and report latency and losses",
        description=(
            "Send sentences at a target rate (open loop: latency counts from each sentence's intended send "
            "time), watch each order reach COMPLETED on the platform's topics, and report percentiles, "
            "throughput, losses and duplicates. The platform must run with YIJU_SYNTHETIC_USERS >= --users."
        ),
    )
    parser.add_argument("--via", choices=("http", "grpc", "kafka"), default="kafka", help="entry path")
    parser.add_argument(
        "--profile", choices=("constant", "ramp", "spike", "steps"), default="constant", help="load shape"
    )
    parser.add_argument(
        "--rate", type=positive_float, default=100.0, help="sentences/s (ramp: start, spike: base)"
    )
    parser.add_argument("--duration", type=positive_float, default=30.0, metavar="SECONDS")
    parser.add_argument("--to", type=positive_float, help="ramp: the final rate (default 10 x --rate)")
    parser.add_argument("--factor", type=positive_float, default=10.0, help="spike: peak / base (default 10)")
    parser.add_argument(
        "--spike-at", type=float, default=10.0, metavar="SECONDS", help="spike: when it starts"
    )
    parser.add_argument(
        "--rise", type=positive_float, default=10.0, metavar="SECONDS", help="spike: rise (<= 10)"
    )
    parser.add_argument(
        "--hold", type=float, default=10.0, metavar="SECONDS", help="spike: how long the peak lasts"
    )
    parser.add_argument("--steps", default="", metavar="RATE:SECONDS,...", help="steps: e.g. 100:30,400:30")
    parser.add_argument(
        "--users", type=int, default=1000, help="synthetic users load-u-000001.. (default 1000)"
    )
    parser.add_argument("--user-ids", default="", metavar="U1,U2", help="use these users instead")
    parser.add_argument(
        "--zipf", type=positive_float, default=1.1, help="Zipf exponent of sentence popularity"
    )
    parser.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drain", type=positive_float, default=60.0, metavar="SECONDS", help="wait for stragglers"
    )
    parser.add_argument("--grpc-target", metavar="HOST:PORT", help="default 127.0.0.1:$YIJU_GRPC_PORT")
    parser.add_argument(
        "--http-client", choices=("raw", "sdk"), default="raw", help="raw keep-alive or the SDK"
    )
    parser.add_argument("--connections", type=int, default=128, help="HTTP connections (default 128)")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the Redis projection and wallet checks"
    )
    parser.add_argument(
        "--watch-from",
        choices=("start", "end"),
        default="start",
        help="where the completion watcher starts reading: end (Apache Kafka: skips the existing log) or "
        "start (any broker; tansu's end offsets are wrong)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    from yiju.common.catalog import load_catalog
    from yiju.common.settings import Settings
    from yiju.loadgen.runner import LoadConfig
    from yiju.loadgen.session import build_profile, load_test

    settings = Settings()
    user_ids = tuple(u.strip() for u in args.user_ids.split(",") if u.strip())
    catalog = load_catalog(settings.catalog_dir, max(settings.synthetic_users, 0 if user_ids else args.users))
    try:
        profile = build_profile(
            args.profile,
            args.rate,
            args.duration,
            to=args.to,
            factor=args.factor,
            spike_at_s=args.spike_at,
            rise_s=args.rise,
            hold_s=args.hold,
            steps=args.steps,
        )
        config = LoadConfig(
            via=args.via,
            users=0 if user_ids else args.users,
            user_ids=user_ids,
            zipf_s=args.zipf,
            seed=args.seed,
            poisson=args.poisson,
            http_client=args.http_client,
            connections=args.connections,
            watch_from_end=args.watch_from == "end",
            api_url=ctx.api_url,
            grpc_target=args.grpc_target or f"127.0.0.1:{settings.grpc_port}",
            max_total_fen=(
                min(catalog.users[u].confirm_above_fen for u in user_ids if u in catalog.users)
                if user_ids and any(u in catalog.users for u in user_ids)
                else None
            ),
        )
        result = uvloop.run(
            load_test(
                settings,
                catalog,
                config,
                profile,
                drain_s=args.drain,
                console=ctx.err,
                verify=not args.no_verify,
            )
        )
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc), exitcodes.USAGE) from exc
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    if args.json:
        ctx.print_json(result)
    clean = result["completed"] == result["offered"] and not result["duplicated"]
    return exitcodes.OK if clean else exitcodes.ORDER_FAILED
