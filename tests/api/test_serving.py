"""How the server starts (ledger.api.serving, ledger.api.app): what a start does not pay for.

Timing is the benchmarks' (B11); these tests pin the causes: the app is built without importing pydantic
(Litestar would add its plugins whenever pydantic can be imported; typer brings it), in a fresh
interpreter, since this test process may have imported it for other reasons.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import os, sys
os.environ["LEDGER_DATABASE_URL"] = sys.argv[1]
from ledger.api import create_app
app = create_app()
assert app.openapi_schema.paths, "the document was built"
pydantic = [name for name in sys.modules if name.split(".")[0] == "pydantic" or ".pydantic" in name]
print(sorted(pydantic))
"""


def test_building_the_app_imports_no_pydantic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=120, check=True
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
