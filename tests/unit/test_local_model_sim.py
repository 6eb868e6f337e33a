"""`make run` with YIJU_MODEL=sim: the simulated Qwen server as a managed process, and the gateway's env."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from yiju.model_gateway.prompt import chat_messages
from yiju.model_gateway.tools import ParseRequest, openai_tools
from yiju_infra.local.model_sim import model_sim_from_env
from yiju_infra.local.processes import free_port


def test_only_yiju_model_sim_starts_it(tmp_path: Path) -> None:
    assert model_sim_from_env(tmp_path, {}) is None
    assert model_sim_from_env(tmp_path, {"YIJU_MODEL": "rules"}) is None
    with pytest.raises(ValueError, match="known values are sim and rules"):
        model_sim_from_env(tmp_path, {"YIJU_MODEL": "gpt"})


async def test_the_sim_process_serves_and_the_gateway_is_pointed_at_it(tmp_path: Path) -> None:
    port = free_port()
    sim = model_sim_from_env(
        tmp_path,
        {
            "YIJU_MODEL": "sim",
            "YIJU_MODEL_SIM_PORT": str(port),
            "YIJU_MODEL_SIM_ARGS": "--p50-ms 2 --p99-ms 5",
        },
    )
    assert sim is not None
    assert sim.gateway_env() == {
        "YIJU_GATEWAY_BACKENDS": "openai,rules",
        "YIJU_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "YIJU_OPENAI_MODEL": "qwen-sim",
    }
    await sim.start(timeout=60)
    try:
        body = {"messages": chat_messages(ParseRequest("two lattes")), "tools": openai_tools()}
        async with httpx.AsyncClient(timeout=10) as client:
            reply = (await client.post(f"{sim.url}/chat/completions", json=body)).json()
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        [call] = reply["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "order_item" and reply["model"] == "qwen-sim"
        assert 'yiju_sim_requests_total{outcome="answered"} 1' in metrics
    finally:
        await sim.stop()
    assert not sim.process.is_alive
    assert "simulated Qwen on" in (tmp_path / "logs" / "model_sim.log").read_text()
