"""Apache Kafka 4.x in KRaft mode as a local process: one node, broker and controller in one JVM.

Everything lives in `DATA_DIR/kafka`: `server.properties` and `log4j2.yaml` (rewritten on every start
from the settings below), and the log itself in `DATA_DIR/kafka/data` (formatted with a new cluster id
on the first start; kept afterwards, so events survive a stop, a crash or a kill -9).

The defaults are one node's: replication factor 1 and min.insync.replicas 1 for every topic,
including Kafka's internal ones, and small thread pools for a laptop. Production raises the same
settings (`charts/yiju`, Strimzi). Any broker setting can be overridden with a properties file named by
`YIJU_KAFKA_SERVER_PROPERTIES` (its lines win over the defaults), the JVM's heap with
`YIJU_KAFKA_HEAP_OPTS` (default `-Xms256m -Xmx1g`).
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.kafka_dist import KafkaUnavailableError, ensure_kafka, java_bin, kafka_version
from yiju_infra.local.processes import ManagedProcess

PROPERTIES_ENV = "YIJU_KAFKA_SERVER_PROPERTIES"
HEAP_ENV = "YIJU_KAFKA_HEAP_OPTS"
DEFAULT_HEAP = "-Xms256m -Xmx1g"
NODE_ID = 1

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
      - name: org.apache.kafka.storage.internals.log.LogLoader
        level: INFO
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded, never starting with "-" (as
    Kafka's Uuid.randomUuid: a leading dash reads as an option on a command line)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def default_properties(host: str, port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    """The broker settings of a one-node local cluster (every one overridable, see the module doc)."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        # Topics are created by the platform (yiju topics create / ensure_topics), never by a typo.
        "auto.create.topics.enable": "false",
        # One node: every replication factor and min ISR is 1 (production raises these).
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fewer internal partitions than a cluster's 50: each is a log (files, a fetch) on one laptop.
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.num.partitions": "6",
        "group.initial.rebalance.delay.ms": "0",
        # The local services use 3 s sessions (a killed consumer's partitions move on quickly); Kafka's
        # floor is 6 s by default.
        "group.min.session.timeout.ms": "1000",
        # Small thread pools for a 2-core machine.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "2",
        "background.threads": "4",
        # Segments small enough that per-topic retention can delete old ones on a local run.
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "log.retention.hours": "168",
    }


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines of a Java properties file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


class KafkaServer(BrokerServer):
    """An Apache Kafka broker+controller JVM on `host:port` (controller on `controller_port`)."""

    kind = "kafka"
    durable = True

    def __init__(self, port: int, controller_port: int, data_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.dir = Path(data_dir) / "kafka"
        self.log_dir = self.dir / "data"
        self.controller_port = controller_port
        self.version = kafka_version()
        process = ManagedProcess("broker", [], data_dir=data_dir, env=dict(os.environ), port=port, host=host)
        super().__init__(process, host, port)
        self.cluster_id: str | None = None

    @property
    def description(self) -> str:
        return f"Apache Kafka {self.version}, KRaft, log in {self.log_dir}"

    @property
    def properties_path(self) -> Path:
        return self.dir / "server.properties"

    def properties(self) -> dict[str, str]:
        props = default_properties(self.host, self.port, self.controller_port, self.log_dir)
        overrides = os.environ.get(PROPERTIES_ENV, "").strip()
        if overrides:
            props.update(read_properties(Path(overrides).expanduser()))
        return props

    def prepare(self) -> None:
        """Fetches Kafka if needed, writes the configuration, formats the log directory on first use."""
        libs = ensure_kafka(self.version)
        java = java_bin()
        if java is None:
            raise KafkaUnavailableError("no Java runtime (java on PATH or $JAVA_HOME): Kafka needs a JDK 17+")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.dir / "log4j2.yaml").write_text(_LOG4J2)
        classpath = f"{libs}/*"
        meta = self.log_dir / "meta.properties"
        if not meta.is_file():
            self._format(java, classpath)
        self.cluster_id = read_properties(meta).get("cluster.id")
        heap = (os.environ.get(HEAP_ENV, "").strip() or DEFAULT_HEAP).split()
        self.process.argv = [
            java,
            *heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_path),
        ]

    def _format(self, java: str, classpath: str) -> None:
        argv = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={new_cluster_id()}",
            "--config",
            str(self.properties_path),
            "--ignore-formatted",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaUnavailableError(
                f"formatting the Kafka log in {self.log_dir} failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr)[-2000:]}"
            )

    def spawn(self) -> None:
        if not self.process.argv:
            self.prepare()
        super().spawn()
