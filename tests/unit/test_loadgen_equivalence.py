"""The performance changes must not change results: faster helpers give exactly what the plain ones did,
and the platform's replica settings are what they say."""

from __future__ import annotations

import random
import string
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio.client import Pipeline

from yiju.common.envelope import _ID_NAMESPACE, event_id, now_iso
from yiju.common.logs import redact
from yiju.common.redis import AUTO_PIPELINED, AutoPipelineRedis, Script, create_redis, load_script
from yiju_infra.local.platform import LocalPlatform, Ports


def test_event_id_is_uuid5() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        order_id = "".join(rng.choices(string.printable + "订单号", k=rng.randint(0, 30)))
        kind = rng.choice(("yiju.plan.created", "yiju.payment.captured", ""))
        assert event_id(order_id, kind) == str(uuid.uuid5(_ID_NAMESPACE, f"{order_id}/{kind}"))


def test_now_iso_is_the_millisecond_utc_time() -> None:
    for _ in range(200):
        before = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        now = now_iso()
        after = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert before <= now <= after and len(now) == 24 and now.endswith("Z")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("password", "x", "[secret]"),
        ("user_assertion", "x", "[secret]"),
        ("deliver_to", "Home Road 1", "[redacted]"),
        ("deliver_to", "", ""),
        ("messaging.destination", "yiju.plan.created.v1", "yiju.plan.created.v1"),
        ("order_id", "ord_1", "ord_1"),
    ],
)
def test_redaction_is_unchanged(key: str, value: str, expected: str) -> None:
    assert redact(key, value) == expected
    assert redact(key, value) == expected  # and again, from the cache


def test_redis_clients_pipeline_only_stateless_commands(tmp_path: Path) -> None:
    client = create_redis(url="redis://127.0.0.1:1/0")
    assert isinstance(client, AutoPipelineRedis)
    assert {"GET", "SET", "MGET", "HSET", "EVALSHA", "EVAL", "ZADD"} <= AUTO_PIPELINED
    assert not {"PING", "WATCH", "MULTI", "EXEC", "BLPOP", "SUBSCRIBE", "SELECT", "CLIENT"} & AUTO_PIPELINED
    script_file = tmp_path / "s.lua"
    script_file.write_text("return 1")
    script = load_script(client, script_file)
    assert isinstance(script, Script) and isinstance(client.register_script("return 2"), Script)


async def test_a_script_in_an_explicit_pipeline_is_sent_as_eval() -> None:
    client = create_redis(url="redis://127.0.0.1:1/0")
    pipe = client.pipeline(transaction=False)
    assert isinstance(pipe, Pipeline)
    script = Script(client, "return KEYS[1]")
    await script(keys=["k"], args=[1], client=pipe)
    assert not pipe.scripts  # no SCRIPT EXISTS round trip before the pipeline
    assert [args for args, _ in pipe.command_stack] == [("EVAL", "return KEYS[1]", 1, "k", 1)]
    await client.aclose()


def test_replicas_get_their_own_ports_and_share_the_rest(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path, Ports.free(), replicas={"intent": 2, "payment": 3})
    assert platform.instances("payment") == ["payment", "payment#2", "payment#3"]
    assert platform.instances("planning") == ["planning"]
    first, second = platform.service_env("intent"), platform.service_env("intent#2")
    for var in ("YIJU_GRPC_PORT", "YIJU_HTTP_PORT", "YIJU_METRICS_PORT"):
        assert first[var] != second[var]
    for var in ("YIJU_KAFKA_BOOTSTRAP", "YIJU_REDIS_URL", "YIJU_PLANNING_TARGET", "YIJU_JWT_SECRET"):
        assert first[var] == second[var]
    assert platform.health_port("payment#3") == int(platform.service_env("payment#3")["YIJU_PAYMENT_PORT"])
    assert platform.health_port("payment") == platform.ports.payment
    assert platform.service_env("payment#2") == platform.service_env("payment#2")  # ports are kept
    gateways = LocalPlatform(tmp_path, replicas={"model_gateway": 2})  # share the model requests
    second_gateway = gateways.service_env("model_gateway#2")
    assert int(second_gateway["YIJU_GATEWAY_PORT"]) == gateways.health_port("model_gateway#2")
    assert gateways.health_port("model_gateway#2") != gateways.ports.gateway
    assert gateways.metrics_port("model_gateway#2") == int(second_gateway["YIJU_METRICS_PORT"])
    assert gateways.metrics_port("model_gateway") == gateways.ports.metrics("model_gateway")
    with pytest.raises(ValueError, match="redis"):
        LocalPlatform(tmp_path, replicas={"redis": 2})
    with pytest.raises(ValueError, match="at least 1"):
        LocalPlatform(tmp_path, replicas={"intent": 0})
