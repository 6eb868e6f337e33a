"""In-process Qwen backend: a local Qwen2/Qwen3 checkpoint run with Hugging Face transformers.

Needs the optional extra (`pip install -e '.[transformers]'`); torch and transformers are imported
only when this backend is built, so the default install stays light. The prompt is the tokenizer's
chat template with the tool definitions (`apply_chat_template(messages, tools=..., ...)`), or a
plain prompt when the checkpoint has no template. A micro-batch is generated in one left-padded
`generate()` call (greedy), on CUDA when available, in a worker thread so the event loop keeps
serving. Qwen's `<tool_call>` output is read by the same parser as the openai backend's.

Tool-calling turns (yiju.model_gateway.turns) run in lock-step: every sentence of the batch takes
its first turn in one generate() call; those whose model called read-only tools get the results
appended to their conversation and take the next turn together, and so on, within the turn and
token budget. Each sentence's turn is a span with its token counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from yiju.model_gateway.backends.base import BackendAnswer, InvalidAnswer
from yiju.model_gateway.config import TransformersSettings
from yiju.model_gateway.prompt import SYSTEM_PROMPT
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest
from yiju.model_gateway.turns import Conversation, TurnBudget, Usage, finished_turn_span

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def plain_prompt(conversation: Conversation) -> str:
    """For checkpoints without a chat template: the same rules and tools, as one text prompt."""
    tools = "\n".join(json.dumps(t, ensure_ascii=False) for t in conversation.tools())
    turns = []
    for message in conversation.messages[1:]:
        role = {"user": "User", "assistant": "Assistant", "tool": f"Tool {message.get('name', '')}"}
        turns.append(f"{role.get(message['role'], message['role'])}: {message.get('content') or ''}")
    history = "\n".join(turns)
    return (
        f"{SYSTEM_PROMPT}\n\nTools:\n{tools}\n\nAnswer with one or more "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call> blocks.\n\n'
        f"{history}\nAssistant: "
    )


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completions messages as Hugging Face chat templates take them: tool-call arguments as
    objects (Qwen's templates render them with tojson)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = {
                **message,
                "tool_calls": [
                    {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                    for c in calls
                ],
            }
        out.append(message)
    return out


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        settings: TransformersSettings,
        *,
        toolbox: ReadOnlyTools | None = None,
        budget: TurnBudget | None = None,
    ) -> None:
        if not settings.model_dir:
            raise ValueError(
                "the transformers backend needs YIJU_TRANSFORMERS_MODEL_DIR (a local checkpoint)"
            )
        self.settings = settings
        self.toolbox = toolbox
        self.budget = budget or TurnBudget()
        self.model_dir = Path(settings.model_dir)
        self.device = ""
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._load_lock = asyncio.Lock()
        self._generate_lock = threading.Lock()  # one generate() at a time on the device

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Loads tokenizer and weights (blocking; `ensure_loaded` runs it in a thread)."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the transformers backend needs: pip install -e '.[transformers]'") from exc
        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = _DTYPES.get(self.settings.dtype, "")
        if not dtype_name:
            dtype_name = "bfloat16" if device.startswith("cuda") else "float32"
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, dtype=getattr(torch, dtype_name), local_files_only=True
        )
        model.to(device)
        model.eval()
        self._torch, self._tokenizer, self._model, self.device = torch, tokenizer, model, device
        log.info(
            "transformers backend loaded",
            extra={
                "model_dir": str(self.model_dir),
                "device": device,
                "dtype": dtype_name,
                "architecture": type(model).__name__,
            },
        )

    async def ensure_loaded(self) -> None:
        async with self._load_lock:
            if self._model is None:
                await asyncio.to_thread(self.load)

    # --- prompting and generation ----------------------------------------------------------

    def prompt(self, conversation: Conversation | ParseRequest) -> str:
        if isinstance(conversation, ParseRequest):
            conversation = Conversation(conversation, self.toolbox, self.budget)
        tokenizer = self._tokenizer
        if not getattr(tokenizer, "chat_template", None):
            return plain_prompt(conversation)
        return str(
            tokenizer.apply_chat_template(
                template_messages(conversation.messages),
                tools=conversation.tools(),
                add_generation_prompt=True,
                tokenize=False,
                enable_thinking=False,  # Qwen3 templates: answer directly; others ignore it
            )
        )

    def generate(self, prompts: list[str]) -> list[tuple[str, int]]:
        """Greedy generation for a batch of prompts: (completion text, tokens used) each."""
        torch, tokenizer, model = self._torch, self._tokenizer, self._model
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        eos = [
            t
            for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
            if t is not None
        ]
        eos = [t for t in eos if isinstance(t, int) and t != tokenizer.unk_token_id]
        with self._generate_lock, torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos or None,
            )
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        drop = {tokenizer.pad_token, tokenizer.eos_token, "<|im_end|>", "<|endoftext|>"} - {None}
        results = []
        for row, used in zip(output[:, prompt_len:], prompt_tokens, strict=True):
            ids = row.tolist()
            stop = next((i + 1 for i, t in enumerate(ids) if t in eos), len(ids))
            text = tokenizer.decode(ids[:stop], skip_special_tokens=False)
            for token in drop:
                text = text.replace(token, "")
            results.append((text, int(used) + stop))
        return results

    def _run(self, conversations: list[Conversation]) -> list[tuple[str, int, int]]:
        """Prompts (chat template rendering is CPU work too) and generation, in the worker thread:
        (completion text, tokens used, prompt tokens) per conversation."""
        prompts = [self.prompt(c) for c in conversations]
        generated = self.generate(prompts)
        lengths = [len(self._tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        return [(text, tokens, n) for (text, tokens), n in zip(generated, lengths, strict=True)]

    async def _turn(self, conversations: list[Conversation]) -> list[tuple[str, Usage]]:
        """One turn of every conversation, `max_batch` per generate() call; a span per sentence."""
        step = max(1, self.settings.max_batch)
        replies: list[tuple[str, Usage]] = []
        for start in range(0, len(conversations), step):
            chunk = conversations[start : start + step]
            began = time.time_ns()
            generated = await asyncio.to_thread(self._run, chunk)
            ended = time.time_ns()
            for conversation, (text, tokens, prompt_tokens) in zip(chunk, generated, strict=True):
                usage = Usage(min(prompt_tokens, tokens), max(0, tokens - prompt_tokens))
                finished_turn_span(
                    self.name, self.model_dir.name, conversation.turns + 1, usage, text, began, ended
                )
                replies.append((text, usage))
        return replies

    async def parse(self, requests: list[ParseRequest]) -> list[BackendAnswer]:
        await self.ensure_loaded()
        conversations = [Conversation(r, self.toolbox, self.budget) for r in requests]
        answers: list[BackendAnswer | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            replies = await self._turn([conversations[i] for i in pending])
            waiting = []
            for i, (text, usage) in zip(pending, replies, strict=True):
                conversation = conversations[i]
                try:
                    result = conversation.take({"role": "assistant", "content": text}, usage)
                except InvalidModelOutput as exc:
                    answers[i] = InvalidAnswer(str(exc), tokens_used=conversation.tokens)
                    continue
                if result is None:
                    waiting.append(i)
                else:
                    result.backend = self.name
                    answers[i] = result
            pending = waiting
        return [a for a in answers if a is not None]

    async def aclose(self) -> None:
        self._model = None
