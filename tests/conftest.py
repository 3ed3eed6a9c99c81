"""Shared fixtures of the correctness suite (tests/test_tf_*.py, test_gradcheck.py).

TensorFlow and tf_keras are imported with a plain import inside the fixtures:
a missing TensorFlow is an ERROR, never a skip (in CI these tests must run).
test_gradcheck.py does not use them and runs without TensorFlow.
"""
import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: expensive test (e.g. the full-size 88.9 M-parameter model); runs by default, "
        "deselect with -m 'not slow'")


@pytest.fixture(scope="session")
def tf():
    import tensorflow  # plain import: a missing TensorFlow is an error
    return tensorflow


@pytest.fixture(scope="session")
def tfk(tf):
    import tf_keras  # plain import: a missing tf_keras is an error
    return tf_keras


@pytest.fixture
def fresh(tfk):
    """Both name counters reset (tf_keras and pyreg), so layer names match; the
    tf_keras session is cleared again afterwards and garbage collected."""
    import pyreg
    tfk.backend.clear_session()
    pyreg.backend.clear_session()
    yield
    tfk.backend.clear_session()
    pyreg.backend.clear_session()
    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)



# ------------------------------------------------ worst-case error report
_WORST = {}


def _record(category, value):
    """Keeps the largest value seen per category and returns value, so that
    `assert record("conv fwd", rel_err(a, b)) <= tol` both checks and reports."""
    value = float(value)
    if category not in _WORST or not (value <= _WORST[category]):
        _WORST[category] = value
    return value


@pytest.fixture
def record():
    return _record


def pytest_terminal_summary(terminalreporter):
    if _WORST:
        terminalreporter.section("worst measured errors (pyreg vs reference)")
        for k in sorted(_WORST):
            terminalreporter.write_line(f"{k:<48s} {_WORST[k]:.3e}")
