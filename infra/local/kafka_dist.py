"""Apache Kafka assembled from Maven Central: the broker's jars, fetched once with Maven and cached.

There is no Kafka tarball to download here, but every jar of the broker is on Maven Central
(`org.apache.kafka:kafka_2.13` and its runtime dependencies, plus the SLF4J binding for Log4j 2 that the
tarball ships). `ensure_kafka()` writes a one-dependency POM, runs
`mvn dependency:copy-dependencies` into `$XDG_CACHE_HOME/yiju/kafka/<version>/libs` (default
`~/.cache/yiju/kafka/4.1.0`) and marks the directory complete; later calls return at once.

`python -m yiju_infra.local.kafka_dist` fetches it ahead of time (`make kafka`).

Settings: `YIJU_KAFKA_VERSION` (default 4.1.0), `YIJU_KAFKA_HOME` (use an existing Kafka
installation's `libs/` instead of fetching), `YIJU_MVN` (the Maven command, default `mvn`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

VERSION_ENV = "YIJU_KAFKA_VERSION"
HOME_ENV = "YIJU_KAFKA_HOME"
MVN_ENV = "YIJU_MVN"
DEFAULT_VERSION = "4.1.0"
# The SLF4J 1.7 -> Log4j 2 binding the Kafka distribution ships beside log4j-core (without it the
# broker logs nothing). Its version follows the log4j-core that kafka_2.13 depends on.
LOG4J_VERSION = "2.24.3"
_COMPLETE = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>yiju.local</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaUnavailableError(RuntimeError):
    """Kafka cannot be run here (no JDK, no Maven, or Maven could not fetch it); says what is missing."""


def kafka_version() -> str:
    return os.environ.get(VERSION_ENV, "").strip() or DEFAULT_VERSION


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yiju" / "kafka"


def java_bin() -> str | None:
    """The `java` of $JAVA_HOME, else the one on PATH; None if there is no JDK/JRE."""
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def libs_dir(version: str | None = None) -> Path:
    """Where the broker's jars are (or will be) for `version`."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        return Path(home).expanduser() / "libs"
    return cache_root() / (version or kafka_version()) / "libs"


def is_installed(version: str | None = None) -> bool:
    libs = libs_dir(version)
    if os.environ.get(HOME_ENV, "").strip():
        return any(libs.glob("kafka_2.13-*.jar"))
    return (libs / _COMPLETE).is_file()


def ensure_kafka(version: str | None = None, *, quiet: bool = True) -> Path:
    """The directory holding the broker's jars for `version`, fetching them with Maven on first use."""
    version = version or kafka_version()
    libs = libs_dir(version)
    if is_installed(version):
        return libs
    if os.environ.get(HOME_ENV, "").strip():
        raise KafkaUnavailableError(f"{HOME_ENV}={os.environ[HOME_ENV]!r} has no libs/kafka_2.13-*.jar")
    if java_bin() is None:
        raise KafkaUnavailableError("no Java runtime (java on PATH or $JAVA_HOME): Kafka needs a JDK 17+")
    mvn = os.environ.get(MVN_ENV, "").strip() or shutil.which("mvn")
    if not mvn:
        raise KafkaUnavailableError(f"no Maven (mvn on PATH or ${MVN_ENV}) to fetch Kafka {version}")
    began = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f"kafka-{version}-", dir=_ensure_dir(libs.parent.parent)))
    try:
        (staging / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
        argv = [
            mvn,
            "-B",
            *(["-q"] if quiet else []),
            "-f",
            str(staging / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging / 'libs'}",
            "-DincludeScope=runtime",
        ]
        done = subprocess.run(argv, capture_output=quiet, text=True, check=False)
        if done.returncode != 0:
            output = ((done.stdout or "") + (done.stderr or ""))[-3000:] if quiet else ""
            raise KafkaUnavailableError(
                f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} (exit {done.returncode}):\n"
                f"{output}"
            )
        (staging / "libs" / _COMPLETE).write_text(
            f"kafka {version} fetched in {time.monotonic() - began:.1f}s\n"
        )
        if libs.parent.exists():
            shutil.rmtree(libs.parent)
        staging.rename(libs.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched Kafka %s from Maven Central into %s in %.1fs", version, libs, time.monotonic() - began)
    return libs


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> int:
    began = time.monotonic()
    if java_bin() is None and os.environ.get("YIJU_BROKER", "").strip().lower() != "kafka":
        print("kafka: no Java runtime here; the platform will use the tansu fallback broker (YIJU_BROKER)")
        return 0
    try:
        libs = ensure_kafka(quiet=True)
    except KafkaUnavailableError as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 1
    jars = len(list(libs.glob("*.jar")))
    print(f"Kafka {kafka_version()}: {jars} jars in {libs} ({time.monotonic() - began:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
