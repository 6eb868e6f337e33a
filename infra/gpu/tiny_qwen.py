"""Builds a tiny random-weight Qwen checkpoint on disk, offline: for tests and CPU smoke runs.

A byte-level BPE tokenizer is trained in-process (tokenizers library) on a few sentences plus the
gateway's own prompt and tool definitions, wrapped in PreTrainedTokenizerFast with Qwen's special
tokens and a minimal ChatML template that renders tools; the model is a Qwen3 (or Qwen2) config
with 2 layers and hidden size 64. Nothing is downloaded. Its output is nonsense by design.
"""

from __future__ import annotations

import json
from pathlib import Path

from yiju.model_gateway.prompt import SYSTEM_PROMPT
from yiju.model_gateway.tools import openai_tools

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
]

CHAT_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{% endif %}"
    "{% for message in messages %}"
    "{% if not (message.role == 'system' and tools) %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SENTENCES = [
    "two bubble teas to my office at 7pm",
    "a taxi home after dinner",
    "high-speed rail tickets from beijing to shanghai for 3 people tomorrow",
    "book a hotel in hangzhou for 2 nights",
    "来两杯奶茶送到公司",
    "明天北京到上海的高铁，三个人",
    "订杭州的酒店住两晚",
    "叫辆车回家",
]


def build_tokenizer(vocab_size: int = 800):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*SENTENCES, SYSTEM_PROMPT, *(json.dumps(t, ensure_ascii=False) for t in openai_tools())]
    tokenizer.train_from_iterator(corpus * 4, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_qwen(
    path: Path, *, architecture: str = "qwen3", seed: int = 0, chat_template: bool = True
) -> Path:
    """Writes tokenizer and random weights to `path` (created); returns it."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen3Config

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    if not chat_template:
        tokenizer.chat_template = None
    tokenizer.save_pretrained(path)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    config = Qwen3Config(head_dim=16, **common) if architecture == "qwen3" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    return path


if __name__ == "__main__":  # python -m yiju_infra.gpu.tiny_qwen OUT_DIR [qwen2|qwen3]
    import sys

    out = build_tiny_qwen(Path(sys.argv[1]), architecture=sys.argv[2] if len(sys.argv) > 2 else "qwen3")
    print(out)
