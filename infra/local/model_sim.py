"""The simulated Qwen server (yiju.model_gateway.sim) as a managed process of `make run`.

With YIJU_MODEL=sim, `make run` starts `python -m yiju.model_gateway.sim` on YIJU_MODEL_SIM_PORT
(default 8000) before the services and points the model gateway at it (chain `openai,rules`,
YIJU_OPENAI_BASE_URL); YIJU_MODEL_SIM_ARGS passes more options, e.g.
`YIJU_MODEL_SIM_ARGS="--p50-ms 800 --p99-ms 4000 --slots 64 --error-rate 0.01"`.
Its log is $YIJU_DATA_DIR/logs/model_sim.log.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from yiju_infra.local.processes import ManagedProcess

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MODEL_NAME = "qwen-sim"


class ModelSimProcess:
    def __init__(self, data_dir: Path, port: int = DEFAULT_PORT, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port
        argv = [sys.executable, "-m", "yiju.model_gateway.sim", "--host", HOST, "--port", str(port)]
        argv += ["--model", MODEL_NAME, *extra_args]
        self.process = ManagedProcess("model_sim", argv, data_dir=data_dir, port=port, host=HOST)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def gateway_env(self) -> dict[str, str]:
        """What the model gateway needs to put the simulated model first in its chain."""
        return {
            "YIJU_GATEWAY_BACKENDS": "openai,rules",
            "YIJU_OPENAI_BASE_URL": self.url,
            "YIJU_OPENAI_MODEL": MODEL_NAME,
        }

    async def start(self, timeout: float = 30.0) -> float:
        """Spawns it and waits until it accepts connections; returns the seconds that took."""
        self.process.start()
        return await self.process.wait_for_port(timeout)

    async def stop(self) -> None:
        await self.process.stop()


def model_sim_from_env(data_dir: Path, environ: Mapping[str, str] | None = None) -> ModelSimProcess | None:
    """A ModelSimProcess when YIJU_MODEL=sim, else None (the default chain: rules only)."""
    env = os.environ if environ is None else environ
    model = env.get("YIJU_MODEL", "").strip().lower()
    if model in ("", "rules", "none"):
        return None
    if model != "sim":
        raise ValueError(f"YIJU_MODEL={model!r}: known values are sim and rules")
    port = int(env.get("YIJU_MODEL_SIM_PORT") or DEFAULT_PORT)
    return ModelSimProcess(data_dir, port, tuple(shlex.split(env.get("YIJU_MODEL_SIM_ARGS", ""))))
