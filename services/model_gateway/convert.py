"""Converts between the gateway's dataclasses and its protobuf messages."""

from __future__ import annotations

from dataclasses import fields

from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.model_gateway.tools import Action, ParseRequest, ParseResult

_ACTION_FIELDS = [f.name for f in fields(Action)]


def request_from_pb(msg: pb.ParseIntentRequest) -> ParseRequest:
    return ParseRequest(
        text=msg.text,
        locale=msg.locale,
        tenant_id=msg.tenant_id,
        user_id=msg.user_id,
        address_labels=tuple(msg.address_labels),
    )


def request_to_pb(req: ParseRequest) -> pb.ParseIntentRequest:
    return pb.ParseIntentRequest(
        text=req.text,
        locale=req.locale,
        tenant_id=req.tenant_id,
        user_id=req.user_id,
        address_labels=list(req.address_labels),
    )


def result_to_pb(result: ParseResult) -> pb.ParseIntentResponse:
    return pb.ParseIntentResponse(
        actions=[pb.Action(**{name: getattr(a, name) for name in _ACTION_FIELDS}) for a in result.actions],
        confidence=result.confidence,
        backend=result.backend,
        tokens_used=result.tokens_used,
        clarification=result.clarification,
        cached=result.cached,
    )


def result_from_pb(msg: pb.ParseIntentResponse) -> ParseResult:
    return ParseResult(
        actions=[Action(**{name: getattr(a, name) for name in _ACTION_FIELDS}) for a in msg.actions],
        confidence=msg.confidence,
        backend=msg.backend,
        tokens_used=msg.tokens_used,
        clarification=msg.clarification,
        cached=msg.cached,
    )
