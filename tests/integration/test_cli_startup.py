"""What the CLI imports before it does anything: slow imports stay out of every command's start-up.

A fresh interpreter per check (the test process has imported everything already).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SLOW_IMPORTS = (
    "jsonschema",
    "rfc3987_syntax",
    "sigstore",
    "starlette",
    "uvicorn",
    "onnxruntime",
    "model_signing",
)


@pytest.mark.parametrize("argv", [["--help"], ["pull", "--help"], ["push", "--help"], ["promote", "--help"]])
def test_help_imports_nothing_slow(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from mloci.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {SLOW_IMPORTS!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
