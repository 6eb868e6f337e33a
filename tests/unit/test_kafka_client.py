"""The Kafka client seam (yiju.common.kafka_client): one setting picks faststream's aiokafka or confluent
broker, settings map to both clients, records/lag/errors read the same from either; and the span cuts
(no send span inside a span, process-span attributes only when recorded, FastAPI's own tracing off)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest
from aiokafka import ConsumerRecord
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream.confluent import KafkaBroker as ConfluentBroker
from faststream.confluent.parser import AsyncConfluentParser
from faststream.kafka import KafkaBroker as AioBroker
from faststream.security import SASLScram512
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler

from yiju.common import kafka_client
from yiju.common.broker import EventPublisher
from yiju.common.consumer import INFRASTRUCTURE_ERRORS, BatchProcessor, EventRouter, tolerant_parser
from yiju.common.envelope import build_headers, spec_for
from yiju.common.settings import Settings
from yiju.common.topics import INTENT_PROJECTION, Namespace
from yiju.gen.events.v1 import order_events_pb2 as ev


def test_the_setting_picks_faststreams_broker_for_each_client() -> None:
    assert Settings().kafka_client == "aiokafka"  # the design's default
    assert isinstance(kafka_client.create_broker(Settings(), "payment"), AioBroker)
    assert isinstance(
        kafka_client.create_broker(Settings(kafka_client="confluent"), "payment"), ConfluentBroker
    )
    with pytest.raises(ValueError, match="kafka_client"):
        Settings(kafka_client="kafka-python")


def test_producer_and_security_settings_map_to_librdkafka_names() -> None:
    settings = Settings(
        kafka_client="confluent",
        kafka_acks="all",
        kafka_linger_ms=7,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="scram-sha-256",
        kafka_sasl_username="svc-payment",
        kafka_sasl_password="secret",
        kafka_ssl_cafile="/etc/kafka/ca.pem",
    )
    broker = kafka_client.create_broker(settings, "payment")
    producer = broker.config.broker_config.connection_config.producer_config
    assert producer["enable.idempotence"] is True and producer["acks"] == -1
    assert producer["linger.ms"] == 7 and producer["batch.size"] == kafka_client.MAX_BATCH_BYTES
    assert producer["partitioner"] == "murmur2_random"  # the same partition per key as aiokafka/Java
    assert producer["client.id"] == "yiju-payment"
    assert {k: producer[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username")} == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc-payment",
    }
    assert producer["sasl.password"] == "secret" and producer["ssl.ca.location"] == "/etc/kafka/ca.pem"
    plain = kafka_client.librdkafka_config(Settings(kafka_client="confluent"))
    assert plain["security.protocol"] == "plaintext" and "sasl.username" not in plain
    assert "ssl.ca.location" not in plain
    idempotence_off = kafka_client.create_broker(
        Settings(kafka_client="confluent", kafka_enable_idempotence=False), "intent"
    )
    assert (
        idempotence_off.config.broker_config.connection_config.producer_config["enable.idempotence"] is False
    )


def test_aiokafka_keeps_its_security_object() -> None:
    security = kafka_client._security(
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p")
    )
    assert isinstance(security, SASLScram512) and not security.use_ssl
    assert kafka_client._security(Settings()) is None


def test_a_batch_waits_the_same_time_in_each_clients_terms() -> None:
    assert kafka_client.batch_subscriber_options(Settings(kafka_batch_timeout_ms=20)) == {
        "batch_timeout_ms": 20
    }
    assert kafka_client.batch_subscriber_options(
        Settings(kafka_client="confluent", kafka_batch_timeout_ms=20)
    ) == {"polling_interval": 0.02}


def confluent_message(offset: int, headers: list[tuple[str, bytes]], value: bytes = b"v") -> Any:
    return confluent_kafka.Message(
        topic="t.yiju.plan.created.v1", partition=3, offset=offset, key=b"ord-1", value=value, headers=headers
    )


def aiokafka_record(offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        "t.yiju.plan.created.v1", 3, offset, 0, 0, b"ord-1", b"v", None, 1, 1, tuple(headers)
    )


def test_records_read_the_same_from_either_client() -> None:
    from_confluent = kafka_client.records_of([confluent_message(5, [("ce_id", b"e-1")], value=None)])
    assert [(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers)) for r in from_confluent] == [
        ("t.yiju.plan.created.v1", 3, 5, b"ord-1", None, [("ce_id", b"e-1")])
    ]
    native = [aiokafka_record(5, [("ce_id", b"e-1")])]
    assert kafka_client.records_of(native) is native  # aiokafka's records already read this way
    assert kafka_client.values_of([confluent_message(1, [], value=None), confluent_message(2, [])]) == [
        b"",
        b"v",
    ]
    assert kafka_client.values_of(native) == [b"v"]
    assert kafka_client.records_of([]) == []


def test_lag_reads_each_clients_high_watermark() -> None:
    class AioConsumer:
        def highwater(self, tp: AioTopicPartition) -> int:
            return {AioTopicPartition("t", 1): 40}[tp]

    assert kafka_client.highwater(AioConsumer(), "t", 1) == 40

    class Native:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def get_watermark_offsets(self, tp: Any, cached: bool) -> Any:
            assert cached and (tp.topic, tp.partition) == ("t", 1)  # no request to the cluster
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    assert kafka_client.highwater(SimpleNamespace(consumer=Native((0, 42))), "t", 1) == 42
    assert kafka_client.highwater(SimpleNamespace(consumer=Native((-1001, -1001))), "t", 1) is None
    error = confluent_kafka.KafkaException(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT))
    assert kafka_client.highwater(SimpleNamespace(consumer=Native(error)), "t", 1) is None
    assert kafka_client.highwater(object(), "t", 1) is None


def test_either_clients_outage_rewinds_the_batch_rather_than_dead_lettering() -> None:
    down = confluent_kafka.KafkaException(
        confluent_kafka.KafkaError(confluent_kafka.KafkaError._ALL_BROKERS_DOWN)
    )
    for error in (down, KafkaConnectionError(), BufferError("Local: Queue full")):
        assert isinstance(error, INFRASTRUCTURE_ERRORS)


@pytest.mark.parametrize("client", kafka_client.CLIENTS)
async def test_a_header_that_is_not_utf8_does_not_fail_the_batch(client: str) -> None:
    """faststream's parsers decode every header; the handler still gets the original records."""
    make = confluent_message if client == "confluent" else aiokafka_record
    records = (make(1, [("ce_id", b"ok")]), make(2, [("ce_id", b"\xff\xfe")]))
    if client == "confluent":
        original = AsyncConfluentParser(is_manual=True).parse_batch
    else:
        from faststream.kafka.message import KafkaMessage
        from faststream.kafka.parser import AioKafkaBatchParser

        original = AioKafkaBatchParser(KafkaMessage, None).parse_batch
    message = await tolerant_parser(records, original)
    assert message.raw_message is records
    assert message.batch_headers == [{"ce_id": "ok"}, {"ce_id": ""}]


async def test_confluents_fast_send_resolves_with_the_delivery_report() -> None:
    """librdkafka's produce, its delivery report served on another thread, the future on the loop."""
    native = confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 200})
    wrapper = SimpleNamespace(producer=native)  # faststream's AsyncConfluentProducer holds it as .producer
    broker = SimpleNamespace(
        config=SimpleNamespace(producer=SimpleNamespace(_producer=SimpleNamespace(producer=wrapper)))
    )
    send = kafka_client.fast_sender(broker)
    assert send is not None
    future = await send("t", b"v", b"k", [("ce_id", b"e-1")])
    assert not future.done()
    loop = asyncio.get_running_loop()
    while not future.done():  # what faststream's poll loop does on its thread
        await loop.run_in_executor(None, native.poll, 0.1)
    with pytest.raises(confluent_kafka.KafkaException):
        await future
    assert kafka_client.fast_sender(SimpleNamespace()) is None  # a test broker: faststream's publish


class RecordingBroker:
    """A broker without a connected producer: EventPublisher uses faststream's publish, recorded here."""

    def __init__(self) -> None:
        self.published: list[dict[str, str]] = []

    async def publish(
        self, value: bytes, topic: str, *, key: bytes, headers: dict[str, str], **_: Any
    ) -> Any:
        self.published.append(dict(headers))
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def tracer_with(sampler: Sampler) -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    yield tracer_with(ALWAYS_ON)


async def test_a_publish_inside_a_span_adds_no_send_span_and_continues_that_span(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    broker = RecordingBroker()
    publisher = EventPublisher(broker, "yiju/test", Namespace())
    publisher._tracer = tracer
    with tracer.start_as_current_span("process upstream") as upstream:
        await publisher.publish(ev.PlanCreated(order_id="ord-1"), "ord-1")
    assert [s.name for s in exporter.get_finished_spans()] == ["process upstream"]
    span_id = f"{upstream.get_span_context().span_id:016x}"
    assert broker.published[0]["traceparent"].split("-")[2] == span_id  # the next hop is its child


async def test_a_publish_outside_any_span_starts_its_trace_with_a_send_span(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    broker = RecordingBroker()
    publisher = EventPublisher(broker, "yiju/test", Namespace("t."))
    publisher._tracer = tracer
    await publisher.publish(ev.PlanCreated(order_id="ord-1"), "ord-1")
    (send,) = exporter.get_finished_spans()
    assert send.name == "send t.yiju.plan.created.v1" and send.kind == trace.SpanKind.PRODUCER
    assert send.attributes["messaging.kafka.message.key"] == "ord-1"
    assert broker.published[0]["traceparent"].split("-")[2] == f"{send.context.span_id:016x}"


def projection_batch() -> tuple[BatchProcessor, list[Any]]:
    router = EventRouter(INTENT_PROJECTION)  # idempotent by construction: no Redis de-duplication

    @router.on(ev.PlanCreated)
    async def on_plan(message: Any, ctx: Any) -> None:
        return None

    processor = BatchProcessor(router, EventPublisher(RecordingBroker(), "yiju/test"), None, Settings())  # type: ignore[arg-type]
    spec = spec_for(ev.PlanCreated())
    headers = [(k, v.encode()) for k, v in build_headers(spec, "ord-1", "yiju/planning").items()]
    record = ConsumerRecord(
        spec.topic,
        0,
        7,
        0,
        0,
        b"ord-1",
        ev.PlanCreated(order_id="ord-1").SerializeToString(),
        None,
        1,
        1,
        tuple(headers),
    )
    return processor, [record]


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ALWAYS_ON], ids=["sampled-out", "recorded"])
async def test_process_span_attributes_are_built_only_for_a_recorded_span(
    sampler: Sampler, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor, records = projection_batch()
    processor._tracer, exporter = tracer_with(sampler)
    built: list[int] = []
    build = processor._process_attributes
    monkeypatch.setattr(processor, "_process_attributes", lambda r, m: built.append(r.offset) or build(r, m))
    await processor.handle(records)
    finished = exporter.get_finished_spans()
    if sampler is ALWAYS_OFF:
        assert built == [] and finished == ()
    else:
        assert built == [7]
        assert finished[0].attributes["messaging.kafka.offset"] == 7
        assert finished[0].attributes["messaging.consumer.group.name"] == INTENT_PROJECTION.name


async def test_the_http_edge_leaves_request_tracing_to_its_own_middleware(catalog: Any) -> None:
    """FastAPI 0.165 traces every request itself: a second, single-span trace beside the sentence's."""
    from yiju.common.redis import create_redis, create_watcher_redis
    from yiju.intent.edge import Edge
    from yiju.intent.health import PlatformHealth
    from yiju.intent.http_api import create_app
    from yiju.intent.ingest import Ingest
    from yiju.intent.orders import OrderActions
    from yiju.intent.store import OrderStore
    from yiju.intent.watchers import OrderWatchers

    async def alive() -> bool:
        return True

    settings = Settings(env="local", redis_url="redis://127.0.0.1:1/0", jwt_secret="s" * 32)
    redis = create_redis(settings)  # never connected: the app is only built
    ingest = Ingest(catalog, redis, OrderStore(redis), EventPublisher(RecordingBroker(), "t"), settings)
    health = PlatformHealth(settings, alive)
    watchers = OrderWatchers(create_watcher_redis(settings, max_connections=1), limit=1)
    try:
        app = create_app(
            ingest, OrderActions(ingest.store, ingest.publisher), health, Edge(redis, settings), watchers
        )
        assert app._telemetry["tracing"] is False
    finally:
        await health.close()
        await watchers.close()
        await redis.aclose()
