"""The chart serves what it names: the rendered vLLM image and arguments fit the model each render asks
for, by model family (tool-call parser, reasoning parser, and the first vLLM release that serves it).

The table is what the vLLM and Qwen documentation say; it was not verified against a running image here
(no registry or GPU is reachable from the build). Sources: vLLM's tool-calling docs (hermes for Qwen2.5
and Qwen3, qwen3_coder for Qwen3-Coder, added in 0.10.0), the vLLM recipe for Qwen3.5-397B-A17B
("vLLM 0.17.0+", --reasoning-parser qwen3), Qwen3 support and the qwen3 reasoning parser since 0.8.5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from chart_harness import Chart, Rendered


@dataclass(frozen=True)
class Family:
    name: str
    pattern: str  # matched against the Hugging Face id, case-insensitive
    tool_parser: str
    reasoning_parser: str | None  # None: the family has no thinking mode (no --reasoning-parser)
    min_vllm: tuple[int, int, int]


# First match wins: the more specific families first.
FAMILIES = (
    Family("Qwen3.5", r"^Qwen/Qwen3\.5-", "qwen3_coder", "qwen3", (0, 17, 0)),
    Family("Qwen3-Coder", r"^Qwen/Qwen3-Coder-", "qwen3_coder", None, (0, 10, 0)),
    Family("Qwen3", r"^Qwen/Qwen3-", "hermes", "qwen3", (0, 8, 5)),
    Family("Qwen2.5", r"^Qwen/Qwen2\.5-", "hermes", None, (0, 6, 0)),
)


def family_of(model: str) -> Family:
    for family in FAMILIES:
        if re.match(family.pattern, model, re.IGNORECASE):
            return family
    raise AssertionError(f"{model}: no model family in the table; add one before serving it")


def version_of(image: str) -> tuple[int, int, int]:
    match = re.search(r":v?(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"{image}: pin a released vLLM version (vX.Y.Z), not a moving tag"
    return int(match[1]), int(match[2]), int(match[3])


def arg(args: list[str], flag: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]
    assert len(values) <= 1, f"{flag} given twice: {values}"
    return values[0] if values else None


def problems(model: str, image: str, args: list[str]) -> list[str]:
    """What keeps this vLLM container from serving `model` with tool calls, by the family table."""
    family = family_of(model)
    found: list[str] = []
    if "--enable-auto-tool-choice" not in args:
        found.append("--enable-auto-tool-choice is missing")
    if arg(args, "--tool-call-parser") != family.tool_parser:
        found.append(f"{family.name} needs --tool-call-parser={family.tool_parser}")
    if arg(args, "--reasoning-parser") != family.reasoning_parser:
        want = f"--reasoning-parser={family.reasoning_parser}" if family.reasoning_parser else "none"
        found.append(f"{family.name} needs {want}")
    if version_of(image) < family.min_vllm:
        found.append(f"{family.name} needs vLLM >= {'.'.join(map(str, family.min_vllm))}, image is {image}")
    return found


def vllm_container(rendered: Rendered) -> tuple[str, dict[str, Any]]:
    deployment = rendered.get("Deployment", rendered.name("vllm"))
    model = deployment["spec"]["template"]["metadata"]["annotations"]["yiju.io/model"]
    (container,) = rendered.pod_spec(deployment)["containers"]
    return model, container


RENDERS = {
    "prod": ("prod",),
    "default+vllm": ("default", "vllm.enabled=true"),
    "qwen3-coder": (
        "default",
        "vllm.enabled=true",
        "vllm.model=Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "vllm.toolCallParser=qwen3_coder",
        "vllm.reasoningParser=",
    ),
}


@pytest.mark.parametrize("case", list(RENDERS))
def test_each_render_serves_its_model_family(chart: Chart, case: str) -> None:
    profile, *sets = RENDERS[case]
    model, container = vllm_container(chart.render(profile, *sets))
    assert problems(model, container["image"], container["args"]) == []


def test_prod_serves_qwen35_with_the_xml_tool_parser(prod: Rendered) -> None:
    model, container = vllm_container(prod)
    assert model == "Qwen/Qwen3.5-397B-A17B" and family_of(model).name == "Qwen3.5"
    assert version_of(container["image"]) >= (0, 17, 0)
    assert "--tool-call-parser=qwen3_coder" in container["args"]
    assert "--reasoning-parser=qwen3" in container["args"]


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ("vllm.image.tag=v0.11.0", "vllm.toolCallParser=hermes"),
            ["needs --tool-call-parser=qwen3_coder", "needs vLLM >= 0.17.0"],
        ),
        (("vllm.reasoningParser=",), ["needs --reasoning-parser=qwen3"]),
        (("vllm.image.tag=latest",), ["pin a released vLLM version"]),
    ],
)
def test_a_mismatch_is_caught(chart: Chart, sets: tuple[str, ...], expected: list[str]) -> None:
    """The old prod pins (v0.11.0 and hermes for Qwen3.5) and other mismatches fail the check."""
    model, container = vllm_container(chart.render("prod", *sets))
    try:
        found = " | ".join(problems(model, container["image"], container["args"]))
    except AssertionError as exc:
        found = str(exc)
    for words in expected:
        assert words in found, found


def test_the_table_knows_each_family_apart() -> None:
    assert [family_of(m).name for m in (
        "Qwen/Qwen3.5-397B-A17B-FP8", "Qwen/Qwen3-Coder-480B-A35B-Instruct", "Qwen/Qwen3-8B",
        "Qwen/Qwen2.5-7B-Instruct",
    )] == ["Qwen3.5", "Qwen3-Coder", "Qwen3", "Qwen2.5"]  # fmt: skip
    with pytest.raises(AssertionError, match="no model family"):
        family_of("meta-llama/Llama-3.1-8B-Instruct")
