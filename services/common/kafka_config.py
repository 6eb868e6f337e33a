"""Connection settings for Kafka clients (security, client ids), from Settings; no broker quirks."""

from __future__ import annotations

import ssl
from typing import Any

from yiju.common.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    return context


def security_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return kwargs


def admin_client_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{settings.kafka_client_prefix}-admin",
        **security_kwargs(settings),
    }
