"""pyreg's optimizers against tf_keras's legacy optimizers on a small regularized
CNN: weights after each of 5 train_on_batch steps (rel_err per tensor
<= 1e-5) and the returned [loss, accuracy] (<= 1e-5), for legacy Adam with a
large decay, Adam(amsgrad=True), SGD with (Nesterov) momentum and decay, and
plain SGD; the two-pass API (compute_gradients + apply_gradients) gives the
weights of train_on_batch; defaults and `lr` as tf_keras."""
import warnings

import numpy as np
import pytest

import pyreg
from pyreg.testing import rel_err

W_TOL = 1e-5
LOSS_TOL = 1e-5
STEPS = 5
INPUT = (8, 8, 3)
BATCH = 6


def _keras_model(tfk, reg):
    tfk.utils.set_random_seed(7)
    return tfk.Sequential([
        tfk.layers.Conv2D(4, 3, activation="relu", input_shape=INPUT),
        tfk.layers.Flatten(),
        tfk.layers.Dense(8, activation="relu", kernel_regularizer=reg),
        tfk.layers.Dense(3, activation="softmax"),
    ])


def _reg(R, name):
    return R.l1(0.01) if name == "l1" else R.l1_l2(0.01, 0.01)


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(99)
    xs = [rng.random((BATCH,) + INPUT, dtype=np.float32) for _ in range(STEPS)]
    ys = [np.eye(3, dtype=np.float32)[rng.integers(0, 3, BATCH)] for _ in range(STEPS)]
    return xs, ys


# (id, tf_keras legacy factory, pyreg factory); the hyper-parameters are chosen
# so that each feature matters within 5 steps (decay 0.1, beta_2 0.5 for AMSGrad)
OPTIMIZERS = [
    ("adam-decay", lambda O: O.Adam(learning_rate=0.01, decay=0.1)),
    ("adam-amsgrad", lambda O: O.Adam(learning_rate=0.01, beta_2=0.5, amsgrad=True, decay=0.1)),
    ("sgd-momentum-decay", lambda O: O.SGD(learning_rate=0.05, momentum=0.9, nesterov=False, decay=0.1)),
    ("sgd-nesterov-decay", lambda O: O.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, decay=0.1)),
    ("sgd-plain", lambda O: O.SGD(learning_rate=0.1)),
]


def _pair(tfk, opt_factory, reg):
    km = _keras_model(tfk, _reg(tfk.regularizers, reg))
    pm = pyreg.interop.from_keras(km)  # same layers and weights
    km.compile(optimizer=opt_factory(tfk.optimizers.legacy), loss="categorical_crossentropy", metrics=["accuracy"])
    pm.compile(optimizer=opt_factory(pyreg.optimizers), loss="categorical_crossentropy", metrics=["accuracy"])
    return km, pm


def _assert_config_covers(ours, theirs):
    """Every key of tf-keras's get_config() is in ours, with the same value
    (floats to 1e-7)."""
    assert set(ours) >= set(theirs)
    for k, v in theirs.items():
        if isinstance(v, float):
            assert ours[k] == pytest.approx(v, rel=1e-7), k
        else:
            assert ours[k] == v, k


@pytest.mark.parametrize("reg", ["l1", "l1_l2"])
@pytest.mark.parametrize("opt_id,factory", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_train_on_batch_matches_keras(tfk, fresh, batches, record, opt_id, factory, reg):
    km, pm = _pair(tfk, factory, reg)
    # the pyreg model really is regularized as the Keras one
    assert pm.layers[2].kernel_regularizer.get_config() == km.layers[2].kernel_regularizer.get_config()
    for w0, k0 in zip(pm.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(w0, k0)
    xs, ys = batches
    for step in range(STEPS):
        k_loss, k_acc = km.train_on_batch(xs[step], ys[step])
        p_loss, p_acc = pm.train_on_batch(xs[step], ys[step])
        assert record("optimizers: train_on_batch loss", abs(p_loss - k_loss) / abs(k_loss)) <= LOSS_TOL, step
        assert record("optimizers: train_on_batch accuracy", abs(p_acc - k_acc) / max(abs(k_acc), 1e-30)) <= LOSS_TOL
        errs = [rel_err(p, k) for p, k in zip(pm.get_weights(), km.get_weights())]
        assert record(f"optimizers: weights after {STEPS} steps", max(errs)) <= W_TOL, (step, errs)
    assert pm.optimizer.iterations == int(km.optimizer.iterations.numpy()) == STEPS


def _snapshot_run(model, batches, steps=STEPS):
    xs, ys = batches
    for i in range(steps):
        model.train_on_batch(xs[i], ys[i])
    return model.get_weights()


@pytest.mark.parametrize("opt_id,factory", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_two_pass_api_equals_train_on_batch(tfk, fresh, batches, record, opt_id, factory):
    """compute_gradients then apply_gradients (the regularizer's gradient
    included by compute_gradients) == train_on_batch (fused update)."""
    km = _keras_model(tfk, tfk.regularizers.l1_l2(0.01, 0.01))
    fused = pyreg.interop.from_keras(km)
    twopass = pyreg.interop.from_keras(km)
    fused.compile(optimizer=factory(pyreg.optimizers), loss="categorical_crossentropy", metrics=["accuracy"])
    twopass.compile(optimizer=factory(pyreg.optimizers), loss="categorical_crossentropy", metrics=["accuracy"])
    xs, ys = batches
    for i in range(STEPS):
        loss_f, _ = fused.train_on_batch(xs[i], ys[i])
        loss_t, grads = twopass.compute_gradients(xs[i], ys[i])
        assert len(grads) == len(twopass.get_weights())
        twopass.apply_gradients(grads)
        assert abs(loss_t - loss_f) <= 1e-6 * abs(loss_f)
        errs = [rel_err(a, b) for a, b in zip(twopass.get_weights(), fused.get_weights())]
        assert record("optimizers: two-pass vs train_on_batch weights", max(errs)) <= 1e-6, (i, errs)
    assert twopass.optimizer.iterations == fused.optimizer.iterations == STEPS


def test_compute_gradients_matches_keras_gradients(tf, tfk, fresh, batches, record):
    km = _keras_model(tfk, tfk.regularizers.l1_l2(0.01, 0.01))
    km.compile(optimizer=tfk.optimizers.legacy.SGD(), loss="categorical_crossentropy")
    pm = pyreg.interop.from_keras(km)
    xs, ys = batches
    k_loss, k_grads = pyreg.testing.keras_gradients(km, xs[0], ys[0])
    p_loss, p_grads = pm.compute_gradients(xs[0], ys[0])
    assert abs(p_loss - k_loss) <= 1e-5 * abs(k_loss)
    for g, kg in zip(p_grads, k_grads):
        assert record("optimizers: compute_gradients vs GradientTape", rel_err(g, kg)) <= 1e-4
    # and the weights did not change
    for w, kw in zip(pm.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(w, kw)


def test_each_feature_matters(tfk, fresh, batches):
    """Sanity of the cases above: decay, momentum, Nesterov and AMSGrad each
    change the weights after 5 steps by far more than the tolerance."""
    km = _keras_model(tfk, tfk.regularizers.l1(0.01))
    O = pyreg.optimizers
    variants = {
        "adam": O.Adam(learning_rate=0.01),
        "adam-decay": O.Adam(learning_rate=0.01, decay=0.1),
        "adam-b2": O.Adam(learning_rate=0.01, beta_2=0.5, decay=0.1),
        "adam-amsgrad": O.Adam(learning_rate=0.01, beta_2=0.5, amsgrad=True, decay=0.1),
        "sgd": O.SGD(learning_rate=0.05, decay=0.1),
        "sgd-momentum": O.SGD(learning_rate=0.05, momentum=0.9, decay=0.1),
        "sgd-nesterov": O.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, decay=0.1),
    }
    out = {}
    for name, opt in variants.items():
        pm = pyreg.interop.from_keras(km)
        pm.compile(optimizer=opt, loss="categorical_crossentropy")
        out[name] = _snapshot_run(pm, batches)

    def diff(a, b):
        return max(rel_err(x, y) for x, y in zip(out[a], out[b]))

    for a, b in [("adam", "adam-decay"), ("adam-b2", "adam-amsgrad"), ("sgd", "sgd-momentum"),
                 ("sgd-momentum", "sgd-nesterov")]:
        assert diff(a, b) > 100 * W_TOL, (a, b, diff(a, b))


def test_decayed_learning_rate_schedule(tfk):
    """lr_k = lr / (1 + decay * k), k counted before the increment, in float32."""
    opt = pyreg.optimizers.Adam(learning_rate=0.01, decay=0.1)
    kopt = tfk.optimizers.legacy.Adam(learning_rate=0.01, decay=0.1)
    for k in range(6):
        opt.iterations = k
        kopt.iterations.assign(k)
        want = float(kopt._decayed_lr("float32").numpy())
        assert opt.decayed_lr() == want
        assert opt.decayed_lr() == pytest.approx(0.01 / (1 + 0.1 * k), rel=1e-6)


# ------------------------------------------------------------- defaults
def test_adam_accepts_lr_with_a_warning(tfk):
    with pytest.warns(UserWarning, match="lr"):
        opt = pyreg.optimizers.Adam(lr=1e-4, decay=1e-6)
    assert opt.learning_rate == pytest.approx(1e-4) and opt.lr == opt.learning_rate
    assert opt.decay == pytest.approx(1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kopt = tfk.optimizers.legacy.Adam(lr=1e-4, decay=1e-6)
    ours, theirs = opt.get_config(), kopt.get_config()
    _assert_config_covers(ours, theirs)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_defaults_equal_keras_legacy(tfk, name):
    ours = getattr(pyreg.optimizers, name)().get_config()
    theirs = getattr(tfk.optimizers.legacy, name)().get_config()
    _assert_config_covers(ours, theirs)
    if name == "Adam":
        assert (ours["beta_1"], ours["beta_2"], ours["epsilon"], ours["amsgrad"]) == (0.9, 0.999, 1e-7, False)
        assert ours["learning_rate"] == pytest.approx(0.001)
    else:
        assert ours["learning_rate"] == pytest.approx(0.01)
        assert (ours["momentum"], ours["nesterov"], ours["decay"]) == (0.0, False, 0.0)


def test_string_optimizers_use_defaults():
    assert isinstance(pyreg.optimizers.get("adam"), pyreg.optimizers.Adam)
    assert pyreg.optimizers.get("adam").get_config() == pyreg.optimizers.Adam().get_config()
    assert pyreg.optimizers.get("sgd").get_config() == pyreg.optimizers.SGD().get_config()


@pytest.mark.parametrize("kwargs", [dict(learning_rate=-0.1), dict(decay=-1.0), dict(learning_rate=float("nan")),
                                    dict(beta_1=1.5), dict(lr=-1.0)])
def test_invalid_hyperparameters_raise(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            pyreg.optimizers.Adam(**kwargs)


def test_from_keras_carries_the_optimizer(tfk, fresh, batches, record):
    """A compiled tf_keras model converted with from_keras trains as the original."""
    km = _keras_model(tfk, tfk.regularizers.l1(0.01))
    km.compile(optimizer=tfk.optimizers.legacy.Adam(learning_rate=0.01, decay=0.1),
               loss="categorical_crossentropy", metrics=["accuracy"])
    pm = pyreg.interop.from_keras(km)
    assert isinstance(pm.optimizer, pyreg.optimizers.Adam)
    assert pm.optimizer.decay == pytest.approx(0.1) and pm.optimizer.learning_rate == pytest.approx(0.01)
    assert pm.metrics_names == ["loss", "accuracy"]
    xs, ys = batches
    for i in range(3):
        k = km.train_on_batch(xs[i], ys[i])
        p = pm.train_on_batch(xs[i], ys[i])
        assert abs(p[0] - k[0]) <= LOSS_TOL * abs(k[0])
    assert max(rel_err(a, b) for a, b in zip(pm.get_weights(), km.get_weights())) <= W_TOL
