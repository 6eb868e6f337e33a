"""Planning's own settings (YIJU_PLANNING_*): how it reaches the model, and how long it waits."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class PlanningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIJU_PLANNING_", extra="ignore")

    # kafka: ParseRequested/ParseCompleted through the gateway's worker; planning commits at once and
    # never holds a partition while the model thinks (what a deployment with a model uses).
    # grpc: an inline, batched ParseIntent under YIJU_GATEWAY_TIMEOUT_S (the rules backend answers in
    # 0.2 ms; two more hops would only cost it latency and CPU).
    model_path: Literal["kafka", "grpc"] = "grpc"
    # How long an order waits for the model on the kafka path, from the first IntentAccepted planning
    # handled (kept across redeliveries and restarts); fits an orbit-length link (90 s) twice.
    model_deadline_s: float = 180.0
    # What ends an order whose model did not answer in time, or whose call the gateway lost with a replica
    # that died mid-call: "rules" (the rules backend, in process) or "reject" (REJECTED, code
    # model_timeout / model_call_lost, with the reason). Neither holds money or a subsidy.
    model_deadline_fallback: Literal["rules", "reject"] = "reject"
    deadline_scan_interval_s: float = 1.0  # how often expired waits are looked for
    deadline_scan_batch: int = 200
