"""The planning service process."""

from __future__ import annotations

from yiju.common.decisions import DecisionStore
from yiju.common.grpc import channel
from yiju.common.service import Service
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2_grpc as gw_grpc
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.planning.config import PlanningSettings
from yiju.planning.model_path import DeadlineWatcher, ModelPath
from yiju.planning.model_waits import ModelWaits
from yiju.planning.planner import Planner
from yiju.planning.refunds import SubsidyRefunds
from yiju.planning.subsidy import Subsidies


def build() -> Service:
    service = Service("planning", grpc_port_setting="planning_port")
    settings = service.settings
    gateway_channel = channel(settings, settings.target("gateway"))
    subsidies = Subsidies(
        service.redis,
        service.catalog.campaign,
        settings.subsidy_grant_ttl_s,
        ledger_maxlen=settings.subsidy_ledger_maxlen,
    )
    planner = Planner(
        service.catalog,
        gw_grpc.ModelGatewayServiceStub(gateway_channel),
        subsidies,
        DecisionStore(service.redis, "planning", settings.dedup_ttl_s),
        settings,
    )
    install_model_path(service, planner, PlanningSettings())
    router = planner.router()
    router.on(ev.PaymentRefunded)(SubsidyRefunds(subsidies).on_payment_refunded)
    service.consume(router)
    service.prepare.append(subsidies.initialise)
    service.on_stop.append(gateway_channel.close)
    return service


def install_model_path(service: Service, planner: Planner, config: PlanningSettings) -> ModelPath:
    """The Kafka model path: ParseCompleted is always handled (orders asked before a switch to grpc
    still end), the deadline watcher always runs; ParseRequested is sent when model_path is kafka."""
    assert service.publisher is not None
    rules = RulesBackend(service.catalog) if config.model_deadline_fallback == "rules" else None
    waits = ModelWaits(service.redis, service.settings.dedup_ttl_s)
    path = ModelPath(planner, waits, config, rules)
    planner.model_waits = path
    planner.model_path = path if config.model_path == "kafka" else None
    watcher = DeadlineWatcher(path, service.publisher, config)
    service.on_start.append(watcher.start)
    service.on_stop.append(watcher.stop)
    return path
