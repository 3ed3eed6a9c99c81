"""Gradient checks independent of TensorFlow.

Each op has a NumPy float64 "twin" written here from the formulas (conv2d with
TensorFlow's padding rule, dense, activations, losses, penalties). For each op
(a) pyreg's float32 forward must match the twin (rel_err <= 1e-5), and
(b) pyreg's analytic gradient, dotted with a random direction u, must match the
central finite difference of the float64 twin along u (kann-style directional
derivative): |g.u - (f(p + h u) - f(p - h u)) / 2h| / |fd| <= 1e-4.
Points within 1e-3 of a kink (ReLU input 0, |w| at 0, clip boundaries) are
moved away before the check. Also: the raw GEMM pyreg._core.sgemm vs float64.
"""
import zlib

import numpy as np
import pytest

import pyreg
from pyreg import _core
from pyreg.testing import layer_gradients, rel_err

FWD_TOL = 1e-5
DIR_TOL = 1e-4
H = 1e-6  # finite-difference step, in float64


def _dir_check(f64, params, grads, rng, record, what, h=H):
    """Directional derivative: analytic sum_i <g_i, u_i> vs central difference
    of the float64 function f64(*params) along a random unit-scale direction."""
    params = [np.asarray(p, dtype=np.float64) for p in params]
    us = [rng.standard_normal(p.shape) for p in params]
    analytic = sum(float(np.sum(np.asarray(g, dtype=np.float64) * u)) for g, u in zip(grads, us))
    plus = f64(*[p + h * u for p, u in zip(params, us)])
    minus = f64(*[p - h * u for p, u in zip(params, us)])
    fd = (plus - minus) / (2 * h)
    err = abs(analytic - fd) / max(abs(fd), 1e-12)
    record(f"gradcheck: {what} directional rel err", err)
    assert err <= DIR_TOL, (what, analytic, fd, err)
    assert abs(fd) > 1e-8, "degenerate direction: the check would be vacuous"


def _away_from_zero(a, margin=1e-3):
    """Moves entries within margin of 0 to +-2*margin (kinks of |.| and ReLU)."""
    a = np.array(a, dtype=np.float32, copy=True)
    small = np.abs(a) < margin
    a[small] = np.where(a[small] >= 0, 2 * margin, -2 * margin).astype(np.float32)
    return a


# ================================================================ twins
def conv2d_twin(x, k, b, strides, padding):
    """Cross-correlation, NHWC, kernel (KH, KW, C, F), TensorFlow's padding:
    same: OH = ceil(H/S), pad_total = max(0, (OH-1)*S + K - H), the extra row
    or column at the bottom/right; valid: OH = ceil((H-K+1)/S)."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    n, hh, ww, c = x.shape
    kh, kw, _, f = k.shape
    sh, sw = strides
    if padding == "valid":
        oh, ow = -(-(hh - kh + 1) // sh), -(-(ww - kw + 1) // sw)
        ph = pw = 0
    else:
        oh, ow = -(-hh // sh), -(-ww // sw)
        ph, pw = max(0, (oh - 1) * sh + kh - hh), max(0, (ow - 1) * sw + kw - ww)
    xp = np.zeros((n, hh + ph, ww + pw, c))
    xp[:, ph // 2:ph // 2 + hh, pw // 2:pw // 2 + ww, :] = x
    out = np.zeros((n, oh, ow, f))
    for di in range(kh):
        for dj in range(kw):
            patch = xp[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw, :]
            out += np.einsum("nhwc,cf->nhwf", patch, k[di, dj])
    return out + (0.0 if b is None else np.asarray(b, np.float64))


def conv2d_loops(x, k, strides, padding):
    """The same by explicit loops over every output element (validates the twin)."""
    n, hh, ww, c = x.shape
    kh, kw, _, f = k.shape
    sh, sw = strides
    if padding == "valid":
        oh, ow, pt, pl = (hh - kh) // sh + 1, (ww - kw) // sw + 1, 0, 0
    else:
        oh, ow = -(-hh // sh), -(-ww // sw)
        pt = max(0, (oh - 1) * sh + kh - hh) // 2
        pl = max(0, (ow - 1) * sw + kw - ww) // 2
    out = np.zeros((n, oh, ow, f))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    for dj in range(kw):
                        r, s = i * sh + di - pt, j * sw + dj - pl
                        if 0 <= r < hh and 0 <= s < ww:
                            out[b, i, j] += x[b, r, s].astype(np.float64) @ k[di, dj].astype(np.float64)
    return out


def dense_twin(x, w, b):
    return np.asarray(x, np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64)


def act_twin(name, z):
    z = np.asarray(z, np.float64)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return z


def ce_logits_twin(z, y):
    """mean_b [logsumexp(z_b) - sum_k y_bk z_bk] (y one-hot or soft)."""
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse * y.sum(axis=1) - (y * z).sum(axis=1)))


def ce_probs_twin(p, y, eps=1e-7):
    """tf-keras: renormalise, clip to [eps, 1-eps], -sum y log."""
    p = np.asarray(p, np.float64)
    q = np.clip(p / p.sum(axis=1, keepdims=True), eps, 1 - eps)
    return float(np.mean(-(y * np.log(q)).sum(axis=1)))


def sparse_ce_probs_twin(p, labels, eps=1e-7):
    """tf-keras: c = clip(p), loss = log(sum c) - log c_y (softmax CE on log c)."""
    c = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return float(np.mean(np.log(c.sum(axis=1)) - np.log(c[np.arange(len(labels)), labels])))


def mse_twin(p, y):
    return float(np.mean(np.mean((np.asarray(p, np.float64) - y) ** 2, axis=1)))


def penalty_twin(w, l1, l2):
    w = np.asarray(w, np.float64)
    return float(np.float32(l1)) * np.abs(w).sum() + float(np.float32(l2)) * (w * w).sum()


# ================================================================ conv2d
def test_conv2d_twin_padding_rule():
    """The twin itself: TF puts the extra 'same' padding row/column at the
    bottom/right, and the einsum twin equals the explicit loops."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 4, 1))
    k = np.ones((2, 2, 1, 1))
    out = conv2d_twin(x, k, None, (1, 1), "same")[0, :, :, 0]
    xs = x[0, :, :, 0]
    assert out[3, 3] == pytest.approx(xs[3, 3])                # only the bottom-right pixel
    assert out[0, 0] == pytest.approx(xs[:2, :2].sum())        # no padding at the top/left
    for strides, padding, shape, kshape in [((1, 1), "same", (2, 5, 6, 2), (3, 2, 2, 3)),
                                            ((2, 2), "same", (1, 7, 8, 3), (4, 3, 3, 2)),
                                            ((2, 1), "valid", (2, 9, 6, 2), (3, 3, 2, 2))]:
        x = rng.standard_normal(shape)
        k = rng.standard_normal(kshape)
        np.testing.assert_allclose(conv2d_twin(x, k, None, strides, padding), conv2d_loops(x, k, strides, padding),
                                   rtol=1e-12, atol=1e-12)


CONV_CASES = [
    # (input NHWC, kernel (kh, kw), filters, strides, padding)
    ((2, 7, 7, 3), (3, 3), 4, (1, 1), "valid"),
    ((2, 8, 8, 3), (3, 3), 5, (1, 1), "same"),
    ((2, 9, 8, 2), (3, 3), 4, (2, 2), "same"),
    ((2, 9, 9, 2), (3, 3), 3, (2, 2), "valid"),
    ((1, 8, 7, 4), (2, 3), 6, (2, 1), "same"),
    ((3, 6, 6, 5), (1, 1), 2, (1, 1), "valid"),
    ((1, 12, 12, 16), (5, 5), 8, (2, 2), "same"),
    ((2, 10, 10, 1), (4, 4), 3, (1, 2), "same"),
]


@pytest.mark.parametrize("shape,ksize,filters,strides,padding", CONV_CASES)
def test_conv2d_forward_and_gradient(shape, ksize, filters, strides, padding, record):
    rng = np.random.default_rng(zlib.crc32(repr((shape, ksize, strides, padding)).encode()))
    x = rng.standard_normal(shape).astype(np.float32)
    k = (rng.standard_normal(ksize + (shape[3], filters)) / np.sqrt(np.prod(ksize) * shape[3])).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    layer = pyreg.layers.Conv2D(filters, ksize, strides=strides, padding=padding)
    layer(x[:1])
    layer.set_weights([k, b])
    ref = conv2d_twin(x, k, b, strides, padding)
    out = layer(x)
    assert out.shape == ref.shape
    assert record("gradcheck: conv2d forward vs twin", rel_err(out, ref)) <= FWD_TOL
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    _, dx, (dk, db) = layer_gradients(layer, x, dy)

    def f64(x_, k_, b_):
        return float(np.sum(conv2d_twin(x_, k_, b_, strides, padding) * dy))

    _dir_check(f64, [x, k, b], [dx, dk, db], rng, record, "conv2d")
    # and each gradient on its own (a wrong dk could hide behind a right dx)
    _dir_check(lambda k_: f64(x, k_, b), [k], [dk], rng, record, "conv2d kernel")
    _dir_check(lambda x_: f64(x_, k, b), [x], [dx], rng, record, "conv2d input")
    np.testing.assert_allclose(db, dy.astype(np.float64).sum((0, 1, 2)), rtol=1e-5, atol=1e-5)


# ================================================================ dense
@pytest.mark.parametrize("batch,n_in,n_out", [(1, 1, 1), (4, 7, 3), (5, 33, 17), (3, 300, 65)])
def test_dense_forward_and_gradient(batch, n_in, n_out, record):
    rng = np.random.default_rng(n_in * 100 + n_out)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    layer = pyreg.layers.Dense(n_out)
    layer(x[:1])
    layer.set_weights([w, b])
    assert record("gradcheck: dense forward vs twin", rel_err(layer(x), dense_twin(x, w, b))) <= FWD_TOL
    dy = rng.standard_normal((batch, n_out)).astype(np.float32)
    _, dx, (dw, db) = layer_gradients(layer, x, dy)
    _dir_check(lambda x_, w_, b_: float(np.sum(dense_twin(x_, w_, b_) * dy)), [x, w, b], [dx, dw, db], rng,
               record, "dense")
    _dir_check(lambda w_: float(np.sum(dense_twin(x, w_, b) * dy)), [w], [dw], rng, record, "dense kernel")


# ================================================================ activations
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_forward_and_gradient(name, record):
    rng = np.random.default_rng(len(name))
    z = (rng.standard_normal((6, 11)) * 3).astype(np.float32)
    if name == "relu":
        z = _away_from_zero(z)
    out = getattr(pyreg.activations, name)(z)
    assert record("gradcheck: activation forward vs twin", rel_err(out, act_twin(name, z))) <= FWD_TOL
    layer = pyreg.layers.Activation(name)
    dy = rng.standard_normal(z.shape).astype(np.float32)
    y, dz, _ = layer_gradients(layer, z, dy)
    assert rel_err(y, act_twin(name, z)) <= FWD_TOL
    _dir_check(lambda z_: float(np.sum(act_twin(name, z_) * dy)), [z], [dz], rng, record, f"activation {name}")


def test_relu_gradient_is_zero_at_zero():
    z = np.array([[-1.0, 0.0, -0.0, 1e-30, 2.0]], dtype=np.float32)
    _, dz, _ = layer_gradients(pyreg.layers.Activation("relu"), z, np.ones_like(z))
    np.testing.assert_array_equal(dz, [[0.0, 0.0, 0.0, 1.0, 1.0]])


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax"])
def test_dense_with_activation_gradient(name, record):
    """Dense + activation in one layer (the activation's backward through the
    layer's stored output)."""
    rng = np.random.default_rng(7 + len(name))
    x = rng.standard_normal((5, 9)).astype(np.float32)
    w = rng.standard_normal((9, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    if name == "relu":  # move pre-activations away from the kink via the bias
        z = dense_twin(x, w, b)
        for _ in range(100):
            if np.abs(z).min() > 1e-3:
                break
            b = (b + np.float32(0.0371)).astype(np.float32)
            z = dense_twin(x, w, b)
        assert np.abs(z).min() > 1e-3
    layer = pyreg.layers.Dense(6, activation=name)
    layer(x[:1])
    layer.set_weights([w, b])
    assert rel_err(layer(x), act_twin(name, dense_twin(x, w, b))) <= FWD_TOL
    dy = rng.standard_normal((5, 6)).astype(np.float32)
    _, dx, (dw, db) = layer_gradients(layer, x, dy)
    _dir_check(lambda x_, w_, b_: float(np.sum(act_twin(name, dense_twin(x_, w_, b_)) * dy)),
               [x, w, b], [dx, dw, db], rng, record, f"dense+{name}")


# ================================================================ losses
def _core_loss(kind, from_logits, pred, target):
    pred = np.ascontiguousarray(pred, dtype=np.float32)
    target = np.ascontiguousarray(target, dtype=np.float32)
    grad = np.empty_like(pred)
    total, correct = _core.loss(kind, from_logits, pred, target, grad)
    return total / pred.shape[0], grad, correct


def test_softmax_ce_from_logits(record):
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((7, 10)) * 4).astype(np.float32)
    z[0] += 60.0  # large logits: the twin and pyreg both shift by the max
    labels = rng.integers(0, 10, 7)
    y = np.eye(10)[labels]
    loss, g, correct = _core_loss(_core.LOSS_CATEGORICAL_CE, True, z, y)
    ref = ce_logits_twin(z, y)
    assert record("gradcheck: loss values vs twin", abs(loss - ref) / abs(ref)) <= FWD_TOL
    assert correct == int(np.sum(z.argmax(1) == labels))
    np.testing.assert_allclose(g, (act_twin("softmax", z) - y) / 7, atol=1e-7)
    _dir_check(lambda z_: ce_logits_twin(z_, y), [z], [g], rng, record, "CE from logits")
    # the same through the sparse kind
    loss_s, g_s, _ = _core_loss(_core.LOSS_SPARSE_CATEGORICAL_CE, True, z, labels.astype(np.float32))
    assert abs(loss_s - ref) / abs(ref) <= FWD_TOL
    _dir_check(lambda z_: ce_logits_twin(z_, y), [z], [g_s], rng, record, "sparse CE from logits")


def _probabilities(rng, b, d):
    p = rng.random((b, d)) + 0.05
    p[:, :] /= p.sum(axis=1, keepdims=True)
    p[1] *= 2.5            # a row that does not sum to 1 (renormalised)
    p[2, 3] = 1e-10        # clipped low, far from the clip boundary
    return p.astype(np.float32)


def test_categorical_ce_probability_path(record):
    rng = np.random.default_rng(12)
    p = _probabilities(rng, 6, 5)
    labels = rng.integers(0, 5, 6)
    labels[2] = 3          # the clipped entry is the target: loss -log(1e-7)
    y = np.eye(5)[labels]
    loss, g, _ = _core_loss(_core.LOSS_CATEGORICAL_CE, False, p, y)
    ref = ce_probs_twin(p, y)
    assert record("gradcheck: loss values vs twin", abs(loss - ref) / abs(ref)) <= FWD_TOL
    assert loss > -np.log(1e-7) / 6  # the clipped row contributes -log(eps)
    _dir_check(lambda p_: ce_probs_twin(p_, y), [p], [g], rng, record, "CE on probabilities", h=1e-8)
    # through the loss object (mean over the batch)
    assert abs(pyreg.losses.CategoricalCrossentropy()(y, p) - ref) <= FWD_TOL * ref
    per = pyreg.losses.categorical_crossentropy(y, p)
    q = np.clip(p / p.sum(1, keepdims=True), 1e-7, 1 - 1e-7).astype(np.float64)
    assert rel_err(per, -(y * np.log(q)).sum(1)) <= FWD_TOL


def test_sparse_ce_probability_path(record):
    rng = np.random.default_rng(13)
    p = _probabilities(rng, 6, 5)
    labels = rng.integers(0, 5, 6)
    labels[2] = 3
    loss, g, _ = _core_loss(_core.LOSS_SPARSE_CATEGORICAL_CE, False, p, labels.astype(np.float32))
    ref = sparse_ce_probs_twin(p, labels)
    assert record("gradcheck: loss values vs twin", abs(loss - ref) / abs(ref)) <= FWD_TOL
    _dir_check(lambda p_: sparse_ce_probs_twin(p_, labels), [p], [g], rng, record, "sparse CE on probabilities",
               h=1e-8)


def test_mse(record):
    rng = np.random.default_rng(14)
    p = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.standard_normal((5, 4)).astype(np.float32)
    loss, g, _ = _core_loss(_core.LOSS_MSE, False, p, y)
    ref = mse_twin(p, y)
    assert record("gradcheck: loss values vs twin", abs(loss - ref) / abs(ref)) <= FWD_TOL
    _dir_check(lambda p_: mse_twin(p_, y), [p], [g], rng, record, "MSE")
    assert abs(pyreg.losses.MeanSquaredError()(y, p) - ref) <= FWD_TOL * ref


# ================================================================ penalties
@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.01), (0.01, 0.01), (0.003, 0.0)])
def test_penalty_forward_and_gradient(l1, l2, record):
    rng = np.random.default_rng(int(1000 * (l1 + 2 * l2)))
    w = _away_from_zero(rng.standard_normal(5000).astype(np.float32) * 0.05)
    reg = pyreg.regularizers.L1L2(l1, l2)
    ref = penalty_twin(w, l1, l2)
    assert record("gradcheck: penalty vs twin", abs(reg(w) - ref) / ref) <= FWD_TOL
    g = reg.gradient(w)
    _dir_check(lambda w_: penalty_twin(w_, l1, l2), [w], [g], rng, record, "penalty")
    # the named constructors are the same function
    named = {(0.01, 0.0): pyreg.regularizers.l1(0.01), (0.0, 0.01): pyreg.regularizers.l2(0.01),
             (0.01, 0.01): pyreg.regularizers.l1_l2(0.01, 0.01)}.get((l1, l2))
    if named is not None:
        assert named(w) == pytest.approx(reg(w), rel=1e-12)
        np.testing.assert_array_equal(named.gradient(w), g)


# ================================================================ end to end
def _model_twin(params, x, y, kind):
    """float64 twin of Conv2D(4,3,relu,same,stride 2) -> Flatten ->
    Dense(6, relu, l1_l2) -> Dense(3, softmax) with mean CE + penalty."""
    k1, b1, w2, b2, w3, b3 = params
    h = act_twin("relu", conv2d_twin(x, k1, b1, (2, 2), "same"))
    h = act_twin("relu", dense_twin(h.reshape(h.shape[0], -1), w2, b2))
    z = dense_twin(h, w3, b3)
    if kind == "ce":
        data = ce_logits_twin(z, y)
    else:
        data = mse_twin(act_twin("softmax", z), y)
    return data + penalty_twin(w2, 0.01, 0.02)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mean_squared_error"])
def test_model_compute_gradients(loss, record):
    """Sequential.compute_gradients (fused softmax-CE, penalty, every layer's
    backward) against the float64 twin of the whole model."""
    kind = "ce" if loss == "categorical_crossentropy" else "mse"
    for seed in range(20):  # deterministic: the first seed with no ReLU input near 0
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((4, 7, 6, 2)).astype(np.float32)
        y = np.eye(3)[rng.integers(0, 3, 4)].astype(np.float32)
        params = [(rng.standard_normal(s) * sc).astype(np.float32) for s, sc in
                  [((3, 3, 2, 4), 0.4), ((4,), 0.1), ((4 * 3 * 4, 6), 0.3), ((6,), 0.3), ((6, 3), 0.8), ((3,), 0.1)]]
        params[2] = _away_from_zero(params[2])
        z1 = conv2d_twin(x, params[0], params[1], (2, 2), "same")
        h1 = np.maximum(z1, 0).reshape(4, -1)
        z2 = dense_twin(h1, params[2], params[3])
        if np.abs(z1).min() > 1e-3 and np.abs(z2).min() > 1e-3:
            break
    else:
        pytest.fail("no seed without a ReLU input near 0")
    pyreg.backend.clear_session()
    model = pyreg.Sequential([
        pyreg.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(7, 6, 2)),
        pyreg.layers.Flatten(),
        pyreg.layers.Dense(6, activation="relu", kernel_regularizer=pyreg.regularizers.l1_l2(0.01, 0.02)),
        pyreg.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss=loss)
    model.build()
    model.set_weights(params)
    value, grads = model.compute_gradients(x, y)
    ref = _model_twin(params, x, y, kind)
    assert record("gradcheck: model loss vs twin", abs(value - ref) / abs(ref)) <= FWD_TOL
    _dir_check(lambda *p: _model_twin(p, x, y, kind), params, grads, rng, record, f"model ({loss})")
    for i in range(len(params)):  # each weight's gradient on its own
        def f_i(p_i, i=i):
            ps = list(params)
            ps[i] = p_i
            return _model_twin(ps, x, y, kind)
        _dir_check(f_i, [params[i]], [grads[i]], rng, record, f"model ({loss}) per weight")


# ================================================================ GEMM
GEMM_SIZES = [(1, 1, 1), (2, 3, 4), (7, 13, 5), (17, 1, 9), (1, 31, 64), (65, 33, 129), (127, 257, 300),
              (300, 7, 513), (513, 67, 1031),
              (37, 2100, 50), (3, 2049, 385)]  # beyond the kernels' mc, kc and nc blocks


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", GEMM_SIZES)
def test_sgemm(m, n, k, trans_a, trans_b, record):
    rng = np.random.default_rng(m * 7919 + n * 31 + k + 2 * trans_a + trans_b)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    ref = a64 @ b64
    c = np.full((m, n), np.nan, dtype=np.float32)  # beta = 0: C must not be read
    _core.sgemm(a, b, c, trans_a=trans_a, trans_b=trans_b)
    assert np.isfinite(c).all()
    assert record("gradcheck: sgemm vs float64", rel_err(c, ref)) <= FWD_TOL
    # alpha and beta: C = alpha op(A) op(B) + beta C
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    _core.sgemm(a, b, c, trans_a=trans_a, trans_b=trans_b, alpha=-0.75, beta=0.5)
    assert record("gradcheck: sgemm vs float64", rel_err(c, -0.75 * ref + 0.5 * c0.astype(np.float64))) <= FWD_TOL
    # the reference kernel agrees too
    cr = np.empty((m, n), dtype=np.float32)
    _core.sgemm(a, b, cr, trans_a=trans_a, trans_b=trans_b, reference=True)
    assert rel_err(cr, ref) <= FWD_TOL


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_sgemm_every_isa(isa, record):
    if not _core.isa_supported(isa):
        pytest.skip(f"this CPU cannot run the {isa} kernel")
    before = _core.get_isa()
    rng = np.random.default_rng(5)
    try:
        _core.set_isa(isa)
        for (m, n, k) in [(7, 13, 5), (65, 33, 129), (127, 257, 300)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
                    c = np.empty((m, n), dtype=np.float32)
                    _core.sgemm(a, b, c, trans_a=ta, trans_b=tb)
                    assert record(f"gradcheck: sgemm {isa}", rel_err(c, ref)) <= FWD_TOL
    finally:
        _core.set_isa(before)


def test_sgemm_rejects_bad_shapes():
    a = np.zeros((3, 4), np.float32)
    b = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError):
        _core.sgemm(a, b, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError):
        _core.sgemm(a, np.zeros((4, 2), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(TypeError):
        _core.sgemm(a.astype(np.float64), np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32))


def test_results_do_not_depend_on_the_thread_count():
    """pyreg.h: every reduction has a fixed order, so 1 or 2 threads give
    bitwise identical results (GEMM, conv2d forward/backward, penalty)."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 700)).astype(np.float32)
    b = rng.standard_normal((700, 250)).astype(np.float32)
    x = rng.standard_normal((3, 20, 20, 8)).astype(np.float32)
    w = rng.standard_normal(3 * 10**5).astype(np.float32)
    layer = pyreg.layers.Conv2D(16, 3, padding="same")
    layer(x[:1])
    dy = rng.standard_normal((3, 20, 20, 16)).astype(np.float32)
    before = pyreg.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            pyreg.set_num_threads(n)
            c = np.empty((300, 250), np.float32)
            _core.sgemm(a, b, c)
            y, dx, (dk, db) = layer_gradients(layer, x, dy)
            results.append([c, y, dx, dk, db, np.array(pyreg.regularizers.l1_l2(0.01, 0.01)(w))])
    finally:
        pyreg.set_num_threads(before)
    for r1, r2 in zip(*results):
        np.testing.assert_array_equal(r1, r2)
