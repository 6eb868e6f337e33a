"""The planning service process."""

from __future__ import annotations

from yiju.common.decisions import DecisionStore
from yiju.common.grpc import channel
from yiju.common.service import Service
from yiju.gen.gateway.v1 import gateway_pb2_grpc as gw_grpc
from yiju.planning.planner import Planner
from yiju.planning.subsidy import Subsidies


def build() -> Service:
    service = Service("planning", grpc_port_setting="planning_port")
    settings = service.settings
    gateway_channel = channel(settings, settings.target("gateway"))
    subsidies = Subsidies(service.redis, service.catalog.campaign)
    planner = Planner(
        service.catalog,
        gw_grpc.ModelGatewayServiceStub(gateway_channel),
        subsidies,
        DecisionStore(service.redis, "planning", settings.dedup_ttl_s),
        settings,
    )
    service.consume(planner.router())
    service.prepare.append(subsidies.initialise)
    service.on_stop.append(gateway_channel.close)
    return service
