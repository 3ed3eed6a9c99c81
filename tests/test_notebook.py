"""The teaching notebook (notebooks/tutorial.ipynb) runs from top to bottom.

It is executed with nbclient on tiny settings (256 training images, 128 test
images, 1 epoch, the small model, synthetic data), through environment
variables read by its `parameters` cell. The kernel is this interpreter
(sys.executable), through a kernelspec written to a temporary folder, so no
registered kernel is needed and none on the machine is used; the kernel gets
the repository root on PYTHONPATH, so it imports this checkout's pyreg.

nbformat, nbclient and ipykernel are test extras: imported plainly (a missing
one is an error, never a skip).
"""
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"
EXPERIMENTS = ("l1", "l1_l2", "none", "l2", "l1_prox")

TINY = {
    "PYREG_NB_TRAIN": "256",
    "PYREG_NB_TEST": "128",
    "PYREG_NB_EPOCHS": "1",
    "PYREG_NB_BATCH_SIZE": "64",
    "PYREG_NB_FULL": "0",
    "PYREG_NB_DATA": "synthetic",  # hermetic: the same data with or without a CIFAR-10 copy
    "PYREG_NB_SMALL_MODEL": "1",
}


def _read():
    return nbformat.read(str(NOTEBOOK), as_version=4)


def test_stored_notebook_is_clean():
    nb = _read()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for c in code:
        assert c.outputs == [], f"cell {c.get('id')} has stored outputs"
        assert c.execution_count is None, f"cell {c.get('id')} has an execution count"
        assert not c.metadata.get("execution"), f"cell {c.get('id')} has execution metadata"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell must be tagged 'parameters'"
    src = params[0].source
    for name, default in (("N_TRAIN", "5000"), ("N_TEST", "1000"), ("EPOCHS", "3"), ("BATCH_SIZE", "128")):
        assert re.search(rf"^{name} = .*\b{default}\b", src, re.M), f"parameters cell: {name} default {default}"
    for name in ("FULL", "DATA", "SMALL_MODEL"):
        assert re.search(rf"^{name} = ", src, re.M), f"parameters cell lacks {name}"
    for var in TINY:
        assert var in src, f"parameters cell does not read {var}"


def _kernel_manager(tmp_path):
    """A kernel running this interpreter, with the tiny settings in its environment."""
    spec_dir = tmp_path / "kernels" / "pyreg-nbtest"
    spec_dir.mkdir(parents=True)
    pythonpath = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env = dict(TINY, PYTHONPATH=pythonpath, MPLBACKEND="Agg", IPYTHONDIR=str(tmp_path / "ipython"))
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pyreg test kernel", "language": "python", "env": env,
    }))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="pyreg-nbtest", kernel_spec_manager=ksm)


def _outputs(nb, output_type=None):
    for c in nb.cells:
        if c.cell_type == "code":
            for o in c.get("outputs", []):
                if output_type is None or o.output_type == output_type:
                    yield o


def test_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = _read()
    client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=600, startup_timeout=120,
                            allow_errors=False, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - t0
    print(f"notebook executed in {seconds:.1f} s")

    assert not list(_outputs(nb, "error"))
    stdout = "".join(o.text for o in _outputs(nb, "stream") if o.name == "stdout")
    # the tutorial's two prints, once per experiment
    losses = re.findall(r"^Loss: (\d+\.\d{3})$", stdout, re.M)
    accs = re.findall(r"^Accuracy: (\d\.\d{3})$", stdout, re.M)
    assert len(losses) == len(EXPERIMENTS), stdout[-3000:]
    assert len(accs) == len(EXPERIMENTS), stdout[-3000:]
    assert all(0.0 <= float(a) <= 1.0 for a in accs)
    # the data is said to be synthetic, and the small model was used
    assert "Data: SYNTHETIC (not CIFAR-10)" in stdout
    assert "SMALL_MODEL, not the tutorial's" in stdout
    # the initial penalty agrees with the Glorot estimate (0.01 * N * limit / 2)
    m = re.search(r"measured initial penalty: ([\d.]+), formula: ([\d.]+)", stdout)
    assert m, stdout[-3000:]
    measured, formula = float(m.group(1)), float(m.group(2))
    assert abs(measured - formula) <= 0.02 * formula
    assert "first loss ~ 3,669" in stdout
    # every experiment was recorded, and the summary table lists them
    for name in EXPERIMENTS:
        assert f"[{name}] test loss" in stdout
    tables = [o.data["text/markdown"] for o in _outputs(nb, "display_data") if "text/markdown" in o.data]
    assert tables and all(f"| {name} |" in tables[0] for name in EXPERIMENTS)
    # the 1-D demo: proximal L1 reaches exact zeros, the subgradient does not
    assert re.search(r"^subgradient L1 after 300 steps: .*exact zeros: 0/4$", stdout, re.M), stdout[-2000:]
    assert re.search(r"^proximal +L1 after 300 steps: .*exact zeros: 4/4$", stdout, re.M), stdout[-2000:]
    # figures: sample images, curves (2), histograms (2), the demo
    pngs = [o for o in _outputs(nb) if o.output_type in ("display_data", "execute_result")
            and "image/png" in o.get("data", {})]
    assert len(pngs) >= 6, f"{len(pngs)} PNG outputs"
