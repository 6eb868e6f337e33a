"""Every profile (values.yaml defaults, values-dev.yaml, values-prod.yaml): lint, schema-validate,
and hold the rules that matter for every workload (probes, no root, resources)."""

from __future__ import annotations

import kubernetes_validate
import pytest
from chart_harness import SERVICES, VARIANTS, Chart, Rendered, render

# Custom resources: kubernetes-validate ships the schemas of Kubernetes' own APIs only; the schemas of
# these live in their operators' CRDs (KEDA, prometheus-operator, Strimzi), which are not installed here.
# Their shape is asserted field by field in test_profiles.py instead.
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "KEDA CRD",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "KEDA CRD",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator CRD",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "Strimzi CRD",
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): "Strimzi CRD",
}


def test_lint_strict(chart: Chart, profile: str) -> None:
    out = chart.lint(profile)
    assert "0 chart(s) failed" in out
    assert "[ERROR]" not in out and "[WARNING]" not in out, out


def test_notes_render(chart: Chart, profile: str) -> None:
    text = render.notes(chart.helm, profile)
    assert "yiju-intent: gRPC 50051, HTTP 8080" in text
    assert "docs/operating.md" in text


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_lint_strict(chart: Chart, variant: str) -> None:
    out = chart.lint("default", *VARIANTS[variant])
    assert "[ERROR]" not in out and "[WARNING]" not in out, out


def test_every_manifest_validates_against_kubernetes_schemas(rendered: Rendered) -> None:
    checked = 0
    for doc in rendered.docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, render.KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(
                f"{rendered.case}: {doc['kind']}/{doc['metadata']['name']}: {err.message} "
                f"at {'/'.join(map(str, err.path))}"
            )
        checked += 1
    assert checked >= 10


def test_only_known_custom_resources(rendered: Rendered) -> None:
    core_groups = ("v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1")
    for doc in rendered.docs:
        assert doc["apiVersion"] in core_groups or (doc["apiVersion"], doc["kind"]) in CRD_KINDS, doc["kind"]


def test_every_service_has_deployment_and_service(rendered: Rendered) -> None:
    if rendered.case in render.PROFILES:
        assert rendered.services() == list(SERVICES)
    for name in rendered.services():
        deployment = rendered.service_deployment(name)
        service = rendered.get("Service", rendered.name(name))
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["selector"] == selector
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        assert ports["metrics"] == 9100
        assert "grpc" in ports


def test_readiness_and_liveness_on_every_long_running_container(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        if workload["kind"] == "Job":  # runs to completion: nothing to route to, nothing to restart
            continue
        for ctr in rendered.containers(workload, init=False):
            where = f"{rendered.case}: {workload['metadata']['name']}/{ctr['name']}"
            assert ctr.get("readinessProbe"), f"{where}: no readinessProbe"
            assert ctr.get("livenessProbe"), f"{where}: no livenessProbe"


def test_services_use_grpc_health_probes(rendered: Rendered) -> None:
    for name in rendered.services():
        deployment = rendered.service_deployment(name)
        (ctr,) = rendered.containers(deployment)
        grpc_port = next(p["containerPort"] for p in ctr["ports"] if p["name"] == "grpc")
        if "YIJU_GRPC_TLS_CERT" in rendered.env(deployment):
            # kubelet's gRPC probe cannot speak TLS: TCP checks of the gRPC port instead.
            expected: dict = {"tcpSocket": {"port": "grpc"}}
        else:
            expected = {"grpc": {"port": grpc_port}}
        assert {k: ctr["readinessProbe"][k] for k in expected} == expected
        assert {k: ctr["startupProbe"][k] for k in expected} == expected
        if name == "intent":
            assert ctr["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        else:
            liveness = next(iter(expected))
            assert ctr["livenessProbe"][liveness]["port"] == expected[liveness]["port"]
        assert ctr["command"] == ["python", "-m", f"yiju.{name.replace('-', '_')}"]


def test_nothing_runs_as_root(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        pod = rendered.pod_spec(workload)
        pod_sc = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False
        for ctr in rendered.containers(workload):
            where = f"{rendered.case}: {workload['metadata']['name']}/{ctr['name']}"
            sc = {**pod_sc, **ctr.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True, where
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"]: m["name"] for m in ctr.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is not an emptyDir"


def test_requests_and_limits_everywhere(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        for ctr in rendered.containers(workload):
            where = f"{rendered.case}: {workload['metadata']['name']}/{ctr['name']}"
            resources = ctr.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part} incomplete"


def test_pdbs_select_existing_pods(rendered: Rendered) -> None:
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        target = rendered.get("Deployment", pdb["metadata"]["name"])
        assert pdb["spec"]["selector"]["matchLabels"] == target["spec"]["selector"]["matchLabels"]
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])


def test_autoscaled_deployments_leave_replicas_to_the_scaler(rendered: Rendered) -> None:
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in rendered.of_kind("HorizontalPodAutoscaler")}
    keda = {d["spec"]["scaleTargetRef"]["name"] for d in rendered.of_kind("ScaledObject")}
    assert not scaled & keda, "a Deployment with both an HPA and a ScaledObject"
    for name in rendered.services():
        deployment = rendered.service_deployment(name)
        if deployment["metadata"]["name"] in scaled | keda:
            assert "replicas" not in deployment["spec"]
        else:
            assert deployment["spec"]["replicas"] >= 1


def test_config_and_secrets(rendered: Rendered) -> None:
    for name in rendered.services():
        env = rendered.env(rendered.service_deployment(name))
        where = f"{rendered.case}: {name}"
        for var in (
            "YIJU_ENV",
            "YIJU_KAFKA_BOOTSTRAP",
            "YIJU_KAFKA_SECURITY_PROTOCOL",
            "YIJU_KAFKA_PARTITIONS",
            "YIJU_KAFKA_REPLICATION_FACTOR",
            "YIJU_LOG_LEVEL",
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
        ):
            assert env.get(var), f"{where}: {var} missing"
        assert env["YIJU_METRICS_PORT"] == "9100"
        assert env["YIJU_GRPC_HOST"] == env["YIJU_HTTP_HOST"] == "0.0.0.0"
        assert env["YIJU_GATEWAY_TARGET"] == f"{rendered.name('model-gateway')}:50052"
        assert env["YIJU_PLANNING_TARGET"] == f"{rendered.name('planning')}:50053"
        assert env["YIJU_PAYMENT_TARGET"] == f"{rendered.name('payment')}:50054"
        assert env["YIJU_FULFILMENT_TARGET"] == f"{rendered.name('fulfilment')}:50055"
        assert (env["YIJU_GRPC_PORT"], env["YIJU_HTTP_PORT"]) == ("50051", "8080")
        assert (env["YIJU_GATEWAY_PORT"], env["YIJU_PLANNING_PORT"]) == ("50052", "50053")
        assert (env["YIJU_PAYMENT_PORT"], env["YIJU_FULFILMENT_PORT"]) == ("50054", "50055")
        # Credentials only ever come from Secrets.
        assert env["YIJU_REDIS_URL"][0] == "secret", where
        for var in ("YIJU_KAFKA_SASL_PASSWORD", "YIJU_JWT_SECRET", "YIJU_OPENAI_API_KEY"):
            if var in env:
                assert env[var][0] == "secret", f"{where}: {var} is not from a Secret"
        for _, secret, key in (v for v in env.values() if isinstance(v, tuple) and v[0] == "secret"):
            chart_secret = rendered.find("Secret", secret)
            if chart_secret is not None:
                assert key in chart_secret.get("data", {}) | chart_secret.get("stringData", {}), (secret, key)
