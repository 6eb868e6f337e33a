"""The model-gateway service process."""

from __future__ import annotations

from yiju.common.service import Service
from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.backends.registry import build_backends
from yiju.model_gateway.gateway import Gateway
from yiju.model_gateway.servicer import ModelGatewayServicer


def build() -> Service:
    service = Service("model_gateway", grpc_port_setting="gateway_port", uses_kafka=False)
    gateway = Gateway(build_backends(service.settings, service.catalog))
    pb_grpc.add_ModelGatewayServiceServicer_to_server(ModelGatewayServicer(gateway), service.grpc_server)
    service.grpc_services.append(pb.DESCRIPTOR.services_by_name["ModelGatewayService"].full_name)
    return service
