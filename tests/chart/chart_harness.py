"""The chart tests' harness: infra/chart/render.py loaded as a module, the parsed render of a profile,
and the service contract's names."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_render():
    spec = importlib.util.spec_from_file_location("yiju_chart_render", ROOT / "infra" / "chart" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = _load_render()

SERVICES = ("intent", "planning", "payment", "fulfilment", "model-gateway")
# Which service owns each consumer group (the service contract).
CONSUMER_GROUPS = {
    "yiju-intent-intake": "intent",
    "yiju-intent-projection": "intent",
    "yiju-planning": "planning",
    "yiju-payment": "payment",
    "yiju-fulfilment": "fulfilment",
    "yiju-model-gateway": "model-gateway",
}
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

# Less travelled branches of the templates, rendered on top of the defaults.
VARIANTS = {
    "everything-on": [
        "kafka.securityProtocol=SASL_SSL",
        "kafka.sasl.username=yiju",
        "kafka.sasl.password=secret",
        "kafka.tls.caSecret=kafka-ca",
        "keda.enabled=true",
        "keda.cpuUtilization=80",
        "vllm.enabled=true",
        "otel.collector.enabled=true",
        "otel.tailSampling.enabled=true",
        "grpcTls.enabled=true",
        "grpcTls.secretName=yiju-grpc-tls",
        "catalog.existingConfigMap=yiju-catalog",
        "ingress.enabled=true",
        "topologySpread.enabled=true",
        "metrics.serviceMonitor.enabled=true",
        "auth.jwtSecret=jwt",
        "modelGateway.openaiApiKey=key",
        "intentService.type=LoadBalancer",
        "probes.livenessGrpcService=yiju.liveness",
        "services.payment.pdb.minAvailable=1",
    ],
    "vllm-weights-in-image": [
        "vllm.enabled=true",
        "vllm.weights.source=image",
        "vllm.weights.path=/weights/qwen",
        "kafka.securityProtocol=SSL",
        "keda.enabled=true",
        "networkPolicy.enabled=false",
        "serviceAccount.create=false",
        "serviceAccount.name=yiju-runner",
    ],
    "external-openai-no-topics": [
        "modelGateway.backends=openai\\,rules",
        "modelGateway.openaiBaseUrl=https://llm.example.com/v1",
        "modelGateway.existingSecret=llm-key",
        "otel.endpoint=http://otel.example.com:4318",
        "kafka.topics.create=false",
        "services.fulfilment.enabled=false",
    ],
}


@dataclass
class Rendered:
    """One `helm template` output, parsed."""

    profile: str
    docs: list[dict[str, Any]]
    # The profile, or "variant:<name>" for one of VARIANTS.
    case: str = ""
    release: str = render.RELEASE
    _by_key: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for doc in self.docs:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in self._by_key, f"{self.profile}: duplicate {key}"
            self._by_key[key] = doc

    @property
    def values(self) -> dict[str, Any]:
        """values.yaml merged with the profile's file (plain dict merge, enough for these checks)."""
        merged: dict[str, Any] = yaml.safe_load((render.CHART / "values.yaml").read_text())
        for name in render.PROFILES[self.profile]:
            _merge(merged, yaml.safe_load((render.CHART / name).read_text()))
        return merged

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return self._by_key[(kind, name)]
        except KeyError:
            raise AssertionError(f"{self.profile}: no {kind} {name}") from None

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._by_key.get((kind, name))

    def name(self, component: str) -> str:
        return f"{self.release}-{component}"

    def services(self) -> list[str]:
        """The services this render runs (all five unless some are disabled)."""
        return [s for s in SERVICES if self.find("Deployment", self.name(s)) is not None]

    def service_deployment(self, service: str) -> dict[str, Any]:
        return self.get("Deployment", self.name(service))

    def workloads(self) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] in POD_KINDS]

    @staticmethod
    def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
        return workload["spec"]["template"]["spec"]

    def containers(self, workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
        spec = self.pod_spec(workload)
        return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])

    def env(self, workload: dict[str, Any], container: str | None = None) -> dict[str, Any]:
        """The container's environment: envFrom ConfigMaps resolved, then env (which wins).

        A plain value maps to its string; a secretKeyRef to ("secret", name, key); other valueFrom to
        ("ref", the valueFrom mapping).
        """
        spec = self.pod_spec(workload)
        ctr = next(c for c in spec["containers"] if container is None or c["name"] == container)
        out: dict[str, Any] = {}
        for source in ctr.get("envFrom", []):
            if "configMapRef" in source:
                out.update(self.get("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
            else:
                raise AssertionError(f"unexpected envFrom {source}")
        for item in ctr.get("env", []):
            if "value" in item:
                out[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                out[item["name"]] = ("secret", ref["name"], ref["key"])
            else:
                out[item["name"]] = ("ref", item.get("valueFrom"))
        return out


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


class Chart:
    """Renders (and caches) the chart through the real helm binary."""

    def __init__(self, helm_bin: str) -> None:
        self.helm = helm_bin
        self._cache: dict[tuple[str, tuple[str, ...]], Rendered] = {}

    def render(self, profile: str, *sets: str) -> Rendered:
        key = (profile, sets)
        if key not in self._cache:
            stream = render.template(self.helm, profile, sets=list(sets))
            self._cache[key] = Rendered(profile, render.parse(stream), case=profile)
        return self._cache[key]

    def render_case(self, case: str) -> Rendered:
        """A profile, or "variant:<name>": one of VARIANTS on top of the defaults."""
        if case.startswith("variant:"):
            base = self.render("default", *VARIANTS[case.removeprefix("variant:")])
            return Rendered("default", base.docs, case=case)
        return self.render(case)

    def render_error(self, profile: str, *sets: str) -> str:
        """Render what must fail; return helm's message."""
        with pytest.raises(render.HelmError) as caught:
            render.template(self.helm, profile, sets=list(sets))
        return str(caught.value)

    def lint(self, profile: str, *sets: str) -> str:
        return render.lint(self.helm, profile, sets=list(sets))
