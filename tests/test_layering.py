"""The import layering of setup.cfg's [importlinter] contracts holds (CI also runs
`lint-imports` before the tests; this keeps a plain `pytest` run honest)."""

import os
import subprocess
import sys

from conftest import ROOT


def test_imports_follow_the_layers():
    script = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    assert os.path.exists(script), "import-linter (a test dependency) is not installed"
    done = subprocess.run([script, "--no-logo", "--no-cache", str(ROOT / "setup.cfg")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
