"""Plotting helpers (skcgcnn.plot) and matplotlib as an optional extra."""

from __future__ import annotations

import subprocess
import sys

from shared_data import ROOT

# Run in a fresh interpreter in which any import of matplotlib fails, as in an installation
# without the ``plot`` extra.
_WITHOUT_MATPLOTLIB = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, Block())
import skcgcnn
import skcgcnn.benchmark
import skcgcnn.benchmark.cli
import skcgcnn.cli
import skcgcnn.plot
from skcgcnn.cli import main

try:
    main(["--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
assert "matplotlib" not in sys.modules
try:
    skcgcnn.plot.pyplot()
except ImportError as exc:
    print("ERROR:", exc)
"""


def test_core_and_cli_import_without_matplotlib():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_MATPLOTLIB], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "usage: skcgcnn" in out.stdout
    assert "ERROR: plotting needs matplotlib: pip install skcgcnn[plot]" in out.stdout
