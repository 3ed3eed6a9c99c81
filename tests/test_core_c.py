"""The pure-C tests of the core (csrc/tests/test_*.c), built and run through
`make -C csrc test`, so that they are part of pytest. Skipped only when make
or a C compiler is missing (never the case in CI)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which(os.environ.get("CC", "gcc")) is None,
                    reason="needs make and a C compiler")
def test_c_core_tests_pass():
    assert (CSRC / "Makefile").exists(), "csrc/Makefile is missing"
    assert list((CSRC / "tests").glob("test_*.c")), "no C tests in csrc/tests"
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # the C tests link their own runtime (e.g. under tools/asan.sh)
    proc = subprocess.run(["make", "-C", str(CSRC), "test"], capture_output=True, text=True, env=env,
                          timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make -C csrc test failed ({proc.returncode}):\n{out[-8000:]}"
    assert "== " in out or "Nothing to be done" in out or "is up to date" in out, out[-8000:]
    print(out[-4000:])
