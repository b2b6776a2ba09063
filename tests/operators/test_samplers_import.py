"""A sampler's first-use imports start while the session opens, not on the first proposal."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys, threading
from metaexp.operators.samplers import import_ahead, make_sampler
make_sampler("cmaes", 0)
assert "cmaes" not in sys.modules, "Optuna imports cmaes lazily, on the first proposal"
import_ahead("cmaes")
import_ahead("cmaes")  # once
threads = [t for t in threading.enumerate() if t.name == "import cmaes"]
assert len(threads) == 1, threads
threads[0].join(60)
assert "cmaes" in sys.modules and "scipy.stats" in sys.modules
"""


def test_import_ahead_loads_the_samplers_lazy_modules_in_a_thread() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
