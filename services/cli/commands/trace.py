"""``yiju trace ORDER_ID [--json] [--user U]``: the waterfall of one sentence's spans across the services.

The order's trace id comes from the API (``GET /v1/orders/{id}``; a 32-hex-digit trace id may be given
instead of an order id). Spans are read from the local span store, ``$YIJU_DATA_DIR/spans/*.jsonl``, or,
with ``$YIJU_TRACE_QUERY_URL`` (or ``--query-url``) set, from a Jaeger or Tempo query API. ``--json``
prints ``{"trace_id", "spans": [{"trace_id", "span_id", "parent_id", "name", "service", "start",
"duration_ms", "attributes"}]}`` with ``start`` in epoch milliseconds, spans in waterfall order.
"""

from __future__ import annotations

import argparse
import re
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext, CliError
from yiju.cli.credentials import data_dir
from yiju.common.trace_store import (
    TRACE_QUERY_ENV,
    Trace,
    TraceQueryError,
    collector_configured,
    load_trace,
    spans_dir,
)

PRIORITY = 50
BAR_WIDTH = 40
MIN_BAR_WIDTH = 10
SERVICE_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="show an order's trace as a waterfall",
        description=(
            "Show every span of an order's trace (HTTP, Kafka publish and consume, gRPC) across the "
            "services, with timings. Reads $YIJU_DATA_DIR/spans/ unless $YIJU_TRACE_QUERY_URL names a "
            "Jaeger or Tempo query API. --json: start times are epoch milliseconds."
        ),
    )
    parser.add_argument("order_id", help="the order (or a 32-hex-digit trace id)")
    options.add_user(parser)
    parser.add_argument("--json", action="store_true", help="print the trace as JSON")
    parser.add_argument(
        "--query-url",
        metavar="URL",
        help=f"Jaeger/Tempo base URL, or a URL with {{trace_id}} (default ${TRACE_QUERY_ENV})",
    )
    parser.add_argument(
        "--wait",
        type=options.positive_float,
        default=3.0,
        metavar="SECONDS",
        help="keep looking this long while no span has arrived (spans are flushed every 0.5 s; default 3)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    trace_id = args.order_id if _TRACE_ID.match(args.order_id) else _trace_id_of(args, ctx)
    query = args.query_url or ctx.env.get(TRACE_QUERY_ENV, "")
    folder = data_dir(ctx.env)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            trace = load_trace(trace_id, data_dir=folder, query=query)
        except TraceQueryError as exc:
            raise CliError(str(exc), exitcodes.API_ERROR) from exc
        if trace.spans or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if not trace.spans:
        where = query or str(spans_dir(folder))
        hint = ""
        if not query and collector_configured(ctx.env):
            hint = f"; spans go to the OTLP collector: set {TRACE_QUERY_ENV} to its query API"
        raise CliError(f"no spans of trace {trace_id} found in {where}{hint}", exitcodes.API_ERROR)
    if args.json:
        ctx.print_json(trace.to_dict())
        return exitcodes.OK
    # On a terminal the bars shrink to fit; piped output is as wide as the table needs.
    others = _text_width(trace)
    if ctx.out.is_terminal:
        width = max(MIN_BAR_WIDTH, min(BAR_WIDTH, ctx.out.width - others))
        names = max(12, ctx.out.width - width - (others - _name_width(trace)))
        ctx.out.print(render_waterfall(trace, width, name_width=names))
    else:
        wide = Console(file=ctx.out.file, width=max(ctx.out.width, others + BAR_WIDTH), highlight=False)
        wide.print(render_waterfall(trace))
    return exitcodes.OK


def _text_width(trace: Trace) -> int:
    """Columns the table needs besides the bars: names, services, start, duration and separators."""
    services = max((len(s) for s in trace.services), default=7)
    return _name_width(trace) + services + 8 + 11 + 12


def _name_width(trace: Trace) -> int:
    return max((2 * r.depth + len(r.span.name) for r in trace.rows()), default=4)


def _trace_id_of(args: argparse.Namespace, ctx: CliContext) -> str:
    with ctx.client(ctx.user(args.user)) as client:
        order = client.get_order(args.order_id)
    if not order.trace_id:
        raise CliError(f"order {args.order_id} has no trace id", exitcodes.API_ERROR)
    return order.trace_id


def bar(offset_ms: float, duration_ms: float, total_ms: float, width: int = BAR_WIDTH) -> str:
    """A span's place on the time axis, ``width`` characters wide (at least one block)."""
    if total_ms <= 0:
        return "█".ljust(width)
    left = min(int(offset_ms / total_ms * width), width - 1)
    length = max(1, min(round(duration_ms / total_ms * width), width - left))
    return (" " * left + "█" * length).ljust(width)


def render_waterfall(trace: Trace, width: int = BAR_WIDTH, *, name_width: int | None = None) -> Table:
    """The trace as a table: indented span names, service, start offset, duration and a bar."""
    styles = {name: SERVICE_STYLES[i % len(SERVICE_STYLES)] for i, name in enumerate(trace.services)}
    total = trace.duration_ms
    table = Table(
        title=Text.assemble(
            ("Trace ", "bold"),
            (trace.trace_id, "bold"),
            f"  {len(trace.spans)} spans, {len(trace.services)} services, {total:.1f} ms ({trace.source})",
        ),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    table.add_column("Span", no_wrap=True, overflow="ellipsis", max_width=name_width)
    table.add_column("Service", no_wrap=True, min_width=max(map(len, trace.services), default=7))
    table.add_column("Start", justify="right", no_wrap=True, min_width=7)
    table.add_column("Duration", justify="right", no_wrap=True, min_width=10)
    table.add_column(f"0 … {total:.1f} ms", no_wrap=True, min_width=width)
    for row in trace.rows():
        span = row.span
        style = styles.get(span.service, "")
        name = Text("  " * row.depth + span.name, style="red" if span.status == "ERROR" else "")
        table.add_row(
            name,
            Text(span.service, style=style),
            f"+{row.offset_ms:.1f}",
            f"{span.duration_ms:.2f} ms",
            Text(bar(row.offset_ms, span.duration_ms, total, width), style=style),
        )
    return table
