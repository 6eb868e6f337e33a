"""A simulated Qwen server: OpenAI-compatible chat completions with tools, answering like a model.

The same wire format vLLM serves (`POST /v1/chat/completions` with `tools`, `tool_calls` in the
reply, `usage`), so the gateway reaches it through its real `openai` backend. It reads each sentence
with the project's rules parser, but answers as a model would:

- latency: lognormal with the given p50 and p99 per request (a turn), from a seeded RNG;
- a concurrency cap with a FIFO queue behind it (vLLM's --max-num-seqs): `slots` requests are
  served at once, the others wait; a client that disconnects leaves the queue or its slot (vLLM
  aborts such a request too);
- `usage`: prompt tokens from the length of the messages and tool definitions, completion tokens
  from the answer;
- multi-turn tool calls: when the request offers the gateway's read-only tools, the first turn
  searches the catalog (`search_catalog`), optionally a second quotes the plan (`quote_plan`), and
  the turn after the tool results answers with the action tool calls (named as the search found);
- faults by configuration: errors (HTTP 500/503), hangs, garbage text, schema-breaking tool calls.

Python API (what benchmarks and tests use)::

    from yiju.model_gateway.sim import SimConfig, SimulatedQwen

    sim = SimulatedQwen(SimConfig(p50_ms=1200, p99_ms=6000, slots=256, seed=7))
    url = await sim.start()          # "http://127.0.0.1:PORT/v1" (port 0 in the config: a free one)
    ...                              # YIJU_OPENAI_BASE_URL=url, YIJU_GATEWAY_BACKENDS=openai,rules
    sim.stats                        # SimStats: requests, in_flight, queued, max_queued, tokens,
                                     #   busy_s (simulated service seconds), faults by kind ...
    sim.gateway_env()                # the YIJU_* variables that point a gateway at it
    await sim.stop()

    async with SimulatedQwen(SimConfig(...)) as sim: ...   # start/stop around a block

SimConfig fields (all optional): host, port, p50_ms (1200), p99_ms (6000), slots (256), seed,
time_scale (1.0: real sleeps; 0.01 sleeps 1 % of the simulated time, which the stats still count
in full), search_rate (1.0: share of sentences that search first when the tools are offered),
quote_rate (0.0: share that also quote before answering), error_rate, error_statuses ((500, 503)),
hang_rate, hang_s (600), garbage_rate, schema_break_rate, slow_rate (0: share of sentences, a stable
draw per order id or else per sentence, whose first turn takes slow_ms, 30000, instead of the lognormal
draw), model ("qwen-sim"), catalog_dir.

Per order: the gateway's Kafka path sends the order id in the X-Yiju-Order-Id header; the server keeps
per order its conversations (first turns: more than one is the sentence sent to the model again),
requests, simulated service seconds, first arrival and last reply (`sim.orders`, GET /orders).

Command line (a separate process, as `make run` starts it with YIJU_MODEL=sim)::

    python -m yiju.model_gateway.sim --p50-ms 1200 --p99-ms 6000 --slots 256 --port 8000 \\
        [--seed 7] [--time-scale 1] [--search-rate 1] [--quote-rate 0] [--error-rate 0] \\
        [--hang-rate 0] [--garbage-rate 0] [--schema-break-rate 0] [--slow-rate 0] [--slow-ms 30000]

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health (200 once serving), GET /orders
(per order, as JSON), GET /metrics (Prometheus text: yiju_sim_in_flight, yiju_sim_queue_depth, yiju_sim_slots,
yiju_sim_requests_total{outcome}, yiju_sim_prompt_tokens_total, yiju_sim_completion_tokens_total,
yiju_sim_busy_seconds_total), GET /stats (the same as JSON).

Modules: config (SimConfig), latency (lognormal from p50/p99), slots (cap + queue + counters),
tokens (token estimates), answers (what the "model" says), faults, server (HTTP), __main__ (CLI).
`yiju.model_gateway.fake_openai` stays for unit tests that script replies one by one.
"""

from __future__ import annotations

from yiju.model_gateway.sim.config import SimConfig
from yiju.model_gateway.sim.server import SimStats, SimulatedQwen

__all__ = ["SimConfig", "SimStats", "SimulatedQwen"]
