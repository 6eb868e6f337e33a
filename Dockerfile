# syntax=docker/dockerfile:1
# One image for all five yiju services; the command picks the service:
#   python -m yiju.intent | yiju.planning | yiju.payment | yiju.fulfilment | yiju.model_gateway
# and `yiju topics create` (the chart's topic hook). Build arguments: docs/operating.md.
#   docker build -t yiju:0.1.0 .

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------- build
FROM python:${PYTHON_VERSION}-slim AS build

# Optional extras of the project to install too, e.g. "transformers" (in-process Qwen; large).
ARG EXTRAS=""
# A package index mirror, if the build must not reach PyPI directly.
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_INDEX_URL=${PIP_INDEX_URL} \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# protoc for Python: grpcio-tools at the version pinned in the project's dev extra, in a throwaway venv.
COPY pyproject.toml setup.py ./
RUN python -m venv /opt/protoc \
 && python -c "import tomllib; dev = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']; print(next(r for r in dev if r.startswith('grpcio-tools')))" > /tmp/grpcio-tools.txt \
 && /opt/protoc/bin/pip install -r /tmp/grpcio-tools.txt

COPY protos/ protos/
COPY services/ services/
COPY infra/ infra/

# Generate services/gen (yiju.gen.*) from protos/, then install the project (yiju -> services,
# yiju_infra -> infra) into the venv the runtime stage copies.
RUN /opt/protoc/bin/python infra/proto/build.py \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install ".${EXTRAS:+[${EXTRAS}]}" \
 && /opt/venv/bin/python -c "import yiju.gen.events.v1.order_events_pb2, yiju.common.settings"

# ---------------------------------------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim AS runtime

ARG UID=10001
ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="yiju" \
      org.opencontainers.image.description="One sentence in, a paid and fulfilled order out: the yiju services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

RUN groupadd --system --gid "${UID}" yiju \
 && useradd --system --uid "${UID}" --gid "${UID}" --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin yiju

COPY --from=build /opt/venv /opt/venv
COPY catalog/ /app/catalog/

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    YIJU_ENV=prod \
    YIJU_CATALOG_DIR=/app/catalog \
    YIJU_DATA_DIR=/tmp/yiju \
    YIJU_HTTP_HOST=0.0.0.0 \
    YIJU_GRPC_HOST=0.0.0.0 \
    YIJU_METRICS_PORT=9100

WORKDIR /app
# Numeric, so Kubernetes can verify runAsNonRoot.
USER ${UID}:${UID}

# intent HTTP 8080 and gRPC 50051; model-gateway 50052, planning 50053, payment 50054,
# fulfilment 50055; metrics 9100 for every service.
EXPOSE 8080 50051 50052 50053 50054 50055 9100

CMD ["python", "-m", "yiju.intent"]
