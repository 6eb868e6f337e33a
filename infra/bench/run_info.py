"""What a benchmark report says about how it was run: its configuration and the machine."""

from __future__ import annotations

import os
import platform as py_platform
from dataclasses import asdict
from pathlib import Path
from typing import Any


def config_summary(config: Any) -> dict[str, Any]:
    """A benchmark's dataclass configuration as JSON-ready values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def machine_summary() -> dict[str, Any]:
    """CPUs, Python, OS and the load average when the report was written."""
    return {
        "cpus": os.cpu_count(),
        "python": py_platform.python_version(),
        "platform": py_platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
