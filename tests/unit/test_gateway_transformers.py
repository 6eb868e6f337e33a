"""The transformers backend on a tiny random Qwen checkpoint built in the test (nothing downloaded).

The model's output is nonsense, so the gateway must refuse it (tool schema), retry once, and answer
from the rules backend. Skipped when the optional `transformers` extra is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.base import InvalidAnswer
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.backends.transformers_backend import TransformersBackend
from yiju.model_gateway.config import TransformersSettings
from yiju.model_gateway.gateway import Gateway
from yiju.model_gateway.tools import ParseRequest
from yiju_infra.gpu.tiny_qwen import build_tiny_qwen

SENTENCES = [
    ParseRequest("two bubble teas to my office", address_labels=("office",)),
    ParseRequest("来两杯奶茶送到公司", locale="zh-CN"),
    ParseRequest("taxi home at 7pm"),
]


@pytest.fixture(scope="module", autouse=True)
def offline() -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("qwen3"), architecture="qwen3")


@pytest.fixture(scope="module")
def qwen2_plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("qwen2"), architecture="qwen2", chat_template=False)


def backend_for(path: Path) -> TransformersBackend:
    return TransformersBackend(TransformersSettings(model_dir=str(path), max_new_tokens=16, max_batch=8))


async def test_tiny_qwen3_loads_prompts_with_tools_and_generates_a_left_padded_batch(qwen3_dir: Path) -> None:
    backend = backend_for(qwen3_dir)
    answers = await backend.parse(SENTENCES)
    assert backend.device == "cpu" and type(backend._model).__name__ == "Qwen3ForCausalLM"
    assert backend._tokenizer.padding_side == "left"
    prompt = backend.prompt(SENTENCES[0])
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    assert '"name": "book_hotel"' in prompt and '"sentence": "two bubble teas to my office"' in prompt
    assert len(answers) == 3
    assert all(isinstance(a, InvalidAnswer) and a.tokens_used > 0 for a in answers)  # random weights


async def test_nonsense_output_is_refused_retried_and_answered_by_rules(
    qwen3_dir: Path, catalog: Catalog
) -> None:
    backend = backend_for(qwen3_dir)
    calls = 0
    generate = backend.generate

    def counting(prompts: list[str]) -> list[tuple[str, int]]:
        nonlocal calls
        calls += 1
        return generate(prompts)

    backend.generate = counting  # type: ignore[method-assign]
    results = await Gateway([backend, RulesBackend(catalog)]).parse(SENTENCES)
    assert calls == 2  # the batch, then one retry of the refused answers
    assert [r.backend for r in results] == ["rules", "rules", "rules"]
    assert results[0].actions[0].sku == "tea-brown-sugar-boba"
    assert results[2].actions[0].tool == "book_ride"
    assert all(r.tokens_used > 0 for r in results)  # the model's tokens are still accounted


async def test_a_checkpoint_without_chat_template_gets_a_plain_prompt(qwen2_plain_dir: Path) -> None:
    backend = backend_for(qwen2_plain_dir)
    [answer] = await backend.parse(SENTENCES[:1])
    assert type(backend._model).__name__ == "Qwen2ForCausalLM"
    prompt = backend.prompt(SENTENCES[0])
    assert "<tool_call>" in prompt and prompt.endswith("Assistant: ")
    assert isinstance(answer, InvalidAnswer)


async def test_a_well_formed_qwen_tool_call_from_the_model_is_used(qwen3_dir: Path) -> None:
    backend = backend_for(qwen3_dir)
    await backend.ensure_loaded()
    call = {"name": "order_item", "arguments": {"product_query": "奶茶", "quantity": 2}}
    reply = f"<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>"
    backend.generate = lambda prompts: [(reply, 50) for _ in prompts]  # type: ignore[method-assign]
    [result] = await Gateway([backend]).parse(SENTENCES[1:2])
    assert result.backend == "transformers" and result.tokens_used == 50
    assert (result.actions[0].product_query, result.actions[0].quantity) == ("奶茶", 2)


async def test_gpu_benchmark_runs_on_the_tiny_model(qwen3_dir: Path) -> None:
    from yiju_infra.gpu.bench_transformers import measure

    backend = backend_for(qwen3_dir)
    await backend.ensure_loaded()
    requests = [r for r in SENTENCES for _ in range(3)]
    row = await measure(backend, requests, batch=4, rounds=1)
    assert row["batch_size"] == 4 and row["sentences_per_s"] > 0
    assert row["generated_tokens_per_s"] > 0 and row["valid_answers"] == 0.0


async def test_tool_turns_run_through_the_chat_template_in_lock_step(
    qwen3_dir: Path, catalog: Catalog
) -> None:
    from yiju.model_gateway.toolbox import ReadOnlyTools
    from yiju.model_gateway.turns import TurnBudget

    backend = TransformersBackend(
        TransformersSettings(model_dir=str(qwen3_dir), max_new_tokens=16, max_batch=8),
        toolbox=ReadOnlyTools(catalog),
        budget=TurnBudget(max_turns=2),
    )
    await backend.ensure_loaded()
    search = '<tool_call>\n{"name": "search_catalog", "arguments": {"query": "奶茶"}}\n</tool_call>'
    call = {"name": "order_item", "arguments": {"product_query": "黑糖珍珠奶茶", "quantity": 2}}
    order = f"<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>"
    prompts: list[list[str]] = []

    def scripted(batch: list[str]) -> list[tuple[str, int]]:
        prompts.append(batch)
        return [(search if len(prompts) == 1 else order, 5000) for _ in batch]

    backend.generate = scripted  # type: ignore[method-assign]
    results = await backend.parse(SENTENCES[1:3])
    assert [len(batch) for batch in prompts] == [2, 2]  # both sentences, two turns, one generate() each
    assert all(r.backend == "transformers" and r.tokens_used == 10_000 for r in results)  # type: ignore[union-attr]
    assert [(a.product_query, a.quantity) for r in results for a in r.actions] == [("黑糖珍珠奶茶", 2)] * 2  # type: ignore[union-attr]
    first, second = prompts[0][0], prompts[1][0]
    assert '"name": "search_catalog"' in first
    assert "<|im_start|>tool\n" in second and '"id": "tea-brown-sugar-boba"' in second
    assert '"name": "search_catalog"' not in second.split("</tools>")[0]  # last turn: action tools only
