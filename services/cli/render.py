"""Human-readable output: amounts in CNY, coloured statuses, an order summary."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from yiju.sdk import Accepted, Order, OrderStatus

STATUS_STYLES: dict[str, str] = {
    OrderStatus.ACCEPTED: "blue",
    OrderStatus.PLANNED: "blue",
    OrderStatus.AWAITING_CONFIRMATION: "bold yellow",
    OrderStatus.AUTHORIZED: "cyan",
    OrderStatus.FULFILLED: "cyan",
    OrderStatus.COMPLETED: "bold green",
    OrderStatus.NEEDS_CLARIFICATION: "bold yellow",
    OrderStatus.REJECTED: "bold red",
    OrderStatus.PAYMENT_DECLINED: "bold red",
    OrderStatus.FAILED: "bold red",
    OrderStatus.CANCELLED: "magenta",
    OrderStatus.REFUND_PENDING: "yellow",
    OrderStatus.REFUNDED: "magenta",
}

_REASON_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.NEEDS_CLARIFICATION})


def cny(fen: int) -> str:
    """Integer fen as yuan: ``1800`` -> ``¥18.00``, ``-500`` -> ``-¥5.00``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{yuan}.{cents:02d}"


def status_text(status: str) -> Text:
    return Text(status or "UNKNOWN", style=STATUS_STYLES.get(status, "bold"))


def _lines_table(order: Order) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("SKU", style="dim", no_wrap=True)
    table.add_column("Item")
    table.add_column("Vertical")
    table.add_column("Qty", justify="right")
    table.add_column("Unit", justify="right", no_wrap=True)
    table.add_column("Total", justify="right", no_wrap=True)
    for line in order.lines:
        table.add_row(
            line.sku,
            line.name,
            line.vertical,
            str(line.quantity),
            cny(line.unit_price_fen),
            cny(line.line_total_fen),
        )
    return table


def _facts(order: Order) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if order.lines or order.total_fen:
        grid.add_row("Subtotal", cny(order.subtotal_fen))
        grid.add_row("Subsidy", cny(-order.subsidy_fen) if order.subsidy_fen else cny(0))
        grid.add_row("Total", Text(cny(order.total_fen), style="bold"))
    if order.payment is not None:
        payment = order.payment
        grid.add_row(
            "Payment",
            Text.assemble(
                status_text(payment.status),
                f"  authorized {cny(payment.authorized_fen)}, captured {cny(payment.captured_fen)}",
            ),
        )
    for index, item in enumerate(order.fulfilment):
        ref = f"  ({item.provider_ref})" if item.provider_ref else ""
        grid.add_row("Fulfilment" if index == 0 else "", Text.assemble(f"{item.sku}  ", item.status, ref))
    if order.trace_id:
        grid.add_row("Trace", Text(order.trace_id, style="dim"))
    return grid


def order_summary(order: Order) -> RenderableType:
    """The readable form of an order."""
    parts: list[RenderableType] = [
        Text.assemble(("Order ", "bold"), (order.order_id, "bold"), "  ", status_text(order.status))
    ]
    if order.text:
        parts.append(Text.assemble("“", order.text, "”", (f"  ({order.user_id})" if order.user_id else "")))
    if order.reason:
        style = "bold red" if order.status in _REASON_STATUSES else "yellow"
        parts.append(Text.assemble(("Reason: ", "bold"), (order.reason, style)))
    if order.lines:
        parts.append(_lines_table(order))
    parts.append(_facts(order))
    if order.is_waiting:
        parts.append(
            Text(
                f"Waiting for confirmation: yiju confirm {order.order_id}  (or yiju cancel {order.order_id})",
                style="yellow",
            )
        )
    return Group(*parts)


def print_order(console: Console, order: Order) -> None:
    console.print(order_summary(order))


def print_accepted(console: Console, accepted: Accepted) -> None:
    console.print(
        Text.assemble(("Accepted ", "bold"), (accepted.order_id, "bold"), "  ", status_text(accepted.status))
    )
    if accepted.idempotency_key:
        console.print(Text(f"idempotency key {accepted.idempotency_key}", style="dim"))
    console.print(Text(f"Follow it with: yiju watch {accepted.order_id}", style="dim"))


def status_line(order: Order, at: datetime | None = None) -> Text:
    """One line per status change, for ``yiju watch``."""
    stamp = (at or datetime.now()).strftime("%H:%M:%S")
    line = Text.assemble((stamp, "dim"), "  ", status_text(order.status))
    if order.lines and order.status != OrderStatus.ACCEPTED:
        line.append(f"  {len(order.lines)} item(s), total {cny(order.total_fen)}")
    if order.reason:
        line.append(f"  {order.reason}", style="red" if order.is_failure else "yellow")
    return line
