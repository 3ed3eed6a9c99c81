"""pyreg layers against tf_keras layers with the same weights (set_weights).

Forward outputs: rel_err (max |diff| / max |ref|) <= 1e-5.
Gradients w.r.t. input, kernel and bias for a random upstream gradient dy,
pyreg.testing.layer_gradients vs tf.GradientTape(output_gradients=dy): <= 1e-4.
"""
import itertools

import numpy as np
import pytest

import pyreg
from pyreg.testing import layer_gradients, rel_err

FWD_TOL = 1e-5
GRAD_TOL = 1e-4

# ---------------------------------------------------------------- Conv2D cases
# Every (kernel, strides, padding) combination once (7 x 3 x 2 = 42 cases);
# input sizes, channel pairs and activations are cycled over the cases with
# co-prime strides so that each appears with many kernels/strides/paddings.
_KERNELS = [1, 2, 3, 4, 5, (2, 3), (3, 1)]
_STRIDES = [1, 2, (1, 2)]
_PADDINGS = ["valid", "same"]
_SIZES = [(7, 7), (8, 8), (9, 9), (12, 12), (7, 12), (9, 8), (8, 7)]
_CHANNELS = [(1, 1), (3, 16), (16, 3), (1, 64), (64, 1), (3, 3), (16, 16), (64, 64), (3, 64), (64, 16), (1, 3)]
_ACTS = ["relu", "sigmoid", "tanh", "linear", None]


def _conv_cases():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(_KERNELS, _STRIDES, _PADDINGS)):
        hw = _SIZES[i % len(_SIZES)]
        cin, cout = _CHANNELS[(3 * i) % len(_CHANNELS)]
        act = _ACTS[i % len(_ACTS)]
        batch = 1 + i % 3
        cases.append((k, s, p, hw, cin, cout, act, batch))
    return cases


CONV_CASES = _conv_cases()


def _case_id(c):
    k, s, p, hw, cin, cout, act, batch = c
    return f"k{k}-s{s}-{p}-{hw[0]}x{hw[1]}-c{cin}to{cout}-{act}-b{batch}".replace(" ", "")


def test_conv_cases_cover_the_grid():
    # the parametrization itself: every requested value appears
    assert len(CONV_CASES) == 42
    assert {c[6] for c in CONV_CASES} == set(_ACTS)
    assert {c[4] for c in CONV_CASES} >= {1, 3, 16, 64} and {c[5] for c in CONV_CASES} >= {1, 3, 16, 64}
    assert {c[3][0] for c in CONV_CASES} >= {7, 8, 9, 12}
    # even and odd input sizes with every padding and a stride of 2
    for p in _PADDINGS:
        sub = [c for c in CONV_CASES if c[2] == p and c[1] == 2]
        assert {c[3][0] % 2 for c in sub} == {0, 1}


def _conv_weights(rng, k, cin, cout):
    kh, kw = (k, k) if isinstance(k, int) else k
    kernel = (rng.standard_normal((kh, kw, cin, cout)) / np.sqrt(kh * kw * cin)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    return kernel, bias


def _make_conv(tfk, case, rng):
    k, s, p, hw, cin, cout, act, batch = case
    x = rng.standard_normal((batch,) + hw + (cin,)).astype(np.float32)
    kernel, bias = _conv_weights(rng, k, cin, cout)
    klayer = tfk.layers.Conv2D(cout, k, strides=s, padding=p, activation=act)
    klayer.build((None,) + x.shape[1:])
    klayer.set_weights([kernel, bias])
    layer = pyreg.layers.Conv2D(cout, k, strides=s, padding=p, activation=act)
    layer(x[:1])  # builds and allocates
    layer.set_weights([kernel, bias])
    return layer, klayer, x


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_forward(tfk, case, rng, record):
    layer, klayer, x = _make_conv(tfk, case, rng)
    ref = klayer(x).numpy()
    out = layer(x)
    assert out.shape == ref.shape
    assert tuple(layer.output_shape) == tuple(klayer.compute_output_shape((None,) + x.shape[1:]))[1:]
    assert record("layers: conv2d forward", rel_err(out, ref)) <= FWD_TOL


def _check_conv_against_tf(tf, layer, klayer, x, rng, record):
    """pyreg's Conv2D `layer` against tf-keras's `klayer` (same weights) on x:
    output, and the gradients of input, kernel and bias for a random dy."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    dx_ref, dk_ref, db_ref = tape.gradient(yt, [xt, klayer.kernel, klayer.bias], output_gradients=tf.constant(dy))
    y, dx, (dk, db) = layer_gradients(layer, x, dy)
    assert y.shape == tuple(yt.shape)
    assert record("layers: conv2d forward", rel_err(y, yt.numpy())) <= FWD_TOL
    assert record("layers: conv2d grad input", rel_err(dx, dx_ref.numpy())) <= GRAD_TOL
    assert record("layers: conv2d grad kernel", rel_err(dk, dk_ref.numpy())) <= GRAD_TOL
    assert record("layers: conv2d grad bias", rel_err(db, db_ref.numpy())) <= GRAD_TOL


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_gradients(tf, tfk, case, rng, record):
    layer, klayer, x = _make_conv(tfk, case, rng)
    _check_conv_against_tf(tf, layer, klayer, x, rng, record)


EDGE_CASES = [
    # (input NHWC, kernel, strides, padding, filters): kernel larger than the
    # input with 'same', strides larger than the kernel, stride 3, a 1x1 input,
    # very unequal H and W, and batches that span several chunks (of the
    # input gradient with 32 channels; of im2col too with 3 channels)
    ((2, 1, 1, 2), 3, 1, "same", 3),
    ((2, 3, 3, 2), 5, 2, "same", 3),
    ((2, 5, 5, 3), 5, 1, "valid", 2),
    ((2, 10, 11, 2), 3, 3, "same", 2),
    ((2, 10, 11, 2), 3, 3, "valid", 2),
    ((2, 2, 9, 3), (1, 4), (1, 3), "same", 4),
    ((2, 6, 6, 1), 2, 4, "valid", 1),
    ((1, 300, 2, 1), 3, 1, "same", 2),
    ((5, 64, 64, 32), 3, 1, "same", 16),
    ((30, 64, 64, 3), 3, 1, "same", 4),
]


@pytest.mark.parametrize("shape,k,s,p,f", EDGE_CASES, ids=[f"{c[0]}-k{c[1]}-s{c[2]}-{c[3]}" for c in EDGE_CASES])
def test_conv2d_edge_cases(tf, tfk, rng, record, shape, k, s, p, f):
    x = rng.standard_normal(shape).astype(np.float32)
    kernel, bias = _conv_weights(rng, k, shape[3], f)
    klayer = tfk.layers.Conv2D(f, k, strides=s, padding=p)
    klayer.build((None,) + x.shape[1:])
    klayer.set_weights([kernel, bias])
    layer = pyreg.layers.Conv2D(f, k, strides=s, padding=p)
    layer(x[:1])
    layer.set_weights([kernel, bias])
    _check_conv_against_tf(tf, layer, klayer, x, rng, record)


def test_conv2d_no_bias(tf, tfk, rng):
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    kernel, _ = _conv_weights(rng, (3, 2), 3, 5)
    klayer = tfk.layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", use_bias=False, activation="tanh")
    klayer.build((None,) + x.shape[1:])
    klayer.set_weights([kernel])
    layer = pyreg.layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", use_bias=False, activation="tanh")
    layer(x[:1])
    layer.set_weights([kernel])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    dx_ref, dk_ref = tape.gradient(yt, [xt, klayer.kernel], output_gradients=tf.constant(dy))
    y, dx, (dk,) = layer_gradients(layer, x, dy)
    assert rel_err(y, yt.numpy()) <= FWD_TOL
    assert rel_err(dx, dx_ref.numpy()) <= GRAD_TOL
    assert rel_err(dk, dk_ref.numpy()) <= GRAD_TOL


# ------------------------------------------------------------------ Dense
DENSE_CASES = [
    (1, 1, "linear", 3),
    (5, 3, "relu", 4),
    (7, 1, "sigmoid", 2),
    (64, 10, "softmax", 4),
    (300, 17, "tanh", 5),
    (33, 65, "relu", 1),
    (128, 10, "softmax", 7),
    (16, 2, "softmax", 3),
    (10, 40, None, 6),
]


@pytest.mark.parametrize("n_in,units,act,batch", DENSE_CASES)
def test_dense_forward_and_gradients(tf, tfk, rng, record, n_in, units, act, batch):
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    kernel = (rng.standard_normal((n_in, units)) * 2 / np.sqrt(n_in)).astype(np.float32)
    bias = (0.3 * rng.standard_normal(units)).astype(np.float32)
    klayer = tfk.layers.Dense(units, activation=act)
    klayer.build((None, n_in))
    klayer.set_weights([kernel, bias])
    layer = pyreg.layers.Dense(units, activation=act)
    layer(x[:1])
    layer.set_weights([kernel, bias])

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
    ref = yt.numpy()
    assert record("layers: dense forward", rel_err(layer(x), ref)) <= FWD_TOL
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    dx_ref, dk_ref, db_ref = tape.gradient(yt, [xt, klayer.kernel, klayer.bias], output_gradients=tf.constant(dy))
    y, dx, (dk, db) = layer_gradients(layer, x, dy)
    assert record("layers: dense forward", rel_err(y, ref)) <= FWD_TOL
    worst = max(rel_err(dx, dx_ref.numpy()), rel_err(dk, dk_ref.numpy()), rel_err(db, db_ref.numpy()))
    assert record("layers: dense grads (x, kernel, bias)", worst) <= GRAD_TOL


# ---------------------------------------------------------------- Flatten
def test_flatten_forward_and_gradient(tf, tfk, rng):
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)  # H != W, C > 1
    klayer = tfk.layers.Flatten()
    layer = pyreg.layers.Flatten()
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
    out = layer(x)
    assert out.shape == (3, 120)
    np.testing.assert_array_equal(out, yt.numpy())  # a reshape is exact
    dy = rng.standard_normal((3, 120)).astype(np.float32)
    dx_ref = tape.gradient(yt, xt, output_gradients=tf.constant(dy)).numpy()
    _, dx, grads = layer_gradients(layer, x, dy)
    assert grads == []
    np.testing.assert_array_equal(dx, dx_ref)


def test_flatten_then_dense_predictions_match_keras(tfk, fresh, rng, record):
    """Row-major flattening over (H, W, C): a Dense after Flatten sees the same
    feature order as in Keras, so weights trained in Keras load unchanged."""
    x = rng.random((4, 7, 5, 3)).astype(np.float32)
    km = tfk.Sequential([
        tfk.layers.Conv2D(4, (2, 3), activation="relu", input_shape=(7, 5, 3)),
        tfk.layers.Flatten(),
        tfk.layers.Dense(6, activation="softmax"),
    ])
    pm = pyreg.Sequential([
        pyreg.layers.Conv2D(4, (2, 3), activation="relu", input_shape=(7, 5, 3)),
        pyreg.layers.Flatten(),
        pyreg.layers.Dense(6, activation="softmax"),
    ])
    pm.build()
    n_flat = 6 * 3 * 4
    weights = [(rng.standard_normal((2, 3, 3, 4)) * 0.5).astype(np.float32),
               (rng.standard_normal(4) * 0.1).astype(np.float32),
               (rng.standard_normal((n_flat, 6)) * 3 / np.sqrt(n_flat)).astype(np.float32),
               (rng.standard_normal(6) * 0.1).astype(np.float32)]
    km.set_weights(weights)
    pm.set_weights(weights)
    ref = km.predict(x, verbose=0)
    out = pm.predict(x, verbose=0)
    assert record("layers: conv-flatten-dense predictions", rel_err(out, ref)) <= FWD_TOL
    # the test can tell the orders apart: the same Dense kernel read in
    # (C, H, W) order instead of (H, W, C) gives clearly different predictions
    oh, ow, c = pm.layers[0].output_shape
    perm = np.arange(oh * ow * c).reshape(oh, ow, c).transpose(2, 0, 1).reshape(-1)
    chw = list(weights)
    chw[2] = weights[2][perm]
    pm.set_weights(chw)
    wrong = rel_err(pm.predict(x, verbose=0), ref)
    assert record("layers: (sensitivity) CHW-order kernel, must be large", wrong) > 1e-2


# ------------------------------------------------------------ activations
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_functions_match_tf_nn(tf, name, rng, record):
    x = np.concatenate([
        rng.standard_normal((6, 10)) * 3,
        rng.standard_normal((2, 10)) * 40,                      # saturating values
        np.array([[0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 100.0, -100.0, 15.0, -15.0]]),
    ]).astype(np.float32)
    ref = {"relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid, "tanh": tf.nn.tanh,
           "softmax": tf.nn.softmax, "linear": tf.identity}[name](x).numpy()
    out = getattr(pyreg.activations, name)(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert record("activations vs tf.nn", rel_err(out, ref)) <= FWD_TOL
    x3 = x.reshape(3, 3, 10)  # N-D: softmax over the last axis
    out3 = getattr(pyreg.activations, name)(x3)
    ref3 = {"relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid, "tanh": tf.nn.tanh,
            "softmax": tf.nn.softmax, "linear": tf.identity}[name](x3).numpy()
    assert record("activations vs tf.nn", rel_err(out3, ref3)) <= FWD_TOL
    np.testing.assert_array_equal(x3.reshape(x.shape), x)  # input not modified


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation_layer_matches_keras(tf, tfk, name, rng, record):
    x = (rng.standard_normal((4, 9)) * 4).astype(np.float32)
    klayer = tfk.layers.Activation(name)
    layer = pyreg.layers.Activation(name)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx_ref = tape.gradient(yt, xt, output_gradients=tf.constant(dy)).numpy()
    y, dx, _ = layer_gradients(layer, x, dy)
    assert record("activations vs tf.nn", rel_err(y, yt.numpy())) <= FWD_TOL
    assert record("layers: activation layer grad", rel_err(dx, dx_ref)) <= GRAD_TOL
