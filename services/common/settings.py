"""All runtime configuration, from environment variables prefixed YIJU_ (plus the standard OTEL_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIJU_", extra="ignore")

    # "local" only where the local platform (`make run`, the test harness) sets it; anything else is a
    # deployed environment ("production", "dev", ...). Nothing is loosened by default.
    env: str = "production"
    # The console's demo-token endpoint (GET /v1/console/session mints a bearer token for any demo user):
    # it exists only with env "local" and this flag, which `make run` sets (YIJU_DEMO_TOKENS=1).
    demo_tokens: bool = False
    data_dir: Path = REPO_ROOT / ".var"
    catalog_dir: Path = REPO_ROOT / "catalog"
    log_level: str = "INFO"
    # Young-generation threshold of Python's cyclic GC in every service (CPython's default: 700). Each
    # young collection is a pause inside some hop's latency: 10,000 cut p50 and p99 by about a third
    # at 100-200/s. Startup objects (catalog, modules, descriptors) are frozen out of collections.
    gc_gen0_threshold: int = 10_000
    synthetic_users: int = 0  # load-test users load-u-000001.. added to the catalog (catalog.py)

    # Kafka (any Kafka-protocol cluster; every setting is configurable for production clusters)
    kafka_bootstrap: str = "127.0.0.1:9092"
    # The client library under faststream (yiju.common.kafka_client): "aiokafka" (the design's default)
    # or "confluent" (confluent-kafka, librdkafka). Every consumer and publisher follows it.
    kafka_client: Literal["aiokafka", "confluent"] = "aiokafka"
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    kafka_partitions: int = 6
    kafka_replication_factor: int = 1
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_max_poll_records: int = 500
    # How long a batch poll waits in the client for records when none are buffered (aiokafka's getmany
    # returns as soon as any arrive; confluent's consume waits for max_records or this long).
    kafka_batch_timeout_ms: int = 20
    # A consumer's fetch is answered once kafka_fetch_min_bytes are ready or kafka_fetch_max_wait_ms
    # has passed, whichever comes first: the consumer's linger. Every batch costs a fixed amount (a fetch,
    # a de-duplication read and write in Redis, a commit, the framework's layers), so at a few hundred
    # sentences a second most of a sentence's CPU was per-batch overhead on batches of one or two records.
    # Waiting up to 50 ms a hop for a fuller batch cut the platform's CPU a sentence from 10.7 to 7.2 ms at
    # 150/s, p99 326 ms (docs/performance.md §10). Under heavy load the bytes arrive first
    # and the wait costs nothing; lower the wait for latency, raise it for CPU. An idle consumer asks this
    # often. tansu answers a fetch only when its wait is over: the local platform sets 20 ms for it.
    kafka_fetch_max_wait_ms: int = 50
    kafka_fetch_min_bytes: int = 1024 * 1024
    kafka_linger_ms: int = 2
    # A batch consumer commits what it has handled at most this often (0: after every batch). Each commit
    # is a request the group coordinator writes to __consumer_offsets; a crash or rebalance redelivers at
    # most this long's handled records, which the idempotent handlers absorb (yiju.common.offset_commits).
    kafka_commit_interval_ms: int = 200
    kafka_acks: str = "all"
    kafka_client_prefix: str = "yiju"
    # Idempotent producers: the broker drops a batch that a producer retry sends twice, so a broker or
    # network blip never writes an event twice into the log (consumers still de-duplicate by event id,
    # which covers a handler that runs twice). Off only for brokers without InitProducerId (tansu).
    kafka_enable_idempotence: bool = True
    # Prefixes of every topic and consumer-group name: several platforms (tenants, test platforms) can
    # share one Kafka cluster without seeing each other's events. Empty in a platform of its own.
    kafka_topic_prefix: str = ""
    kafka_group_prefix: str = ""
    # Per-topic-class settings applied when the platform creates its topics (yiju topics create).
    kafka_retention_ms: int = 7 * 24 * 3600 * 1000  # order events: a week (replay, reconcile, audit)
    kafka_dlq_retention_ms: int = 30 * 24 * 3600 * 1000  # dead letters: a month for an operator to act
    kafka_min_insync_replicas: int = 1  # production: 2 with replication factor 3

    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Listening ports of this process (each service reads its own)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    gateway_port: int = 50052
    planning_port: int = 50053
    payment_port: int = 50054
    fulfilment_port: int = 50055
    metrics_port: int = 0  # 0: the service's default metrics port (see services.common.service)

    # Where the other services are (host:port); empty means 127.0.0.1 and the port above
    gateway_target: str = ""
    planning_target: str = ""
    payment_target: str = ""
    fulfilment_target: str = ""

    # Internal gRPC TLS (optional; mutual TLS when a CA is given to servers)
    grpc_tls_cert: str = ""
    grpc_tls_key: str = ""
    grpc_tls_ca: str = ""

    # Edge authentication: HS256 with a shared secret (local run), or RS256 verified against a JWKS URL
    jwt_secret: str = ""
    jwks_url: str = ""
    jwt_issuer: str = "yiju"
    jwt_audience: str = "yiju-api"
    token_ttl_s: int = 7 * 24 * 3600
    api_keys_file: str = ""  # JSON {"keys": {"<sha256 of key>": "<user id>"}}
    # Kafka intake assertions (yiju.common.intake_assertion): Ed25519, bound to one intent. Intake holds
    # only public keys (PEM, several for rotation); the private key is the publisher's (yiju.sdk) and
    # never a service's. Replays of dead-lettered intake records carry a replay assertion signed by the
    # dead-letter replay tool's own key pair. Empty private-key paths: $YIJU_DATA_DIR/secrets/ (local run).
    intake_public_keys_file: str = ""
    intake_signing_key_file: str = ""
    intake_assertion_issuer: str = "yiju-intake-publisher"
    intake_assertion_max_ttl_s: int = 15 * 60
    replay_public_keys_file: str = ""
    replay_signing_key_file: str = ""
    edge_rate_per_user_per_s: float = 20.0
    edge_rate_burst: int = 40
    max_body_bytes: int = 32 * 1024  # 2,000 characters of JSON-escaped CJK/emoji text fit
    # How long an intent submission waits for the broker to take its event before answering 503 (gRPC
    # UNAVAILABLE): a broker outage answers clients instead of holding their requests. A retry with the
    # same idempotency key continues the same order (its event id does not change), so it is safe.
    edge_publish_timeout_s: float = 10.0

    # Handler semantics
    handler_max_attempts: int = 4
    handler_backoff_ms: int = 50
    dedup_ttl_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600

    # Deadline of planning's calls to the model gateway (the gateway's own settings, backends
    # included, live in services/model_gateway/config.py)
    gateway_timeout_s: float = 5.0

    # Fulfilment simulators
    fulfilment_latency_ms: int = 2
    fulfilment_failure_rate: float = 0.0
    fulfilment_fail_skus: str = ""  # comma-separated SKUs that always fail (failure injection)
    # Deadline of every provider call (dispatch, cancel): a dispatch that has not answered by then counts
    # as failed, and whatever the provider may have taken for that line is cancelled.
    fulfilment_provider_timeout_s: float = 10.0
    # How long planning keeps each order's subsidy grant (subsidy:{campaign}:order:<order>: the amount,
    # or the 'released' tombstone). Above dedup_ttl_s and kafka_retention_ms, so a redelivery still
    # finds it; `yiju reconcile` skips only the per-order check of a grant that expired by this TTL.
    subsidy_grant_ttl_s: int = 30 * 24 * 3600
    # The campaign's subsidy ledger stream (subsidy:{campaign}:ledger, one entry per grant or release) is
    # trimmed to about this many entries (XADD MAXLEN ~; 0 keeps everything); each entry carries a
    # sequence number and the budget left and the user's use count after it, so `yiju reconcile` checks
    # what is kept exactly.
    subsidy_ledger_maxlen: int = 100_000

    # Confirmation
    confirmation_ttl_s: int = 15 * 60

    # Refunds: the ordering user may refund a COMPLETED order this long after it completed (an operator,
    # a token with the "operator" role, at any time while its payment record is kept).
    refund_window_s: int = 24 * 3600
    # Bounded money state. Wallet ledger streams are trimmed to about this many entries per user (XADD
    # MAXLEN ~; 0 keeps everything); each entry carries the wallet's totals after it, so `yiju reconcile`
    # checks what is kept exactly. A payment record expires this long after it settles (captured, voided,
    # declined, refunded; never while money is held): keep it above kafka_retention_ms and dedup_ttl_s,
    # since it is what makes a redelivered PlanCreated authorize nothing twice.
    wallet_ledger_maxlen: int = 10_000
    payment_record_ttl_s: int = 30 * 24 * 3600

    def target(self, service: str) -> str:
        explicit = getattr(self, f"{service}_target")
        return explicit or f"127.0.0.1:{getattr(self, f'{service}_port')}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
