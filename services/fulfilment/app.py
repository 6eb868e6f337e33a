"""The fulfilment service process."""

from __future__ import annotations

from yiju.common.decisions import DecisionStore
from yiju.common.service import Service
from yiju.fulfilment.dispatcher import Dispatcher
from yiju.fulfilment.providers import simulated_providers
from yiju.fulfilment.refunds import RefundCancellations
from yiju.gen.events.v1 import order_events_pb2 as ev


def build() -> Service:
    service = Service("fulfilment", grpc_port_setting="fulfilment_port")
    decisions = DecisionStore(service.redis, "fulfilment", service.settings.dedup_ttl_s)
    providers = simulated_providers(service.settings)
    router = Dispatcher(providers, decisions).router()
    cancellations = DecisionStore(service.redis, "fulfilment-refund", service.settings.dedup_ttl_s)
    refunds = RefundCancellations(providers, decisions, cancellations)
    router.on(ev.OrderRefundRequested)(refunds.on_refund_requested)
    service.consume(router)
    return service
