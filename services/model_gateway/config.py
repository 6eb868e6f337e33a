"""The gateway's own settings, read from the environment with defaults.

Three groups, each with its own prefix: YIJU_GATEWAY_* (the gateway's mechanics), YIJU_OPENAI_* (the
OpenAI-compatible backend) and YIJU_TRANSFORMERS_* (the in-process Qwen backend). A few names are
also fields of the shared `Settings` (YIJU_GATEWAY_BACKENDS, YIJU_GATEWAY_TIMEOUT_S, YIJU_OPENAI_*,
YIJU_TRANSFORMERS_MODEL_DIR): both read the same variables, so they always agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from yiju.model_gateway.turns import TurnBudget


class OpenAISettings(BaseSettings):
    """Any OpenAI-compatible chat-completions server: vLLM, SGLang, Ollama, Model Studio, ..."""

    model_config = SettingsConfigDict(env_prefix="YIJU_OPENAI_", extra="ignore")

    base_url: str = ""  # e.g. http://vllm:8000/v1 (the part before /chat/completions)
    api_key: str = ""
    model: str = "Qwen/Qwen3-8B"
    mode: Literal["tools", "json_schema"] = "tools"
    tool_choice: Literal["auto", "required"] = "auto"
    max_tokens: int = 512
    temperature: float = 0.0
    max_connections: int = 64
    connect_timeout_s: float = 2.0
    # Merged into every request body, e.g. {"chat_template_kwargs": {"enable_thinking": false}}
    # to turn off Qwen3's thinking on vLLM/SGLang.
    extra_body: dict[str, Any] = Field(default_factory=dict)


class TransformersSettings(BaseSettings):
    """A local Qwen2/Qwen3 checkpoint run in-process with Hugging Face transformers."""

    model_config = SettingsConfigDict(env_prefix="YIJU_TRANSFORMERS_", extra="ignore")

    model_dir: str = ""
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda | cuda:1 ...
    dtype: str = "auto"  # auto (bfloat16 on cuda, float32 on cpu) | float32 | bfloat16 | float16
    max_new_tokens: int = 256
    max_batch: int = 32  # sequences per generate() call


class GatewaySettings(BaseSettings):
    """Micro-batching, cache, single-flight, rate limits, timeouts and circuit breakers."""

    model_config = SettingsConfigDict(env_prefix="YIJU_GATEWAY_", extra="ignore")

    backends: str = "rules"  # priority order, comma separated: openai,transformers,rules
    timeout_s: float = 5.0  # per backend call, unless timeouts names the backend
    timeouts: dict[str, float] = Field(default_factory=dict)  # {"openai": 3, "transformers": 20}
    invalid_retries: int = 1  # invalid model output is retried this often before falling back
    # Tool-calling turns (yiju.model_gateway.turns): model calls per sentence, the answer included
    # (1: no read-only tools, answer at once), and prompt + completion tokens per sentence.
    max_turns: int = Field(default=4, ge=1, le=8)
    max_sentence_tokens: int = Field(default=8000, ge=1)

    max_batch: int = 32
    max_wait_ms: float = 5.0
    # Whether the Kafka worker's sentences go through the micro-batcher. auto: only when the chain
    # has a backend that batches in-process (transformers: one generate() per batch); a model server
    # (openai: vLLM, SGLang, the simulator) batches continuously itself, and a micro-batch would make
    # each sentence wait for the slowest of its batch while holding an in-flight slot.
    worker_micro_batch: Literal["auto", "on", "off"] = "auto"

    # Identical sentences in flight at once share one model conversation (false: each its own call,
    # e.g. to benchmark a model with every sentence reaching it).
    single_flight: bool = True
    cache_ttl_s: int = 600  # 0: no cache
    cache_fallback_ttl_s: int = 30  # answers of a fallback backend are kept this long only

    breaker_failures: int = 5  # consecutive failures or timeouts that open a backend's breaker
    breaker_cooldown_s: float = 10.0  # open this long, then one probe call (half-open)

    rate_limit_store: Literal["redis", "local"] = "redis"
    tenant_requests_per_s: float = 0.0  # 0: no request limit
    tenant_request_burst: int = 0  # bucket size; 0: one second's worth (at least 1)
    tenant_tokens_per_min: float = 0.0  # model tokens; 0: no token limit

    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    transformers: TransformersSettings = Field(default_factory=TransformersSettings)

    @property
    def backend_names(self) -> list[str]:
        return [name.strip() for name in self.backends.split(",") if name.strip()]

    @property
    def turn_budget(self) -> TurnBudget:
        return TurnBudget(max_turns=self.max_turns, max_tokens=self.max_sentence_tokens)

    def timeout_for(self, backend: str) -> float:
        return float(self.timeouts.get(backend, self.timeout_s))
