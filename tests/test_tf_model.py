"""Whole models against tf_keras: the tutorial's full-size model (88,914,698
parameters), fit/evaluate/predict, the losses, compare_with_keras and the
interop round trip."""
import gc
import math
import warnings

import numpy as np
import pytest

import pyreg
from pyreg.testing import rel_err

PRED_TOL = 1e-5
LOSS_TOL = 1e-5
W_TOL = 1e-5
HIST_TOL = 1e-4

# ------------------------------------------------------------ full size
N_DENSE = 26 * 26 * 128 * 1024  # the regularized kernel: 88,604,672 weights


def _tutorial_layers(L, R, reg):
    kreg = R.l1(0.01) if reg == "l1" else R.l1_l2(0.01, 0.01)
    return [
        L.Conv2D(128, (3, 3), activation="relu", input_shape=(32, 32, 3)),
        L.Conv2D(128, (3, 3), activation="relu"),
        L.Conv2D(128, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(1024, activation="relu", kernel_regularizer=kreg),
        L.Dense(10, activation="softmax"),
    ]


def _im2col_valid(a, k):
    n, h, w, c = a.shape
    oh, ow = h - k + 1, w - k + 1
    return np.concatenate([a[:, i:i + oh, j:j + ow, :] for i in range(k) for j in range(k)], axis=3)


def _col2im_valid(dcols, shape, k):
    n, h, w, c = shape
    oh, ow = h - k + 1, w - k + 1
    da = np.zeros(shape)
    for t, (i, j) in enumerate((i, j) for i in range(k) for j in range(k)):
        da[:, i:i + oh, j:j + ow, :] += dcols[..., t * c:(t + 1) * c]
    return da


def _rel_err_chunked(a, b, chunk=1 << 20):
    """rel_err (max |a - b| / max |b|) of float32 arrays without float64 copies of
    88 M elements (the float32 difference of two float32 numbers is within half
    an ulp of the exact one: enough for a relative error)."""
    a, b = np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)
    assert a.shape == b.shape
    buf = np.empty(min(chunk, a.size), np.float32)
    num = den = 0.0
    for i in range(0, a.size, chunk):
        n = min(chunk, a.size - i)
        d = np.subtract(a[i:i + n], b[i:i + n], out=buf[:n])
        num = max(num, float(np.max(np.abs(d, out=d))))
        den = max(den, float(np.max(np.abs(b[i:i + n]))))
    return num / max(den, 1e-30)


def _float64_bias_gradients(weights, x, y, masks, chunk=8192):
    """float64 gradients of the 5 biases of the tutorial model (CE from logits,
    batch mean), with the ReLU masks of a float32 forward pass (so that both
    sides agree at the kinks). Dense kernels are read in row chunks."""
    w = weights
    a = x.astype(np.float64)
    acts = []
    for li in range(3):
        k = w[2 * li].astype(np.float64)
        z = _im2col_valid(a, 3) @ k.reshape(-1, k.shape[-1]) + w[2 * li + 1]
        acts.append(a)
        a = z * masks[li]
    f = a.reshape(a.shape[0], -1)
    z4 = np.tile(w[7].astype(np.float64), (f.shape[0], 1))
    for r in range(0, f.shape[1], chunk):
        z4 += f[:, r:r + chunk] @ w[6][r:r + chunk].astype(np.float64)
    a4 = z4 * masks[3]
    z5 = a4 @ w[8].astype(np.float64) + w[9]
    p = np.exp(z5 - z5.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d5 = (p - y) / y.shape[0]
    grads = {9: d5.sum(0)}
    d4 = (d5 @ w[8].T.astype(np.float64)) * masks[3]
    grads[7] = d4.sum(0)
    df = np.empty(f.shape)
    for r in range(0, f.shape[1], chunk):
        df[:, r:r + chunk] = d4 @ w[6][r:r + chunk].T.astype(np.float64)
    d = df.reshape(a.shape) * masks[2]
    for li in (2, 1, 0):
        grads[2 * li + 1] = d.sum((0, 1, 2))
        if li:
            k = w[2 * li].astype(np.float64)
            dcols = d @ k.reshape(-1, k.shape[-1]).T
            d = _col2im_valid(dcols, acts[li].shape, 3) * masks[li - 1]
    return [grads[i] for i in (1, 3, 5, 7, 9)]


@pytest.mark.slow
@pytest.mark.parametrize("reg", ["l1", "l1_l2"])
def test_tutorial_model_full_size(tfk, reg, record):
    tfk.backend.clear_session()
    pyreg.backend.clear_session()
    tfk.utils.set_random_seed(2019)
    km = tfk.Sequential(_tutorial_layers(tfk.layers, tfk.regularizers, reg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `lr` is deprecated (in both)
        km.compile(optimizer=tfk.optimizers.legacy.Adam(lr=0.0001, decay=1e-6),
                   loss="categorical_crossentropy", metrics=["accuracy"])
    pm = pyreg.Sequential(_tutorial_layers(pyreg.layers, pyreg.regularizers, reg))
    with pytest.warns(UserWarning, match="lr"):
        opt = pyreg.optimizers.Adam(lr=0.0001, decay=1e-6)
    pm.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
    try:
        # ---- structure: parameter count and the whole summary table
        assert pm.count_params() == km.count_params() == 88_914_698
        k_lines, p_lines = [], []
        km.summary(print_fn=k_lines.append)
        pm.summary(print_fn=p_lines.append)
        k_lines = "\n".join(k_lines).split("\n")
        p_lines = "\n".join(p_lines).split("\n")
        assert len(p_lines) == len(k_lines)
        for i, (p, k) in enumerate(zip(p_lines, k_lines)):
            assert p == k, f"summary line {i}: {p!r} != {k!r}"

        # ---- same Glorot-initialised weights in both (copied from Keras)
        pm.set_weights(km.get_weights())
        rng = np.random.default_rng(3)
        B = 3
        x = rng.random((B, 32, 32, 3), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)]
        assert record("full model: predictions", rel_err(pm.predict(x, verbose=0), km.predict(x, verbose=0))) \
            <= PRED_TOL
        k_eval = km.evaluate(x, y, verbose=0)
        p_eval = pm.evaluate(x, y, verbose=0)
        assert record("full model: evaluate loss", abs(p_eval[0] - k_eval[0]) / k_eval[0]) <= LOSS_TOL
        assert p_eval[1] == pytest.approx(k_eval[1], abs=1e-6)

        # ---- magnitude: the L1 (+L2) penalty of a Glorot-uniform Dense(86528 -> 1024)
        limit = math.sqrt(6.0 / (86528 + 1024))
        expected = 0.01 * N_DENSE * limit / 2
        if reg == "l1_l2":
            expected += 0.01 * N_DENSE * limit ** 2 / 3
        assert abs(p_eval[0] - expected) <= 0.02 * expected, (p_eval[0], expected)
        assert 3600 < p_eval[0] < 3750

        # ---- float64 reference of the first Adam step for the (zero-initialised)
        # biases: step 1 is w = -alpha * m / (sqrt(v) + eps), m = 0.1 g, v = 0.001 g^2
        if reg == "l1":
            h, masks = x, []
            for layer in km.layers:
                h = layer(h)
                if layer.__class__.__name__ != "Flatten":
                    masks.append((h.numpy() > 0).astype(np.float64))
            g64 = _float64_bias_gradients(km.get_weights(), x, y, masks[:4])
            alpha = 1e-4 * math.sqrt(1 - 0.999) / (1 - 0.9)
            bias64 = [-alpha * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7) for g in g64]

        # ---- 3 training steps on the same batch
        for step in range(3):
            k_loss, k_acc = km.train_on_batch(x, y)
            p_loss, p_acc = pm.train_on_batch(x, y)
            assert record("full model: train_on_batch loss", abs(p_loss - k_loss) / k_loss) <= LOSS_TOL, step
            assert p_acc == pytest.approx(k_acc, abs=1e-6)
            errs = [_rel_err_chunked(p, k.numpy()) for p, k in zip(pm.weights, km.weights)]
            if step == 0 and reg == "l1":
                # pyreg's biases are as close to the float64 step as TF's (within 2x)
                for i, b64 in zip((1, 3, 5, 7, 9), bias64):
                    e_pr, e_tf = rel_err(pm.weights[i], b64), rel_err(km.weights[i].numpy(), b64)
                    record("full model: step-1 biases vs float64, pyreg", e_pr)
                    record("full model: step-1 biases vs float64, TF", e_tf)
                    assert e_pr <= max(2 * e_tf, 1e-6), (i, e_pr, e_tf)
            kernel_errs, bias_errs = errs[0::2], errs[1::2]
            assert record("full model: kernels after <=3 Adam steps", max(kernel_errs)) <= W_TOL, (step, errs)
            # The biases start at 0, so their reference scale after k steps is only
            # k * lr = k * 1e-4, and rel_err is dominated by elements whose gradient
            # is so small that epsilon (1e-7) dominates sqrt(v): there the Adam step
            # is proportional to g, and the float32 rounding of a tiny gradient shows
            # directly. Measured 6.5e-5 (pyreg vs TF); the float64 check above shows
            # it is TF's rounding (TF 6.3e-5 from float64, pyreg 5e-6). So 1e-5 is
            # not attainable against TF here: the ceiling is 1e-4.
            assert record("full model: biases after <=3 Adam steps", max(bias_errs)) <= 1e-4, (step, errs)
        assert pm.optimizer.iterations == 3
    finally:
        del km, pm
        tfk.backend.clear_session()
        pyreg.backend.clear_session()
        gc.collect()


# ------------------------------------------------------------ small model
def _small_layers(L, R, input_shape=(6, 6, 2), out_act="softmax", units=3, reg=True):
    return [
        L.Conv2D(3, 3, activation="relu", input_shape=input_shape),
        L.Flatten(),
        L.Dense(5, activation="relu", kernel_regularizer=R.l1_l2(0.01, 0.01) if reg else None),
        L.Dense(units, activation=out_act),
    ]


def _small_pair(tfk, out_act="softmax", loss="categorical_crossentropy", metrics=("accuracy",),
                opt=lambda O: O.Adam(learning_rate=0.01, decay=0.05), seed=11, units=3):
    tfk.utils.set_random_seed(seed)
    km = tfk.Sequential(_small_layers(tfk.layers, tfk.regularizers, out_act=out_act, units=units))
    pm = pyreg.Sequential(_small_layers(pyreg.layers, pyreg.regularizers, out_act=out_act, units=units))
    pm.build()
    pm.set_weights(km.get_weights())
    if loss is not None:
        km.compile(optimizer=opt(tfk.optimizers.legacy), loss=loss, metrics=list(metrics))
        pm.compile(optimizer=opt(pyreg.optimizers), loss=loss, metrics=list(metrics))
    return km, pm


def _data(n, seed, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 6, 2), dtype=np.float32)
    labels = rng.integers(0, classes, n)
    return x, np.eye(classes, dtype=np.float32)[labels], labels


KERAS_KEYS = ["loss", "accuracy", "val_loss", "val_accuracy"]


def _check_history(ph, kh, record):
    assert list(kh.history) == KERAS_KEYS
    assert [k for k in ph.history if k in KERAS_KEYS] == KERAS_KEYS  # same keys, same order
    assert ph.epoch == kh.epoch
    for key in KERAS_KEYS:
        assert len(ph.history[key]) == len(kh.history[key])
        for p, k in zip(ph.history[key], kh.history[key]):
            assert record("fit: History values", abs(p - k) / max(abs(k), 1e-30)) <= HIST_TOL, \
                (key, ph.history[key], kh.history[key])


def test_fit_history_with_validation_data(tfk, fresh, record):
    km, pm = _small_pair(tfk)
    x, y, _ = _data(50, seed=1)  # 50 = 3 * 16 + 2: a partial last batch
    vx, vy, _ = _data(20, seed=2)
    kh = km.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_data=(vx, vy), verbose=0)
    ph = pm.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_data=(vx, vy), verbose=0)
    _check_history(ph, kh, record)
    errs = [rel_err(a, b) for a, b in zip(pm.get_weights(), km.get_weights())]
    assert record("fit: weights after 2 epochs", max(errs)) <= W_TOL, errs
    assert pm.optimizer.iterations == int(km.optimizer.iterations.numpy()) == 8


def test_fit_history_with_validation_split(tfk, fresh, record):
    km, pm = _small_pair(tfk, opt=lambda O: O.SGD(learning_rate=0.1, momentum=0.9, decay=0.01), seed=5)
    x, y, _ = _data(50, seed=3)  # split_at = floor(50 * 0.8) = 40: train 40 (16+16+8), validate the last 10
    kh = km.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_split=0.2, verbose=0)
    ph = pm.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_split=0.2, verbose=0)
    _check_history(ph, kh, record)
    errs = [rel_err(a, b) for a, b in zip(pm.get_weights(), km.get_weights())]
    assert record("fit: weights after 2 epochs", max(errs)) <= W_TOL, errs
    assert pm.optimizer.iterations == 6


def test_evaluate_and_predict(tfk, fresh, record):
    km, pm = _small_pair(tfk, seed=21)
    x, y, _ = _data(50, seed=4)
    k = km.evaluate(x, y, verbose=0)
    p = pm.evaluate(x, y, verbose=0)
    assert isinstance(p, list) and len(p) == 2
    assert record("evaluate: [loss, acc]", abs(p[0] - k[0]) / k[0]) <= LOSS_TOL
    assert p[1] == pytest.approx(k[1], abs=1e-6)
    # batch_size not dividing N: still the sample-weighted mean
    k16 = km.evaluate(x, y, batch_size=16, verbose=0)
    p16 = pm.evaluate(x, y, batch_size=16, verbose=0)
    assert record("evaluate: [loss, acc]", abs(p16[0] - k16[0]) / k16[0]) <= LOSS_TOL
    assert p16[1] == pytest.approx(k16[1], abs=1e-6)
    # predict, default batch size 32 with N = 50 (two batches, the last partial)
    kp = km.predict(x, verbose=0)
    pp = pm.predict(x, verbose=0)
    assert pp.shape == kp.shape == (50, 3)
    assert record("predict", rel_err(pp, kp)) <= PRED_TOL
    assert rel_err(pm.predict(x[:7], verbose=0), kp[:7]) <= PRED_TOL


def test_evaluate_without_metrics_returns_a_scalar(tfk, fresh, record):
    km, pm = _small_pair(tfk, metrics=(), seed=22)
    x, y, _ = _data(37, seed=5)
    k = km.evaluate(x, y, verbose=0)
    p = pm.evaluate(x, y, verbose=0)
    assert np.isscalar(k) and np.isscalar(p) and not isinstance(p, (list, tuple))
    assert record("evaluate: [loss, acc]", abs(p - k) / k) <= LOSS_TOL
    assert pm.metrics_names == ["loss"]
    assert np.isscalar(pm.train_on_batch(x[:8], y[:8]))


# ------------------------------------------------------------ losses
def _two_steps(km, pm, x, yk, yp, record, what):
    for step in range(2):
        k = km.train_on_batch(x, yk)
        p = pm.train_on_batch(x, yp)
        k0 = k[0] if isinstance(k, list) else k
        p0 = p[0] if isinstance(p, list) else p
        assert record(f"losses: {what} loss", abs(p0 - k0) / abs(k0)) <= LOSS_TOL, (step, p0, k0)
        errs = [rel_err(a, b) for a, b in zip(pm.get_weights(), km.get_weights())]
        assert record(f"losses: {what} weights", max(errs)) <= W_TOL, (step, errs)


@pytest.mark.parametrize("label_shape", ["(N,)", "(N,1)"])
def test_sparse_categorical_crossentropy(tfk, fresh, record, label_shape):
    km, pm = _small_pair(tfk, loss="sparse_categorical_crossentropy", seed=31)
    x, _, labels = _data(12, seed=6)
    yl = labels if label_shape == "(N,)" else labels.reshape(-1, 1)
    _two_steps(km, pm, x, yl, yl, record, "sparse CE")
    k = km.evaluate(x, yl, verbose=0)
    p = pm.evaluate(x, yl, verbose=0)
    assert abs(p[0] - k[0]) <= LOSS_TOL * k[0] and p[1] == pytest.approx(k[1], abs=1e-6)


@pytest.mark.parametrize("out_act", ["linear", "softmax"])
def test_mean_squared_error(tfk, fresh, record, out_act):
    km, pm = _small_pair(tfk, out_act=out_act, loss="mean_squared_error",
                         opt=lambda O: O.SGD(learning_rate=0.5), seed=41)
    x, y, _ = _data(12, seed=7)
    _two_steps(km, pm, x, y, y, record, "MSE")


CACHED_LOGITS_CASES = [
    ("sigmoid", "categorical_crossentropy", False),
    ("sigmoid", "sparse_categorical_crossentropy", False),
    ("softmax", "categorical_crossentropy", True),
]


@pytest.mark.parametrize("out_act,loss,from_logits", CACHED_LOGITS_CASES,
                         ids=["sigmoid-CE", "sigmoid-sparseCE", "softmax-CE(from_logits=True)"])
def test_crossentropy_uses_cached_logits_as_tf(tfk, fresh, record, out_act, loss, from_logits):
    """A final sigmoid (or softmax) layer with a cross-entropy must give TF's
    numbers (pyreg's stated goal). NB: tf_keras's backend.sigmoid, like
    backend.softmax, caches `_keras_logits` on its output, and
    (sparse_)categorical_crossentropy's _get_logits uses ANY cached logits
    (whatever from_logits says; it only warns): TF computes the softmax
    cross-entropy of the pre-activation logits, not the clipped probability
    formula (sigmoid) nor a softmax of probabilities (from_logits=True)."""
    cls = {"categorical_crossentropy": "CategoricalCrossentropy",
           "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}[loss]
    km, pm = _small_pair(tfk, out_act=out_act, seed=51, loss=None)
    km.compile(optimizer=tfk.optimizers.legacy.Adam(learning_rate=0.01, decay=0.05),
               loss=getattr(tfk.losses, cls)(from_logits=from_logits), metrics=["accuracy"])
    pm.compile(optimizer=pyreg.optimizers.Adam(learning_rate=0.01, decay=0.05),
               loss=getattr(pyreg.losses, cls)(from_logits=from_logits), metrics=["accuracy"])
    x, y, labels = _data(12, seed=8)
    target = y if loss == "categorical_crossentropy" else labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TF warns for from_logits=True on a softmax output
        k = km.evaluate(x, target, verbose=0)
        p = pm.evaluate(x, target, verbose=0)
        assert record("losses: CE with cached logits (sigmoid / softmax+from_logits)",
                      abs(p[0] - k[0]) / k[0]) <= LOSS_TOL, (p, k)
        _two_steps(km, pm, x, target, target, record, "CE with cached logits")


def test_categorical_crossentropy_probability_path_in_a_model(tfk, fresh, record):
    """categorical_crossentropy on a non-softmax output that TF treats as
    probabilities (a relu output: renormalised, clipped to [1e-7, 1 - 1e-7])."""
    km, pm = _small_pair(tfk, out_act="relu", opt=lambda O: O.SGD(learning_rate=0.05), seed=61)
    w = km.get_weights()
    rng = np.random.default_rng(61)
    # columns 0 and 2 positive, column 1 exactly 0 after the relu (clipped to 1e-7)
    w[-1] = np.array([0.5, -0.5, 0.3], dtype=np.float32)
    w[-2] = np.abs(w[-2]) * np.array([1.0, -1.0, 1.0], dtype=np.float32)
    km.set_weights(w)
    pm.set_weights(w)
    x, y, _ = _data(12, seed=9)
    p = km.predict(x, verbose=0)
    assert (p[:, 1] == 0).all() and (p[:, [0, 2]] > 0.1).all()  # clipped, and not clipped
    w0 = km.get_weights()
    _two_steps(km, pm, x, y, y, record, "CE probability path")
    assert all(rel_err(a, b) > 1e-3 for a, b in zip(km.get_weights(), w0))  # every weight moved


def test_loss_functions_probability_path_match_keras(tf, tfk, record):
    """The loss functions on constant probabilities (no cached logits in TF):
    renormalisation and clipping, values and gradients."""
    rng = np.random.default_rng(71)
    p = rng.random((8, 5)).astype(np.float32) + 0.05
    p[0, 2] = 1e-9       # clipped low
    p[1] = [1e-9, 1e-9, 1.0, 1e-9, 1e-9]   # clipped high after renormalisation
    p[2] *= 3.0          # rows that do not sum to 1
    labels = rng.integers(0, 5, 8)
    labels[0] = 2
    labels[1] = 2
    y = np.eye(5, dtype=np.float32)[labels]
    for name, target in [("categorical_crossentropy", y), ("sparse_categorical_crossentropy", labels)]:
        ours = getattr(pyreg.losses, name)(target, p)
        pt = tf.Variable(p)
        with tf.GradientTape() as tape:
            per = getattr(tfk.losses, name)(tf.constant(target), pt)
            mean = tf.reduce_mean(per)
        assert record("losses: functions on probabilities", rel_err(ours, per.numpy())) <= LOSS_TOL, name
        loss_obj = pyreg.losses.get(name)
        assert abs(loss_obj(target, p) - float(mean)) <= LOSS_TOL * float(mean)
        kind = loss_obj.kind
        grad = np.zeros_like(p)
        tgt = np.ascontiguousarray(target, dtype=np.float32)
        pyreg._core.loss(kind, False, p, tgt, grad)
        assert record("losses: gradient on probabilities", rel_err(grad, tape.gradient(mean, pt).numpy())) <= 1e-4, \
            name


# ------------------------------------------------- helpers and interop
def test_compare_with_keras(tfk, fresh, record):
    km, pm = _small_pair(tfk, seed=81)
    x, y, _ = _data(10, seed=10)
    rep = pyreg.testing.compare_with_keras(pm, km, x, y)
    assert record("compare_with_keras: max_rel_grad", rep["max_rel_grad"]) <= 1e-4
    assert record("compare_with_keras: rel_loss", rep["rel_loss"]) <= 1e-5
    assert rep["max_rel_pred"] <= PRED_TOL
    assert len(rep["grad_rel_errs"]) == len(pm.get_weights())
    assert rep["loss"] == pytest.approx(rep["loss_ref"], rel=1e-5)
    # the Keras model now holds pyreg's weights
    for a, b in zip(km.get_weights(), pm.get_weights()):
        np.testing.assert_array_equal(a, b)


def _deep_layers(L, R):
    return [
        L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh", input_shape=(9, 8, 3),
                 kernel_regularizer=R.l2(0.02), bias_regularizer=R.l1(0.01)),
        L.Conv2D(5, 3, activation="relu", kernel_regularizer=R.l1_l2(0.01, 0.01)),
        L.Activation("sigmoid"),
        L.Flatten(),
        L.Dense(7, activation="relu", kernel_regularizer=R.l1(0.01), bias_regularizer=R.l2(0.05)),
        L.Dense(6),
        L.Activation("tanh"),
        L.Dense(4),
        L.Activation("softmax"),  # softmax as a separate layer: still the fused CE
    ]


def test_deep_model_every_layer_kind_and_regularizer(tfk, fresh, record):
    """Two convolutions, Activation layers, regularizers on kernels and biases,
    softmax in its own layer: gradients, losses and 3 Adam steps match TF."""
    tfk.utils.set_random_seed(17)
    km = tfk.Sequential(_deep_layers(tfk.layers, tfk.regularizers))
    pm = pyreg.Sequential(_deep_layers(pyreg.layers, pyreg.regularizers))
    pm.build()
    w = km.get_weights()
    rng = np.random.default_rng(17)
    w = [(a + 0.05 * rng.standard_normal(a.shape)).astype(np.float32) for a in w]  # nonzero biases
    km.set_weights(w)
    pm.set_weights(w)
    km.compile(optimizer=tfk.optimizers.legacy.Adam(learning_rate=0.01, decay=0.1),
               loss="categorical_crossentropy", metrics=["accuracy"])
    pm.compile(optimizer=pyreg.optimizers.Adam(learning_rate=0.01, decay=0.1),
               loss="categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((6, 9, 8, 3), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    rep = pyreg.testing.compare_with_keras(pm, km, x, y)
    assert record("compare_with_keras: max_rel_grad", rep["max_rel_grad"]) <= 1e-4, rep["grad_rel_errs"]
    assert record("compare_with_keras: rel_loss", rep["rel_loss"]) <= 1e-5
    for step in range(3):
        k = km.train_on_batch(x, y)
        p = pm.train_on_batch(x, y)
        assert record("deep model: train_on_batch loss", abs(p[0] - k[0]) / k[0]) <= LOSS_TOL
        errs = [rel_err(a, b) for a, b in zip(pm.get_weights(), km.get_weights())]
        assert record("deep model: weights after 3 Adam steps", max(errs)) <= W_TOL, (step, errs)
    k = km.evaluate(x, y, verbose=0)
    p = pm.evaluate(x, y, verbose=0)
    assert abs(p[0] - k[0]) <= LOSS_TOL * k[0] and p[1] == pytest.approx(k[1], abs=1e-6)


def test_interop_round_trip_preserves_predictions(tfk, fresh, record):
    tfk.utils.set_random_seed(91)
    km = tfk.Sequential([
        tfk.layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh", input_shape=(9, 8, 3)),
        tfk.layers.Conv2D(5, 3, activation="relu", kernel_regularizer=tfk.regularizers.l2(0.02)),
        tfk.layers.Flatten(),
        tfk.layers.Dense(7, activation="sigmoid", kernel_regularizer=tfk.regularizers.l1_l2(0.01, 0.02)),
        tfk.layers.Dense(4, activation="softmax"),
    ])
    x = np.random.default_rng(91).random((5, 9, 8, 3), dtype=np.float32)
    ref = km.predict(x, verbose=0)
    pm = pyreg.interop.from_keras(km)
    assert record("interop: predictions", rel_err(pm.predict(x, verbose=0), ref)) <= PRED_TOL
    km2 = pyreg.interop.to_keras(pm)
    out = km2.predict(x, verbose=0)
    np.testing.assert_array_equal(out, ref)  # same TF ops, same weights: bitwise
    for a, b in zip(km2.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(a, b)
    for l2, l1 in zip(km2.layers, km.layers):
        assert type(l2) is type(l1)
        c1, c2 = l1.get_config(), l2.get_config()
        for key in ("filters", "kernel_size", "strides", "padding", "units", "activation", "use_bias"):
            assert c2.get(key) == c1.get(key), key
        for key in ("kernel_regularizer", "bias_regularizer"):
            r1, r2 = getattr(l1, key, None), getattr(l2, key, None)
            assert (r1 is None) == (r2 is None)
            if r1 is not None:
                assert r2.get_config() == r1.get_config()
