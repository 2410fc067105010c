"""The embedding pipeline's decode workers stay light."""

from __future__ import annotations

import subprocess
import sys


def test_decode_side_imports_no_pytorch() -> None:
    """A spawned decode worker imports the pipeline module: without PyTorch it starts in a
    fraction of a second and hundreds of MB lighter."""
    code = (
        "import sys, lookalike, lookalike.embed, lookalike.embed.pipeline;"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
