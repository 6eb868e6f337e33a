"""The broker choice, the Kafka server's configuration and the topic namespace, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from yiju.common.settings import Settings
from yiju.common.topics import (
    ALL_TOPICS,
    DEAD_LETTER_TOPICS,
    INTENT_INTAKE,
    PLAN_CREATED,
    Namespace,
    topic_configs,
)
from yiju_infra.local import kafka_dist
from yiju_infra.local.broker import TansuBroker, broker_kind, create_broker
from yiju_infra.local.kafka_server import KafkaServer, default_properties, new_cluster_id, read_properties
from yiju_infra.local.platform import LocalPlatform


def test_broker_kind_is_kafka_with_java_and_tansu_without(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_dist, "java_bin", lambda: "/usr/bin/java")
    assert broker_kind({}) == "kafka"
    assert broker_kind({"YIJU_BROKER": "auto"}) == "kafka"
    assert broker_kind({"YIJU_BROKER": "tansu"}) == "tansu"
    monkeypatch.setattr(kafka_dist, "java_bin", lambda: None)
    assert broker_kind({}) == "tansu"
    assert broker_kind({"YIJU_BROKER": "Kafka"}) == "kafka"  # asked for explicitly: start fails loudly
    with pytest.raises(ValueError, match="YIJU_BROKER"):
        broker_kind({"YIJU_BROKER": "redpanda"})


def test_create_broker_by_kind(tmp_path: Path) -> None:
    kafka = create_broker("kafka", 21092, tmp_path, controller_port=21093)
    assert isinstance(kafka, KafkaServer) and kafka.durable and kafka.bootstrap == "127.0.0.1:21092"
    tansu = create_broker("tansu", 21094, tmp_path, controller_port=0)
    assert isinstance(tansu, TansuBroker) and not tansu.durable  # memory storage by default
    with pytest.raises(ValueError, match="unknown broker"):
        create_broker("zookeeper", 1, tmp_path, controller_port=2)


def test_kafka_properties_are_one_node_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    props = default_properties("127.0.0.1", 21092, 21093, tmp_path / "data")
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:21092,CONTROLLER://127.0.0.1:21093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:21093"
    assert props["auto.create.topics.enable"] == "false"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.min.isr", "min.insync.replicas"):
        assert props[key] == "1"
    overrides = tmp_path / "override.properties"
    overrides.write_text("# a comment\nnum.io.threads=16\nmin.insync.replicas = 2\n\n")
    monkeypatch.setenv("YIJU_KAFKA_SERVER_PROPERTIES", str(overrides))
    server = KafkaServer(21092, 21093, tmp_path)
    merged = server.properties()
    assert merged["num.io.threads"] == "16" and merged["min.insync.replicas"] == "2"
    assert merged["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert read_properties(overrides) == {"num.io.threads": "16", "min.insync.replicas": "2"}


def test_cluster_ids_look_like_kafkas_and_never_read_as_an_option() -> None:
    ids = {new_cluster_id() for _ in range(2000)}  # a random id starts with "-" once in 64
    assert len(ids) == 2000 and all(len(i) == 22 and "=" not in i for i in ids)
    assert not [i for i in ids if i.startswith("-")]


def test_namespace_prefixes_topics_and_groups_and_reads_them_back() -> None:
    plain = Namespace()
    assert plain.topic(PLAN_CREATED) == PLAN_CREATED and plain.group("yiju-payment") == "yiju-payment"
    ns = Namespace("t1.", "t1-")
    assert ns.topic(PLAN_CREATED) == f"t1.{PLAN_CREATED}"
    assert ns.logical(ns.topic(PLAN_CREATED)) == PLAN_CREATED
    assert ns.logical(PLAN_CREATED) == PLAN_CREATED  # a name without the prefix is left as it is
    assert ns.group(INTENT_INTAKE.name) == "t1-yiju-intent-intake"
    assert ns.dead_letter_topic(INTENT_INTAKE) == "t1.yiju.dlq.yiju-intent-intake.v1"
    assert Namespace.of(Settings(kafka_topic_prefix="a.", kafka_group_prefix="b-")) == Namespace("a.", "b-")


def test_dead_letters_are_kept_longer_and_nothing_is_compacted() -> None:
    settings = Settings(kafka_retention_ms=1000, kafka_dlq_retention_ms=5000, kafka_min_insync_replicas=2)
    for topic in ALL_TOPICS:
        configs = topic_configs(settings, topic)
        assert configs["cleanup.policy"] == "delete" and configs["min.insync.replicas"] == "2"
        assert configs["retention.ms"] == ("5000" if topic in DEAD_LETTER_TOPICS else "1000")


def test_a_platform_on_a_shared_broker_gets_its_own_namespace(tmp_path: Path) -> None:
    one = LocalPlatform.on_free_ports(tmp_path / "a", kafka_bootstrap="127.0.0.1:21092")
    two = LocalPlatform.on_free_ports(tmp_path / "b", kafka_bootstrap="127.0.0.1:21092")
    assert one.namespace and two.namespace and one.namespace != two.namespace
    assert one.bootstrap == "127.0.0.1:21092" and one.infra == ("redis",)
    env = one.service_env("payment")
    assert env["YIJU_KAFKA_TOPIC_PREFIX"] == one.namespace == env["YIJU_KAFKA_GROUP_PREFIX"]
    assert one.settings().kafka_topic_prefix == one.namespace
    assert one.topic(PLAN_CREATED) == f"{one.namespace}{PLAN_CREATED}"
    own = LocalPlatform.on_free_ports(tmp_path / "c", broker="kafka")
    assert (
        own.namespace == "" and own.infra == ("broker", "redis") and own.topic(PLAN_CREATED) == PLAN_CREATED
    )


def test_tansu_platforms_turn_the_idempotent_producer_off(tmp_path: Path) -> None:
    assert (
        LocalPlatform.on_free_ports(tmp_path, broker="tansu").service_env("intent")[
            "YIJU_KAFKA_ENABLE_IDEMPOTENCE"
        ]
        == "false"
    )
    assert "YIJU_KAFKA_ENABLE_IDEMPOTENCE" not in LocalPlatform.on_free_ports(
        tmp_path, broker="kafka"
    ).service_env("intent")
