"""The payment service process."""

from __future__ import annotations

from yiju.common.service import Service
from yiju.payment.payments import Payments
from yiju.payment.wallet import Wallets


def build() -> Service:
    service = Service("payment", grpc_port_setting="payment_port")
    settings = service.settings
    wallets = Wallets(
        service.redis,
        ledger_maxlen=settings.wallet_ledger_maxlen,
        record_ttl_s=settings.payment_record_ttl_s,
    )
    service.consume(Payments(service.catalog, wallets, service.settings.catalog_dir).router())

    async def open_accounts() -> None:
        await wallets.open_accounts(service.catalog)

    service.prepare.append(open_accounts)
    return service
