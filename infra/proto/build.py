"""`make proto`: compile protos/ into services/gen (import path yiju.gen.*).

protoc writes imports as `from yiju.events.v1 import ...` (the proto file paths); they are
rewritten to `from yiju.gen.events.v1 import ...` so generated code stays in its own folder.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = ROOT / "services" / "gen"
IMPORT_RE = re.compile(r"^(from|import) yiju\.", re.MULTILINE)


def main() -> int:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *files,
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        for old in OUT.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
        generated = Path(tmp) / "yiju"
        for src in generated.rglob("*"):
            if src.suffix not in (".py", ".pyi"):
                continue
            dest = OUT / src.relative_to(generated)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(IMPORT_RE.sub(r"\1 yiju.gen.", src.read_text()))
        for folder in [OUT, *(p for p in OUT.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
    print(f"generated {len(files)} proto files into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
