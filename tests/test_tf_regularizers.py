"""pyreg.regularizers against tf_keras.regularizers: penalty values (up to
10^8 elements), defaults and get_config, the L2 formula (no 1/2), gradients
(sign(0) = 0) and the validation of the factors."""
import math

import numpy as np
import pytest

import pyreg
from pyreg.testing import rel_err

REG_SPECS = {
    # name: (pyreg constructor, tf_keras constructor, (l1, l2))
    "l1(0.01)": (lambda R: R.l1(0.01), (0.01, 0.0)),
    "l2(0.01)": (lambda R: R.l2(0.01), (0.0, 0.01)),
    "l1_l2(0.01,0.01)": (lambda R: R.l1_l2(0.01, 0.01), (0.01, 0.01)),
    "L1L2(0.003,0.0)": (lambda R: R.L1L2(0.003, 0.0), (0.003, 0.0)),
}
VALUE_TOL = 1e-6   # pyreg vs TF, sizes up to 10^6
BIG_TOL = 1e-5     # pyreg vs TF at 10^8 (TF sums in float32)


def _f32(v):
    """The factor as stored by Keras (backend.cast_to_floatx): float32."""
    return float(np.float32(v))


def _ref64(x, l1, l2, chunk=10**7):
    """float64 reference l1 * sum|x| + l2 * sum x^2 (no 1/2), with float32 factors."""
    s1 = s2 = 0.0
    for i in range(0, x.size, chunk):
        c = x.ravel()[i:i + chunk].astype(np.float64)
        s1 += float(np.abs(c).sum())
        s2 += float((c * c).sum())
    return _f32(l1) * s1 + _f32(l2) * s2


def _array(size, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size).astype(np.float32) * 0.05
    x[:: 7] = 0.0  # exact zeros (sign(0) = 0)
    if size == 1:
        x[0] = np.float32(-0.3)
    return x


@pytest.mark.parametrize("size", [1, 1000, 10**6])
@pytest.mark.parametrize("spec", list(REG_SPECS))
def test_penalty_matches_keras(tf, tfk, spec, size, record):
    make, (l1, l2) = REG_SPECS[spec]
    x = _array(size, seed=size)
    got = make(pyreg.regularizers)(x)
    want = float(make(tfk.regularizers)(tf.constant(x)).numpy())
    ref = _ref64(x, l1, l2)
    assert isinstance(got, float)
    assert record("regularizers: penalty vs TF (n <= 1e6)", abs(got - want) / abs(want)) <= VALUE_TOL
    assert record("regularizers: penalty vs float64 (n <= 1e6)", abs(got - ref) / abs(ref)) <= VALUE_TOL
    # the same penalty on a multi-dimensional weight (e.g. a conv kernel)
    if size == 1000:
        assert make(pyreg.regularizers)(x.reshape(10, 5, 4, 5)) == pytest.approx(got, rel=1e-12)


def test_penalty_on_1e8_elements(tf, tfk, record):
    """400 MB of float32. TF sums in float32; pyreg must be at least as close to
    the float64 value as TF, and within 1e-5 of TF."""
    rng = np.random.default_rng(2024)
    x = rng.random(10**8, dtype=np.float32)
    x -= np.float32(0.5)
    x *= np.float32(0.02)
    x[::1000] = 0.0
    s1 = s2 = 0.0
    for i in range(0, x.size, 10**7):
        c = x[i:i + 10**7].astype(np.float64)
        s1 += float(np.abs(c).sum())
        s2 += float((c * c).sum())
    xt = tf.constant(x)
    report = {}
    for spec, (make, (l1, l2)) in REG_SPECS.items():
        got = make(pyreg.regularizers)(x)
        want = float(make(tfk.regularizers)(xt).numpy())
        ref = _f32(l1) * s1 + _f32(l2) * s2
        err_tf, err_pr = abs(want - ref) / ref, abs(got - ref) / ref
        report[spec] = (err_tf, err_pr)
        record("regularizers: 1e8 TF vs float64", err_tf)
        record("regularizers: 1e8 pyreg vs float64", err_pr)
        assert err_pr <= err_tf, (spec, err_pr, err_tf)
        assert record("regularizers: 1e8 pyreg vs TF", abs(got - want) / abs(want)) <= BIG_TOL, spec
    del xt, x


def test_l2_has_no_half(rng):
    x = rng.standard_normal(12345).astype(np.float32)
    ref = _f32(0.01) * float(np.sum(x.astype(np.float64) ** 2))
    got = pyreg.regularizers.l2(0.01)(x)
    assert got == pytest.approx(ref, rel=1e-9)
    assert abs(got - ref / 2) > 0.4 * ref  # the tutorial's 1/2 would be caught
    el = pyreg.regularizers.l1_l2(0.01, 0.01)(x)
    assert el == pytest.approx(ref + _f32(0.01) * float(np.abs(x.astype(np.float64)).sum()), rel=1e-9)


def test_zero_factors_give_zero_penalty(tf, tfk, rng):
    x = rng.standard_normal(100).astype(np.float32)
    assert pyreg.regularizers.L1L2()(x) == 0.0
    assert float(tfk.regularizers.L1L2()(tf.constant(x))) == 0.0
    assert pyreg.regularizers.L1L2(0.0, 0.0)(x) == 0.0


# -------------------------------------------------------------- gradients
@pytest.mark.parametrize("size", [1000, 10**6])
@pytest.mark.parametrize("spec", list(REG_SPECS))
def test_gradient_matches_gradient_tape(tf, tfk, spec, size, record):
    make, (l1, l2) = REG_SPECS[spec]
    x = _array(size, seed=size + 1)
    zeros = x == 0
    assert zeros.sum() > 0
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        p = make(tfk.regularizers)(v)
    ref = tape.gradient(p, v).numpy()
    got = make(pyreg.regularizers).gradient(x)
    assert got.shape == x.shape and got.dtype == np.float32
    assert record("regularizers: gradient vs GradientTape", rel_err(got, ref)) <= 1e-6
    # sign(0) = 0: the gradient at an exact zero is exactly 0, as TensorFlow's
    np.testing.assert_array_equal(got[zeros], 0.0)
    np.testing.assert_array_equal(ref[zeros], 0.0)
    # and the formula l1 * sign(w) + 2 * l2 * w
    expect = _f32(l1) * np.sign(x.astype(np.float64)) + 2 * _f32(l2) * x.astype(np.float64)
    assert rel_err(got, expect) <= 1e-6


def test_gradient_of_l1_is_sign_exactly(rng):
    x = np.array([-2.0, -1e-30, 0.0, -0.0, 1e-30, 3.0], dtype=np.float32)
    g = pyreg.regularizers.l1(0.01).gradient(x)
    np.testing.assert_array_equal(g, np.float32(0.01) * np.array([-1, -1, 0, 0, 1, 1], dtype=np.float32))


# ------------------------------------------------------ defaults and configs
def test_defaults_and_configs_equal_keras(tfk):
    R, KR = pyreg.regularizers, tfk.regularizers
    pairs = [
        (R.l1(), KR.l1()),
        (R.l2(), KR.l2()),
        (R.L1(), KR.L1()),
        (R.L2(), KR.L2()),
        (R.l1_l2(), KR.l1_l2()),          # function: defaults 0.01, 0.01
        (R.L1L2(), KR.L1L2()),            # class: defaults 0.0, 0.0
        (R.l1(0.01), KR.l1(0.01)),
        (R.l2(0.01), KR.l2(0.01)),
        (R.l1_l2(0.01, 0.01), KR.l1_l2(0.01, 0.01)),
        (R.l1_l2(0.02, 0.03), KR.l1_l2(0.02, 0.03)),  # positional order (l1, l2)
        (R.L1L2(0.003, 0.0), KR.L1L2(0.003, 0.0)),
        (R.L1L2(l2=0.5), KR.L1L2(l2=0.5)),
        (R.L1(l=0.05), KR.L1(l=0.05)),    # the old keyword
        (R.L2(l=0.05), KR.L2(l=0.05)),
        (R.L1(None), KR.L1(None)),
        (R.L2(None), KR.L2(None)),
        (R.get("l1"), KR.get("l1")),
        (R.get("l2"), KR.get("l2")),
        (R.get("l1_l2"), KR.get("l1_l2")),
    ]
    for ours, theirs in pairs:
        assert ours.get_config() == theirs.get_config(), (ours, theirs.get_config())
    assert R.l1_l2().get_config() == {"l1": _f32(0.01), "l2": _f32(0.01)}
    assert R.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}


def test_config_round_trip():
    R = pyreg.regularizers
    for reg in (R.l1(0.02), R.l2(0.3), R.l1_l2(0.01, 0.04), R.L1L2(0.003, 0.0)):
        again = type(reg).from_config(reg.get_config())
        assert again.get_config() == reg.get_config()
        assert R.deserialize(R.serialize(reg)).get_config() == reg.get_config()


@pytest.mark.parametrize("bad", [-0.01, -1e-30, float("nan"), float("inf"), float("-inf"), np.float32("nan")])
def test_invalid_factor_raises(bad):
    R = pyreg.regularizers
    with pytest.raises(ValueError):
        R.l1(bad)
    with pytest.raises(ValueError):
        R.l2(bad)
    with pytest.raises(ValueError):
        R.l1_l2(bad, 0.01)
    with pytest.raises(ValueError):
        R.l1_l2(0.01, bad)
    with pytest.raises(ValueError):
        R.L1L2(0.0, bad)
    with pytest.raises(ValueError):
        R.L1(l=bad)


@pytest.mark.parametrize("bad", ["0.01", [0.01], True])
def test_non_number_factor_raises(bad):
    with pytest.raises((ValueError, TypeError)):
        pyreg.regularizers.l1(bad)


def test_factor_is_float32_as_keras(tf, tfk):
    """Keras stores the factor with cast_to_floatx; so does pyreg: 0.1 is float32(0.1)."""
    reg = pyreg.regularizers.l1(0.1)
    assert reg.l1 == _f32(0.1) and reg.l1 != 0.1
    assert reg.get_config()["l1"] == tfk.regularizers.l1(0.1).get_config()["l1"]
    x = np.ones(1000, dtype=np.float32)
    assert math.isclose(reg(x), float(tfk.regularizers.l1(0.1)(tf.constant(x))), rel_tol=1e-7)
