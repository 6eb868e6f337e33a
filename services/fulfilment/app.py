"""The fulfilment service process."""

from __future__ import annotations

from yiju.common.decisions import DecisionStore
from yiju.common.service import Service
from yiju.fulfilment.dispatcher import Dispatcher
from yiju.fulfilment.providers import simulated_providers


def build() -> Service:
    service = Service("fulfilment", grpc_port_setting="fulfilment_port")
    decisions = DecisionStore(service.redis, "fulfilment", service.settings.dedup_ttl_s)
    service.consume(Dispatcher(simulated_providers(service.settings), decisions).router())
    return service
