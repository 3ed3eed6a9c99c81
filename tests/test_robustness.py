"""Robustness: every misuse is a clear Python exception (type and a message
naming what was expected and what was given), never a crash; odd but valid
array layouts give the same results as contiguous native copies; the user's
arrays are never modified; NaN/Inf, Ctrl-C, threads and long runs are handled.
No TensorFlow needed."""
import _thread
import gc
import os
import re
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import pyreg
from pyreg import _core, callbacks, layers, models, optimizers, regularizers

UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "") or bool(os.environ.get("PYREG_SANITIZE"))


# ----------------------------------------------------------------- helpers
def conv_model(act="relu", loss="categorical_crossentropy", optimizer=None, seed=0, input_shape=(8, 8, 3),
               compile=True):
    pyreg.utils.set_random_seed(seed)
    kw = {} if input_shape is None else {"input_shape": input_shape}
    m = models.Sequential([layers.Conv2D(4, 3, activation=act, **kw), layers.Flatten(),
                           layers.Dense(5, activation="softmax")])
    if compile:
        m.compile(optimizer or optimizers.Adam(1e-2), loss, metrics=["accuracy"])
    return m


def data(n=12, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 5, n)
    return x, (labels if sparse else pyreg.utils.to_categorical(labels, 5))


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def run(model, method, x, y):
    if method == "fit":
        return model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    if method == "evaluate":
        return model.evaluate(x, y, batch_size=4, verbose=0)
    if method == "train_on_batch":
        return model.train_on_batch(x, y)
    if method == "test_on_batch":
        return model.test_on_batch(x, y)
    if method == "predict":
        return model.predict(x, batch_size=4, verbose=0)
    raise AssertionError(method)


XY_METHODS = ["fit", "evaluate", "train_on_batch", "test_on_batch"]
ALL_METHODS = XY_METHODS + ["predict"]


@pytest.fixture
def sigint_default():
    """SIGINT raises KeyboardInterrupt, even if the runner started us with it ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture
def one_thread():
    """One kernel thread: timing-sensitive tests stay meaningful on busy machines."""
    pyreg.set_num_threads(1)
    yield
    pyreg.set_num_threads(0)


# ------------------------------------------------------ input validation
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("shape, found", [
    ((12, 8, 3), r"\(None, 8, 3\)"),                # wrong rank
    ((12, 8, 8, 3, 1), r"\(None, 8, 8, 3, 1\)"),    # wrong rank
    ((12, 9, 8, 3), r"\(None, 9, 8, 3\)"),          # wrong height
    ((12, 8, 7, 3), r"\(None, 8, 7, 3\)"),          # wrong width
    ((12, 8, 8, 4), r"\(None, 8, 8, 4\)"),          # wrong channel count
    ((12, 8, 8, 1), r"\(None, 8, 8, 1\)"),
])
def test_wrong_input_shape(method, shape, found):
    m = conv_model()
    before = m.get_weights()
    x = np.zeros(shape, np.float32)
    _, y = data()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 8, 8, 3\), found shape=" + found):
        run(m, method, x, y)
    assert same_weights(m.get_weights(), before)


@pytest.mark.parametrize("method", XY_METHODS)
def test_x_and_y_of_different_lengths(method):
    m = conv_model()
    x, y = data(12)
    with pytest.raises(ValueError, match=r"x sizes: 12, y sizes: 5"):
        run(m, method, x, y[:5])
    with pytest.raises(ValueError, match=r"x sizes: 5, y sizes: 12"):
        run(m, method, x[:5], y)


def test_validation_data_of_different_lengths_or_shapes():
    m = conv_model()
    x, y = data(12)
    with pytest.raises(ValueError, match=r"x sizes: 12, y sizes: 3"):
        m.fit(x, y, verbose=0, validation_data=(x, y[:3]))
    with pytest.raises(ValueError, match=r"expected shape=\(None, 8, 8, 3\), found shape=\(None, 8, 8, 2\)"):
        m.fit(x, y, verbose=0, validation_data=(x[..., :2], y))
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(x_val, y_val\)"):
        m.fit(x, y, verbose=0, validation_data=(x,))
    with pytest.raises(ValueError, match=r"expected validation_split in \[0, 1\), got 1.5"):
        m.fit(x, y, verbose=0, validation_split=1.5)
    assert m.optimizer.iterations == 0  # nothing trained on a refused call


@pytest.mark.parametrize("method", XY_METHODS)
def test_one_hot_targets_of_the_wrong_width(method):
    m = conv_model()
    x, _ = data(12)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: expected targets of shape \(12, 5\), "
                                         r"got \(12, 4\)"):
        run(m, method, x, np.eye(4, dtype=np.float32)[np.arange(12) % 4])
    with pytest.raises(ValueError, match=r"expected targets of shape \(12, 5\), got \(12, 5, 1\)"):
        run(m, method, x, np.zeros((12, 5, 1), np.float32))


@pytest.mark.parametrize("method", XY_METHODS)
@pytest.mark.parametrize("labels", [np.arange(12) % 5, (np.arange(12) % 5).reshape(-1, 1)])
def test_integer_labels_given_to_categorical_crossentropy(method, labels):
    m = conv_model()
    x, _ = data(12)
    with pytest.raises(ValueError, match=r"expected targets of shape \(12, 5\), got \(12(, 1)?,?\).*integer "
                                         r"labels given to categorical_crossentropy.*to_categorical"):
        run(m, method, x, labels)


@pytest.mark.parametrize("method", XY_METHODS)
@pytest.mark.parametrize("labels, given", [
    (np.arange(12), r"\[0, 11\]"),                         # out of range
    (np.full(12, 5), r"\[5, 5\]"),                         # == number of classes
    (-np.ones(12, np.int64), r"\[-1, -1\]"),               # negative
    (np.full(12, 1.5), r"\[1.5, 1.5\]"),                   # non-integer
    (np.full(12, np.nan), r"\[nan, nan\]"),                # NaN
    (np.full(12, 1e30), r"\[1e\+30, 1e\+30\]"),            # huge
    (np.full(12, 2**40, np.int64), r"\[1099511627776, 1099511627776\]"),
])
def test_bad_sparse_labels(method, labels, given):
    m = conv_model(loss="sparse_categorical_crossentropy")
    x, _ = data(12)
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: expected integer labels in \[0, 5\), "
                                         r"got values in " + given):
        run(m, method, x, labels)
    assert same_weights(m.get_weights(), before)
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(12,\) or \(12, 1\), got \(12, 5\)"):
        run(m, method, x, np.zeros((12, 5)))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_empty_arrays(method):
    m = conv_model()
    x = np.zeros((0, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match=r"x: expected at least one sample, got an empty array of shape "
                                         r"\(0, 8, 8, 3\)"):
        run(m, method, x, np.zeros((0, 5), np.float32))
    if method != "predict":
        xx, _ = data(4)
        with pytest.raises(ValueError, match=r"x sizes: 4, y sizes: 0"):
            run(m, method, xx, np.zeros((0, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected an array with a batch dimension, got a scalar"):
        run(m, method, np.array(1.0, np.float32), np.zeros((1, 5), np.float32))


def test_zero_sized_feature_dimension_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"input_shape: expected positive sizes, got \(0,\)"):
        layers.Dense(3, input_shape=(0,))
    with pytest.raises(ValueError, match=r"input_shape: expected positive sizes, got \(8, 0, 3\)"):
        layers.Conv2D(3, 3, input_shape=(8, 0, 3))


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("make, dtype", [
    (lambda x: x.astype(object), "object"),
    (lambda x: np.full(x.shape, "a"), "<U1"),
    (lambda x: x.astype(np.complex64), "complex64"),
    (lambda x: x.astype(np.complex128), "complex128"),
    (lambda x: x.astype("datetime64[s]"), r"datetime64\[s\]"),
])
def test_non_real_input_arrays(method, make, dtype):
    m = conv_model()
    x, y = data(4)
    with pytest.raises(TypeError, match=r"x: expected a real numeric array, got dtype " + dtype):
        run(m, method, make(x), y)
    if method != "predict":
        with pytest.raises(TypeError, match=r"expected numeric targets, got dtype " + dtype):
            run(m, method, x, make(y))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_not_an_array(method):
    m = conv_model()
    _, y = data(4)
    with pytest.raises(TypeError, match=r"x: expected a NumPy array, got NoneType"):
        run(m, method, None, y)
    with pytest.raises(TypeError, match=r"x: expected a NumPy array, got dict"):
        run(m, method, {"a": 1}, y)
    if method != "predict":
        with pytest.raises(TypeError, match=r"y: expected a NumPy array, got NoneType"):
            run(m, method, data(4)[0], None)


@pytest.mark.parametrize("bad", [0, -1, -32, 1.5, 2.0, "32", True, [4]])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_bad_batch_size(method, bad):
    m = conv_model()
    x, y = data(4)
    call = {"fit": lambda: m.fit(x, y, batch_size=bad, verbose=0),
            "evaluate": lambda: m.evaluate(x, y, batch_size=bad, verbose=0),
            "predict": lambda: m.predict(x, batch_size=bad, verbose=0)}[method]
    with pytest.raises(ValueError, match=r"batch_size: expected a positive integer, got " + re.escape(repr(bad))):
        call()


@pytest.mark.parametrize("bad", [-1, 1.5, "2", None])
def test_bad_epochs(bad):
    m = conv_model()
    x, y = data(4)
    with pytest.raises(ValueError, match=r"fit: expected epochs to be an integer >= 0, got " + re.escape(repr(bad))):
        m.fit(x, y, epochs=bad, verbose=0)


def test_numpy_integer_batch_size_is_fine():
    m = conv_model()
    x, y = data(4)
    m.fit(x, y, batch_size=np.int64(2), epochs=np.int32(1), verbose=0)
    assert m.optimizer.iterations == 2


# ------------------------------------------------- layers and optimizers
def test_kernel_larger_than_its_input():
    m = models.Sequential([layers.Conv2D(2, (9, 3), input_shape=(8, 8, 3))])
    with pytest.raises(ValueError, match=r"kernel \(9, 3\) is larger than its input 8x8 with padding 'valid'"):
        m.build()
    m = models.Sequential([layers.Conv2D(2, 9, padding="valid")])
    with pytest.raises(ValueError, match=r"kernel \(9, 9\) is larger than its input 8x8"):
        m.predict(np.zeros((2, 8, 8, 3), np.float32), verbose=0)
    # 'same' padding: fine
    m = models.Sequential([layers.Conv2D(2, 9, padding="same", input_shape=(8, 8, 3))])
    assert m.predict(np.zeros((2, 8, 8, 3), np.float32), verbose=0).shape == (2, 8, 8, 2)


def test_second_conv_larger_than_first_conv_output():
    m = models.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 3)), layers.Conv2D(2, 4)])
    with pytest.raises(ValueError, match=r"kernel \(4, 4\) is larger than its input 3x3"):
        m.build()


@pytest.mark.parametrize("make, match", [
    (lambda v: layers.Conv2D(v, 3), "Conv2D filters: expected a positive integer, got "),
    (lambda v: layers.Dense(v), "Dense units: expected a positive integer, got "),
    (lambda v: layers.Conv2D(2, v), "Conv2D kernel_size: expected an int or a pair of positive ints, got "),
    (lambda v: layers.Conv2D(2, 3, strides=v), "Conv2D strides: expected an int or a pair of positive ints, got "),
])
@pytest.mark.parametrize("value", [0, -1, -100])
def test_zero_or_negative_sizes(make, match, value):
    with pytest.raises(ValueError, match=match + rf"\(?{value}\b"):
        make(value)


@pytest.mark.parametrize("value", [2.5, "8", None])
def test_non_integer_units(value):
    with pytest.raises(ValueError, match=r"Dense units: expected a positive integer, got " + repr(value)):
        layers.Dense(value)
    with pytest.raises(ValueError, match=r"Conv2D filters: expected a positive integer, got " + repr(value)):
        layers.Conv2D(value, 3)


@pytest.mark.parametrize("factor, shown", [(-0.01, r"-0.01"), (float("nan"), "nan"), (float("inf"), "inf"),
                                           (-float("inf"), "-inf")])
def test_bad_regularization_factors(factor, shown):
    for make, name in [(lambda: regularizers.L1(factor), "l1"), (lambda: regularizers.L2(factor), "l2"),
                       (lambda: regularizers.L1L2(l1=factor), "l1"), (lambda: regularizers.L1L2(l2=factor), "l2"),
                       (lambda: regularizers.l1_l2(0.01, factor), "l2")]:
        with pytest.raises(ValueError, match=rf"{name}: expected a finite number >= 0, got {shown}"):
            make()
    with pytest.raises(ValueError, match=r"l1: expected a finite number >= 0, got '0.1' of type str"):
        regularizers.L1("0.1")


@pytest.mark.parametrize("make, match", [
    (lambda v: optimizers.Adam(learning_rate=v), "Adam learning_rate"),
    (lambda v: optimizers.SGD(learning_rate=v), "SGD learning_rate"),
    (lambda v: optimizers.Adam(decay=v), "Adam decay"),
    (lambda v: optimizers.SGD(decay=v), "SGD decay"),
    (lambda v: optimizers.Adam(epsilon=v), "Adam epsilon"),
    (lambda v: optimizers.Adam(beta_1=v), "Adam beta_1"),
    (lambda v: optimizers.Adam(beta_2=v), "Adam beta_2"),
    (lambda v: optimizers.SGD(momentum=v), "SGD momentum"),
])
@pytest.mark.parametrize("value, shown", [(-0.1, r"expected a value in \[0.0, .*\), got -0.1|"
                                                  r"expected a value in \[0.0, .*\], got -0.1"),
                                          (float("nan"), "expected a finite number, got nan"),
                                          (float("inf"), "expected a finite number, got inf"),
                                          (-float("inf"), "expected a finite number, got -inf"),
                                          ("0.1", "expected a finite number, got '0.1'")])
def test_bad_optimizer_hyperparameters(make, match, value, shown):
    with pytest.raises(ValueError, match=f"{match}: (?:{shown})"):
        make(value)


@pytest.mark.parametrize("value", [1.5, 2.0])
def test_betas_and_momentum_above_one(value):
    for make, name in [(lambda: optimizers.Adam(beta_1=value), "beta_1"),
                       (lambda: optimizers.Adam(beta_2=value), "beta_2"),
                       (lambda: optimizers.SGD(momentum=value), "momentum")]:
        with pytest.raises(ValueError, match=rf"{name}: expected a value in \[0.0, 1.0\], got {value}"):
            make()


def test_bad_learning_rate_assignment():
    opt = optimizers.Adam()
    for v, shown in [(-1.0, "-1.0"), (float("nan"), "nan")]:
        with pytest.raises(ValueError, match=f"Adam lr: .*got {shown}"):
            opt.lr = v
    assert opt.learning_rate == 0.001


def test_unknown_names():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adamw'"):
        conv_model(compile=False).compile("adamw", "mse")
    with pytest.raises(ValueError, match=r"Unknown loss 'hinge'"):
        conv_model(compile=False).compile("adam", "hinge")
    with pytest.raises(ValueError, match=r"Unknown regularizer 'l3'"):
        layers.Dense(3, kernel_regularizer="l3")
    with pytest.raises(ValueError, match=r"Unknown initializer 'bogus'"):
        layers.Dense(3, kernel_initializer="bogus")
    with pytest.raises(ValueError, match=r"Conv2D padding: expected 'valid' or 'same', got 'full'"):
        layers.Conv2D(3, 3, padding="full")


# ------------------------------------------------------------ set_weights
def test_set_weights_wrong_count_or_shapes_leaves_model_unchanged():
    m = conv_model()
    before = m.get_weights()
    good = [w + 1 for w in before]
    good_copy = [w.copy() for w in good]
    with pytest.raises(ValueError, match=r"weight list of length 3, but the model was expecting 4 weights"):
        m.set_weights(good[:3])
    with pytest.raises(ValueError, match=r"weight list of length 5, but the model was expecting 4 weights"):
        m.set_weights(good + [good[0]])
    # last weight wrong: nothing written, not even the first ones
    bad = good[:3] + [np.zeros(6, np.float32)]
    with pytest.raises(ValueError, match=r"set_weights: weight dense/bias expects shape \(5,\), got \(6,\)|"
                                         r"expects shape \(5,\), got \(6,\)"):
        m.set_weights(bad)
    bad = [good[0].T] + good[1:]
    with pytest.raises(ValueError, match=r"expects shape \(3, 3, 3, 4\), got \(4, 3, 3, 3\)"):
        m.set_weights(bad)
    bad = good[:3] + [np.array(["a"] * 5)]
    with pytest.raises(TypeError, match=r"expects a real array, got dtype <U1"):
        m.set_weights(bad)
    bad = good[:3] + [np.zeros(5, complex)]
    with pytest.raises(TypeError, match=r"expects a real array, got dtype complex128"):
        m.set_weights(bad)
    assert same_weights(m.get_weights(), before)
    assert same_weights(good, good_copy)  # inputs not modified
    m.set_weights(good)
    assert same_weights(m.get_weights(), good)
    assert same_weights(good, good_copy)


def test_set_weights_accepts_odd_layouts_without_modifying_them():
    m = conv_model()
    ws = [w + 0.5 for w in m.get_weights()]
    odd = [np.asfortranarray(ws[0]).astype(">f8"), ws[1][::-1][::-1], ws[2].copy(), ws[3].astype(np.float64)]
    odd[2].setflags(write=False)
    copies = [o.copy() for o in odd]
    m.set_weights(odd)
    assert same_weights(m.get_weights(), ws)
    assert all(np.array_equal(o, c) and o.dtype == c.dtype for o, c in zip(odd, copies))


# ------------------------------------------------------ build and compile
@pytest.mark.parametrize("call", [
    lambda m: m.summary(print_fn=lambda s: None),
    lambda m: m.get_weights(),
    lambda m: m.weights,
    lambda m: m.count_params(),
    lambda m: m.set_weights([]),
    lambda m: m.output_shape,
])
def test_unbuilt_model_without_input_shape(call):
    m = conv_model(input_shape=None, compile=False)
    with pytest.raises(ValueError, match=r"this model has not yet been built.*input_shape"):
        call(m)


def test_empty_model():
    m = models.Sequential()
    with pytest.raises(ValueError, match="not yet been built|no layers"):
        m.predict(np.zeros((2, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="no layers"):
        m.build((None, 3))


def test_predict_before_build_builds_from_the_data():
    """As Keras's Sequential without an input shape: the first call builds."""
    m = conv_model(input_shape=None, compile=False)
    assert not m.built
    x, _ = data(3)
    assert m.predict(x, verbose=0).shape == (3, 5)
    assert m.built and m.input_shape == (None, 8, 8, 3)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 8, 8, 3\), found shape=\(None, 9, 9, 3\)"):
        m.predict(np.zeros((3, 9, 9, 3), np.float32), verbose=0)


def test_failed_first_call_does_not_poison_an_unbuilt_model():
    """Data of the wrong rank on the very first call must not fix the model's
    input shape: a second call with good data then works (as in Keras)."""
    m = conv_model(input_shape=None, compile=False)
    with pytest.raises(ValueError, match=r"expected input of rank 4 .*got shape \(None, 10\)"):
        m.predict(np.zeros((2, 10), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"kernel \(3, 3\) is larger than its input 2x2"):
        m.predict(np.zeros((2, 2, 2, 3), np.float32), verbose=0)
    assert m.predict(data(2)[0], verbose=0).shape == (2, 5)


def test_failed_build_of_a_later_layer_can_be_retried():
    m = models.Sequential([layers.Conv2D(2, 3), layers.Conv2D(2, 5)])
    with pytest.raises(ValueError, match=r"kernel \(5, 5\) is larger than its input 4x4"):
        m.build((None, 6, 6, 1))
    m.build((None, 12, 12, 1))
    assert m.output_shape == (None, 6, 6, 2)


@pytest.mark.parametrize("method", XY_METHODS)
def test_fit_or_evaluate_before_compile(method):
    m = conv_model(compile=False)
    x, y = data(4)
    with pytest.raises(RuntimeError, match=r"You must compile your model before training/testing"):
        run(m, method, x, y)
    with pytest.raises(RuntimeError, match=r"compile the model first"):
        m.apply_gradients([np.zeros_like(w) for w in m.get_weights()])


def test_compile_errors():
    m = conv_model(compile=False)
    with pytest.raises(ValueError, match=r"compile: a loss is required"):
        m.compile("adam")
    with pytest.raises(ValueError, match=r"compile: unsupported metric 'auc'"):
        m.compile("adam", "mse", metrics=["auc"])
    assert not m.compiled


# ------------------------------------------------- the C core, called directly
def f32(*shape):
    return np.zeros(shape, np.float32)


def ro(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def noncontig(*shape):
    big = np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)
    return big[..., ::2]


SGD_MOM = dict(lr=0.1, mom=0.9)
CORE_CASES = [
    # dense
    ("dense f64 input", lambda: _core.dense_forward(f32(2, 3).astype(np.float64), f32(3, 4), None, f32(2, 4)),
     TypeError, r"dense input: expected dtype float32, got float64"),
    ("dense int32 kernel", lambda: _core.dense_forward(f32(2, 3), np.zeros((3, 4), np.int32), None, f32(2, 4)),
     TypeError, r"dense kernel: expected dtype float32, got int32"),
    ("dense list", lambda: _core.dense_forward([[1.0, 2.0, 3.0]], f32(3, 4), None, f32(1, 4)),
     TypeError, r"dense input: expected a numpy.ndarray, got list"),
    ("dense None input", lambda: _core.dense_forward(None, f32(3, 4), None, f32(2, 4)),
     TypeError, r"dense input: expected a numpy.ndarray, got NoneType"),
    ("dense None output", lambda: _core.dense_forward(f32(2, 3), f32(3, 4), None, None),
     TypeError, r"dense output: expected a numpy.ndarray, got NoneType"),
    ("dense non-contiguous", lambda: _core.dense_forward(noncontig(2, 3), f32(3, 4), None, f32(2, 4)),
     ValueError, r"dense input: expected a C-contiguous, aligned, native-endian array"),
    ("dense fortran kernel", lambda: _core.dense_forward(f32(2, 3), np.asfortranarray(f32(3, 4)), None, f32(2, 4)),
     ValueError, r"dense kernel: expected a C-contiguous"),
    ("dense big-endian", lambda: _core.dense_forward(f32(2, 3).astype(">f4"), f32(3, 4), None, f32(2, 4)),
     ValueError, r"dense input: expected a C-contiguous, aligned, native-endian array"),
    ("dense read-only output", lambda: _core.dense_forward(f32(2, 3), f32(3, 4), None, ro(f32(2, 4))),
     ValueError, r"dense output: expected a writeable array"),
    ("dense rank", lambda: _core.dense_forward(f32(2, 3, 1), f32(3, 4), None, f32(2, 4)),
     ValueError, r"dense input: expected 2 dimensions, got 3"),
    ("dense inner", lambda: _core.dense_forward(f32(2, 3), f32(4, 4), None, f32(2, 4)),
     ValueError, r"dense input: expected shape \(2, 4\), got \(2, 3\)"),
    ("dense out shape", lambda: _core.dense_forward(f32(2, 3), f32(3, 4), None, f32(2, 5)),
     ValueError, r"dense output: expected shape \(2, 4\), got \(2, 5\)"),
    ("dense bias shape", lambda: _core.dense_forward(f32(2, 3), f32(3, 4), f32(5), f32(2, 4)),
     ValueError, r"dense bias: expected shape \(4\), got \(5\)"),
    ("dense zero inputs", lambda: _core.dense_forward(f32(2, 0), f32(0, 4), None, f32(2, 4)),
     ValueError, r"dense_forward: invalid argument"),
    ("dense_backward dx shape",
     lambda: _core.dense_backward(f32(2, 4), f32(2, 3), f32(3, 4), f32(3, 3), f32(3, 4), f32(4)),
     ValueError, r"dense input gradient: expected shape \(2, 3\), got \(3, 3\)"),
    ("dense_backward read-only dw",
     lambda: _core.dense_backward(f32(2, 4), f32(2, 3), f32(3, 4), None, ro(f32(3, 4)), None),
     ValueError, r"dense kernel gradient: expected a writeable array"),
    ("dense_backward dout shape",
     lambda: _core.dense_backward(f32(2, 5), f32(2, 3), f32(3, 4), None, f32(3, 4), None),
     ValueError, r"dense output gradient: expected shape \(2, 4\), got \(2, 5\)"),
    ("dense_backward db shape",
     lambda: _core.dense_backward(f32(2, 4), f32(2, 3), f32(3, 4), None, None, f32(3)),
     ValueError, r"dense bias gradient: expected shape \(4\), got \(3\)"),
    # conv2d
    ("conv channels", lambda: _core.conv2d_forward(f32(1, 5, 5, 3), f32(3, 3, 2, 4), None, f32(1, 3, 3, 4), 1, 1, 0),
     ValueError, r"conv2d: input has 3 channels but the kernel expects 2"),
    ("conv kernel too big", lambda: _core.conv2d_forward(f32(1, 2, 5, 2), f32(3, 3, 2, 4), None, f32(1, 1, 3, 4),
                                                          1, 1, 0),
     ValueError, r"conv2d: cannot convolve input \(1, 2, 5, 2\) with kernel \(3, 3, 2, 4\), strides \(1, 1\), "
                 r"padding 'valid'"),
    ("conv stride 0", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, f32(1, 3, 3, 4), 0, 1, 0),
     ValueError, r"strides \(0, 1\)"),
    ("conv stride negative",
     lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, f32(1, 3, 3, 4), 1, -2, 1),
     ValueError, r"strides \(1, -2\), padding 'same'"),
    ("conv stride overflow",
     lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, f32(1, 3, 3, 4), 2**40, 1, 1),
     OverflowError, r"signed integer is greater than maximum"),
    ("conv zero height", lambda: _core.conv2d_forward(f32(1, 0, 5, 2), f32(3, 3, 2, 4), None, f32(1, 0, 5, 4),
                                                       1, 1, 1),
     ValueError, r"cannot convolve input \(1, 0, 5, 2\)"),
    ("conv zero filters", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 0), None, f32(1, 3, 3, 0),
                                                        1, 1, 0),
     ValueError, r"cannot convolve .* kernel \(3, 3, 2, 0\)"),
    ("conv output shape", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, f32(1, 5, 5, 4),
                                                        1, 1, 0),
     ValueError, r"conv2d output: expected shape \(1, 3, 3, 4\), got \(1, 5, 5, 4\)"),
    ("conv bias shape", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), f32(3), f32(1, 3, 3, 4),
                                                      1, 1, 0),
     ValueError, r"conv2d bias: expected shape \(4\), got \(3\)"),
    ("conv rank", lambda: _core.conv2d_forward(f32(5, 5, 2), f32(3, 3, 2, 4), None, f32(1, 3, 3, 4), 1, 1, 0),
     ValueError, r"conv2d input: expected 4 dimensions, got 3"),
    ("conv uint8", lambda: _core.conv2d_forward(np.zeros((1, 5, 5, 2), np.uint8), f32(3, 3, 2, 4), None,
                                                 f32(1, 3, 3, 4), 1, 1, 0),
     TypeError, r"conv2d input: expected dtype float32, got uint8"),
    ("conv non-contiguous", lambda: _core.conv2d_forward(noncontig(1, 5, 5, 2), f32(3, 3, 2, 4), None,
                                                          f32(1, 3, 3, 4), 1, 1, 0),
     ValueError, r"conv2d input: expected a C-contiguous"),
    ("conv read-only output", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None,
                                                            ro(f32(1, 3, 3, 4)), 1, 1, 0),
     ValueError, r"conv2d output: expected a writeable array"),
    ("conv None kernel", lambda: _core.conv2d_forward(f32(1, 5, 5, 2), None, None, f32(1, 3, 3, 4), 1, 1, 0),
     TypeError, r"conv2d kernel: expected a numpy.ndarray, got NoneType"),
    ("conv_backward dout shape",
     lambda: _core.conv2d_backward(f32(1, 3, 3, 5), f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, None, None, 1, 1, 0),
     ValueError, r"conv2d output gradient: expected shape \(1, 3, 3, 4\), got \(1, 3, 3, 5\)"),
    ("conv_backward dx shape",
     lambda: _core.conv2d_backward(f32(1, 3, 3, 4), f32(1, 5, 5, 2), f32(3, 3, 2, 4), f32(1, 5, 5, 3), None, None,
                                   1, 1, 0),
     ValueError, r"conv2d input gradient: expected shape \(1, 5, 5, 2\), got \(1, 5, 5, 3\)"),
    ("conv_backward read-only dkernel",
     lambda: _core.conv2d_backward(f32(1, 3, 3, 4), f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, ro(f32(3, 3, 2, 4)),
                                   None, 1, 1, 0),
     ValueError, r"conv2d kernel gradient: expected a writeable array"),
    ("conv_backward dbias shape",
     lambda: _core.conv2d_backward(f32(1, 3, 3, 4), f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, None, f32(2, 2),
                                   1, 1, 0),
     ValueError, r"conv2d bias gradient: expected 1 dimensions, got 2"),
    # activations
    ("activation kind", lambda: _core.activation_forward(7, f32(2, 3), f32(2, 3)),
     ValueError, r"activation_forward: expected a kind in \[0, 4\], got 7"),
    ("activation shape", lambda: _core.activation_forward(1, f32(2, 3), f32(3, 2)),
     ValueError, r"activation output: expected shape \(2, 3\), got \(3, 2\)"),
    ("activation read-only", lambda: _core.activation_forward(1, f32(2, 3), ro(f32(2, 3))),
     ValueError, r"activation output: expected a writeable array"),
    ("activation_backward kind", lambda: _core.activation_backward(-1, f32(2, 3), f32(2, 3), f32(2, 3)),
     ValueError, r"activation_backward: expected a kind in \[0, 4\], got -1"),
    ("activation_backward shape", lambda: _core.activation_backward(2, f32(2, 3), f32(2, 4), f32(2, 3)),
     ValueError, r"activation output gradient: expected shape \(2, 3\), got \(2, 4\)"),
    # losses
    ("loss kind", lambda: _core.loss(9, False, f32(2, 3), f32(2, 3), None),
     ValueError, r"loss: expected a kind in \[0, 2\], got 9"),
    ("loss prediction rank", lambda: _core.loss(0, False, f32(2, 3, 1), f32(2, 3), None),
     ValueError, r"loss prediction: expected 2 dimensions, got 3"),
    ("loss target shape", lambda: _core.loss(0, False, f32(2, 3), f32(2, 4), None),
     ValueError, r"loss target: expected shape \(2, 3\), got \(2, 4\)"),
    ("loss sparse target rank", lambda: _core.loss(1, False, f32(2, 3), f32(2, 3), None),
     ValueError, r"loss target: expected 1 dimensions, got 2"),
    ("loss sparse label out of range", lambda: _core.loss(1, True, f32(2, 3), np.array([0, 3], np.float32), None),
     ValueError, r"sparse_categorical_crossentropy: expected integer labels in \[0, 3\), got a label outside"),
    ("loss sparse label NaN", lambda: _core.loss(1, True, f32(2, 3), np.array([0, np.nan], np.float32), None),
     ValueError, r"expected integer labels in \[0, 3\)"),
    ("loss sparse label negative", lambda: _core.loss(1, False, f32(2, 3), np.array([-1, 0], np.float32), None),
     ValueError, r"expected integer labels in \[0, 3\)"),
    ("loss sparse label fractional", lambda: _core.loss(1, False, f32(2, 3), np.array([0.5, 0], np.float32), None),
     ValueError, r"expected integer labels in \[0, 3\)"),
    ("loss zero columns", lambda: _core.loss(2, False, f32(2, 0), f32(2, 0), None),
     ValueError, r"loss: predictions have 0 columns"),
    ("loss gradient read-only", lambda: _core.loss(0, False, f32(2, 3), f32(2, 3), ro(f32(2, 3))),
     ValueError, r"loss gradient: expected a writeable array"),
    ("loss gradient shape", lambda: _core.loss(0, False, f32(2, 3), f32(2, 3), f32(3, 3)),
     ValueError, r"loss gradient: expected shape \(2, 3\), got \(3, 3\)"),
    ("count_correct shape", lambda: _core.count_correct(f32(2, 3), f32(3), True),
     ValueError, r"target: expected shape \(2\), got \(3\)"),
    # regularizers
    ("reg_penalty NaN", lambda: _core.reg_penalty(f32(3), float("nan"), 0.0),
     ValueError, r"l1: expected a finite factor >= 0, got nan"),
    ("reg_penalty negative", lambda: _core.reg_penalty(f32(3), 0.0, -0.5),
     ValueError, r"l2: expected a finite factor >= 0, got -0.5"),
    ("reg_penalty inf", lambda: _core.reg_penalty(f32(3), float("inf"), 0.0),
     ValueError, r"l1: expected a finite factor >= 0, got inf"),
    ("reg_penalty f64", lambda: _core.reg_penalty(np.zeros(3), 0.1, 0.0),
     TypeError, r"regularized weights: expected dtype float32, got float64"),
    ("reg_backward read-only", lambda: _core.reg_backward(ro(f32(3)), f32(3), 0.1, 0.1),
     ValueError, r"gradient: expected a writeable array"),
    ("reg_backward shape", lambda: _core.reg_backward(f32(3), f32(4), 0.1, 0.1),
     ValueError, r"gradient: expected shape \(4\), got \(3\)"),
    ("soft_threshold negative", lambda: _core.soft_threshold(f32(3), -1.0),
     ValueError, r"threshold: expected a finite factor >= 0, got -1"),
    ("soft_threshold read-only", lambda: _core.soft_threshold(ro(f32(3)), 0.1),
     ValueError, r"weights: expected a writeable array"),
    # optimizers
    ("adam t=0", lambda: _core.adam_update(f32(3), f32(3), f32(3), f32(3), None, 0.1, 0.9, 0.99, 1e-7, 0, False,
                                           0.0, 0.0),
     ValueError, r"adam_update: expected step t >= 1, got 0"),
    ("adam amsgrad without vhat", lambda: _core.adam_update(f32(3), f32(3), f32(3), f32(3), None, 0.1, 0.9, 0.99,
                                                            1e-7, 1, True, 0.0, 0.0),
     ValueError, r"adam_update: amsgrad needs vhat"),
    ("adam m shape", lambda: _core.adam_update(f32(3), f32(3), f32(4), f32(3), None, 0.1, 0.9, 0.99, 1e-7, 1,
                                               False, 0.0, 0.0),
     ValueError, r"adam m: expected shape \(3\), got \(4\)"),
    ("adam read-only weights", lambda: _core.adam_update(ro(f32(3)), f32(3), f32(3), f32(3), None, 0.1, 0.9, 0.99,
                                                         1e-7, 1, False, 0.0, 0.0),
     ValueError, r"weights: expected a writeable array"),
    ("adam negative l1", lambda: _core.adam_update(f32(3), f32(3), f32(3), f32(3), None, 0.1, 0.9, 0.99, 1e-7, 1,
                                                   False, -1.0, 0.0),
     ValueError, r"l1: expected a finite factor >= 0, got -1"),
    ("adam too few args", lambda: _core.adam_update(f32(3), f32(3)),
     TypeError, r"adam_update"),
    ("sgd momentum without buffer", lambda: _core.sgd_update(f32(3), f32(3), None, 0.1, 0.9, False, 0.0, 0.0),
     ValueError, r"sgd_update: momentum needs a buffer"),
    ("sgd buffer shape", lambda: _core.sgd_update(f32(3), f32(3), f32(2), 0.1, 0.9, False, 0.0, 0.0),
     ValueError, r"momentum buffer: expected shape \(3\), got \(2\)"),
    ("sgd gradient dtype", lambda: _core.sgd_update(f32(3), np.zeros(3, np.float16), None, 0.1, 0.0, False, 0.0,
                                                    0.0),
     TypeError, r"gradient: expected dtype float32, got another dtype"),
    # data path
    ("gather out of range", lambda: _core.gather_rows(f32(3, 2), np.array([0, 5]), f32(2, 2)),
     IndexError, r"gather_rows: an index is outside \[0, 3\)"),
    ("gather negative", lambda: _core.gather_rows(f32(3, 2), np.array([-1]), f32(1, 2)),
     IndexError, r"gather_rows: an index is outside \[0, 3\)"),
    ("gather int32 indices", lambda: _core.gather_rows(f32(3, 2), np.array([0], np.int32), f32(1, 2)),
     ValueError, r"gather_rows: indices must be a contiguous 1-D int64 array"),
    ("gather object source", lambda: _core.gather_rows(np.zeros((3, 2), object), np.array([0]), f32(1, 2)),
     TypeError, r"gather_rows: unsupported source dtype"),
    ("gather non-contiguous source", lambda: _core.gather_rows(noncontig(3, 2), np.array([0]), f32(1, 2)),
     ValueError, r"gather_rows: source must be a C-contiguous native-endian array"),
    ("gather big-endian source", lambda: _core.gather_rows(f32(3, 2).astype(">f8"), np.array([0]), f32(1, 2)),
     ValueError, r"gather_rows: source must be a C-contiguous native-endian array"),
    ("gather wrong batch", lambda: _core.gather_rows(f32(3, 2), np.array([0, 1]), f32(2, 3)),
     ValueError, r"gather_rows: batch must have 2 rows of 2 values"),
    ("gather read-only batch", lambda: _core.gather_rows(f32(3, 2), np.array([0]), ro(f32(1, 2))),
     ValueError, r"batch: expected a writeable array"),
    ("gather None", lambda: _core.gather_rows(None, np.array([0]), f32(1, 2)),
     TypeError, r"gather_rows: expected numpy arrays"),
    ("gather empty source", lambda: _core.gather_rows(f32(0, 2), np.array([0]), f32(1, 2)),
     ValueError, r"gather_rows: batch must have 1 rows of 0 values"),
    # gemm and runtime
    ("sgemm inner", lambda: _core.sgemm(f32(2, 3), f32(4, 5), f32(2, 5)),
     ValueError, r"sgemm: inner dimensions differ: op\(a\) is \(2, 3\), op\(b\) is \(4, 5\)"),
    ("sgemm c shape", lambda: _core.sgemm(f32(2, 3), f32(3, 5), f32(5, 2)),
     ValueError, r"sgemm c: expected shape \(2, 5\), got \(5, 2\)"),
    ("sgemm read-only c", lambda: _core.sgemm(f32(2, 3), f32(3, 5), ro(f32(2, 5))),
     ValueError, r"sgemm c: expected a writeable array"),
    ("sgemm rank", lambda: _core.sgemm(f32(3), f32(3, 5), f32(1, 5)),
     ValueError, r"sgemm a: expected 2 dimensions, got 1"),
    ("set_num_threads negative", lambda: _core.set_num_threads(-1),
     ValueError, r"set_num_threads: expected n in \[0, 1024\] \(0 = default\), got -1"),
    ("set_num_threads absurd", lambda: _core.set_num_threads(100000),
     ValueError, r"set_num_threads: expected n in \[0, 1024\] \(0 = default\), got 100000"),
    ("set_num_threads str", lambda: _core.set_num_threads("4"), TypeError, r"integer"),
    ("set_isa unknown", lambda: _core.set_isa("sse9"),
     ValueError, r"set_isa: expected one of 'generic', 'avx2', 'avx512' supported by this CPU, got 'sse9'"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CORE_CASES], ids=[c[0] for c in CORE_CASES])
def test_core_argument_checks(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
    assert _core.get_num_threads() >= 1  # still alive and sane


def test_core_valid_edge_cases_do_not_crash():
    _core.conv2d_forward(f32(0, 5, 5, 2), f32(3, 3, 2, 4), None, f32(0, 3, 3, 4), 1, 1, 0)  # empty batch
    dk, db = np.full((3, 3, 2, 4), 7, np.float32), np.full(4, 7, np.float32)
    _core.conv2d_backward(f32(0, 3, 3, 4), f32(0, 5, 5, 2), f32(3, 3, 2, 4), f32(0, 5, 5, 2), dk, db, 1, 1, 0)
    assert not dk.any() and not db.any()  # overwritten with zeros
    out = f32(1, 1, 1, 4)
    _core.conv2d_forward(f32(1, 5, 5, 2), f32(3, 3, 2, 4), None, out, 2**31 - 1, 2**31 - 1, 1)  # huge strides
    _core.dense_forward(f32(0, 3), f32(3, 4), None, f32(0, 4))
    assert _core.loss(0, True, f32(0, 3), f32(0, 3), None) == (0.0, 0)
    _core.activation_forward(4, np.array(1.0, np.float32), np.array(1.0, np.float32))
    _core.sgemm(f32(0, 3), f32(3, 5), f32(0, 5))
    c = np.full((2, 5), np.nan, np.float32)
    _core.sgemm(f32(2, 0), f32(0, 5), c)
    assert not c.any()  # K = 0: C = 0 * ... (beta 0)
    _core.gather_rows(f32(3, 2), np.zeros(0, np.int64), f32(0, 2))


# --------------------------------------------- array layouts and copies
LAYOUTS = {
    "reversed view": lambda a: a[::-1].copy()[::-1],
    "strided rows": lambda a: np.repeat(a, 2, axis=0)[::2],
    "strided columns": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "fortran": np.asfortranarray,
    "read-only": lambda a: ro(a),
    "big-endian f4": lambda a: a.astype(">f4"),
    "big-endian f8": lambda a: a.astype(">f8"),
    "float64": lambda a: a.astype(np.float64),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_odd_layouts_give_the_same_results(layout):
    make = LAYOUTS[layout]
    x, y = data(12)
    vx, vy = data(8, seed=1)
    assert not np.shares_memory(make(x), x)
    results = []
    for transform in (lambda a: a, make):
        xx, yy, vxx, vyy = transform(x), transform(y), transform(vx), transform(vy)
        copies = [a.copy() for a in (xx, yy, vxx, vyy)]
        flags = [a.flags.writeable for a in (xx, yy, vxx, vyy)]
        m = conv_model(seed=3)
        h = m.fit(xx, yy, batch_size=5, epochs=2, shuffle=False, verbose=0, validation_data=(vxx, vyy))
        r = {"hist": h.history, "w": m.get_weights(), "pred": m.predict(xx, batch_size=5, verbose=0),
             "eval": m.evaluate(vxx, vyy, batch_size=3, verbose=0), "tob": m.train_on_batch(xx, yy),
             "tob_w": m.get_weights(), "sparse": None}
        ms = conv_model(seed=4, loss="sparse_categorical_crossentropy")
        labels = transform(np.argmax(y, axis=1).astype(np.float64 if layout == "float64" else np.int64))
        lcopy = labels.copy()
        ms.fit(xx, labels, batch_size=4, shuffle=False, verbose=0)
        r["sparse"] = ms.get_weights()
        results.append(r)
        for a, c, w in zip((xx, yy, vxx, vyy), copies, flags):  # never modified
            assert a.dtype == c.dtype and np.array_equal(a, c) and a.flags.writeable == w
        assert np.array_equal(labels, lcopy)
    ref, got = results
    assert got["hist"] == ref["hist"]
    assert same_weights(got["w"], ref["w"]) and same_weights(got["tob_w"], ref["tob_w"])
    assert np.array_equal(got["pred"], ref["pred"])
    assert got["eval"] == ref["eval"] and got["tob"] == ref["tob"]
    assert same_weights(got["sparse"], ref["sparse"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.float16, np.int8, np.uint16, bool])
def test_integer_and_small_dtypes_match_float32(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2 if dtype is bool else 100, (6, 8, 8, 3)).astype(dtype)
    m = conv_model()
    xc = x.copy()
    p = m.predict(x, verbose=0)
    assert np.array_equal(x, xc)
    np.testing.assert_array_equal(p, m.predict(x.astype(np.float32), verbose=0))


def test_lists_are_accepted():
    m = conv_model()
    x, y = data(4)
    np.testing.assert_array_equal(m.predict(x.tolist(), verbose=0), m.predict(x, verbose=0))
    m.fit(x.tolist(), y.tolist(), verbose=0)


# ------------------------------------------------------------- NaN / Inf
def _nan_data(value):
    x, y = data(16)
    x[9, 2, 3, 1] = value  # sample 9: batch 2 with batch_size 4
    return x, y


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_nan_in_data_warns_once_and_training_goes_on(value, act):
    m = conv_model(act=act)
    x, y = _nan_data(value)
    xc = x.copy()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        h = m.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, validation_data=(x, y))
    runtime = [w for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in rec]
    msg = str(runtime[0].message)
    # a NaN reaches the loss at once; an inf may first be squashed (tanh(inf) = 1) and
    # turn the weights into NaN through the gradient, hence the next batch
    batches = "2" if np.isnan(value) else "[23]"
    assert re.search(rf"loss became (nan|inf|-inf) at epoch 1, batch {batches}\b", msg), msg
    assert "TerminateOnNaN" in msg
    assert m.optimizer.iterations == 12  # went on to the end
    assert len(h.history["loss"]) == 3 and all(np.isnan(v) for v in h.history["loss"])
    np.testing.assert_array_equal(x, xc)


def test_nan_in_targets_warns_once():
    m = conv_model()
    x, y = data(8)
    y[5, 0] = np.nan
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1


def test_nan_warns_again_in_a_new_fit():
    m = conv_model(act="tanh")
    x, y = _nan_data(np.nan)
    for _ in range(2):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_terminate_on_nan_stops_after_the_first_nan_batch(act, capsys):
    m = conv_model(act=act)
    x, y = _nan_data(np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = m.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
                  callbacks=[callbacks.TerminateOnNaN()])
    assert m.optimizer.iterations == 3  # batches 0, 1 and the NaN batch 2
    assert len(h.history["loss"]) == 1
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out


def test_relu_propagates_nan_like_tensorflow():
    """tf.nn.relu(nan) is nan: a NaN must not be silently turned into 0."""
    x = np.array([[np.nan, -1.0, 2.0, np.inf, -np.inf, 0.0]], np.float32)
    out = np.empty_like(x)
    _core.activation_forward(_core.ACT_RELU, x, out)
    np.testing.assert_array_equal(out, [[np.nan, 0.0, 2.0, np.inf, 0.0, 0.0]])


# -------------------------------------------------------- absurd layers
def test_absurd_dense_fails_at_build():
    m = models.Sequential([layers.Dense(10**12, input_shape=(10,))])
    with pytest.raises((MemoryError, ValueError), match=r"10000000000000 elements|[Cc]annot allocate|too many"):
        m.build()
    assert not m.built
    m = models.Sequential([layers.Dense(10**9, input_shape=(10,))])  # 44 GB
    with pytest.raises((MemoryError, ValueError), match=r"[Cc]annot allocate|too many"):
        m.summary(print_fn=lambda s: None)


def test_absurd_conv_fails_at_build():
    m = models.Sequential([layers.Conv2D(10**7, 3, input_shape=(32, 32, 256))])  # 92 GB of kernel
    with pytest.raises((MemoryError, ValueError), match=r"[Cc]annot allocate|too many"):
        m.build()
    m = models.Sequential([layers.Conv2D(10**7, 3)])
    with pytest.raises((MemoryError, ValueError)):
        m.predict(np.zeros((1, 32, 32, 256), np.uint8), verbose=0)


# ---------------------------------------------------------- interrupts
def _batches(x, y, b):
    return [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]


def _replay(k, batches, **kw):
    """A fresh model after k train_on_batch updates over `batches`, cycling."""
    r = conv_model(**kw)
    for i in range(k):
        r.train_on_batch(*batches[i % len(batches)])
    return r


def _check_consistent(m, x, y, batches, **kw):
    """Weights equal a replay of exactly `iterations` updates; the model still works."""
    k = m.optimizer.iterations
    assert same_weights(m.get_weights(), _replay(k, batches, **kw).get_weights())
    p = m.predict(x, verbose=0)
    assert p.shape == (len(x), 5) and np.all(np.isfinite(p))
    m.train_on_batch(x[:4], y[:4])
    assert m.optimizer.iterations == k + 1
    m.evaluate(x, y, verbose=0)
    return k


def test_keyboard_interrupt_from_a_callback(sigint_default):
    x, y = data(32)
    batches = _batches(x, y, 4)

    class Stop(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise KeyboardInterrupt

    m = conv_model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[Stop()])
    assert _check_consistent(m, x, y, batches) == 4


@pytest.mark.parametrize("how", ["raise_signal", "interrupt_main"])
def test_sigint_from_a_callback(sigint_default, how):
    x, y = data(32)
    batches = _batches(x, y, 4)

    def hit(batch, logs):
        if batch == 5:
            signal.raise_signal(signal.SIGINT) if how == "raise_signal" else _thread.interrupt_main()

    m = conv_model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
              callbacks=[callbacks.LambdaCallback(on_batch_end=hit)])
    assert _check_consistent(m, x, y, batches) == 6


def test_sigint_in_the_middle_of_an_update_is_deferred(sigint_default):
    """Ctrl-C while the optimizer is between two weight arrays: the update
    completes (no half-updated model), then KeyboardInterrupt is raised."""
    x, y = data(32)
    batches = _batches(x, y, 4)
    m = conv_model()
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 8 updates
    real_update, calls = m.optimizer._update, []

    def update(*a, **k):
        out = real_update(*a, **k)
        calls.append(1)
        if len(calls) == 2:  # after the 2nd of 4 weight arrays
            signal.raise_signal(signal.SIGINT)
        return out

    m.optimizer._update = update
    with pytest.raises(KeyboardInterrupt):
        m.train_on_batch(*batches[8 % len(batches)])
    del m.optimizer._update
    assert len(calls) == 4  # every weight array was updated
    assert _check_consistent(m, x, y, batches) == 9


def test_interrupt_main_at_random_times(sigint_default):
    x, y = data(48)
    batches = _batches(x, y, 4)
    rng = np.random.default_rng(7)
    for trial in range(6):
        m = conv_model()
        started = threading.Event()

        def killer(delay=rng.uniform(0, 0.02)):
            started.wait()
            time.sleep(delay)
            _thread.interrupt_main()

        th = threading.Thread(target=killer)
        th.start()
        go = callbacks.LambdaCallback(on_batch_end=lambda b, logs: started.set() if b >= 2 else None)
        try:
            with pytest.raises(KeyboardInterrupt):
                m.fit(x, y, batch_size=4, epochs=1000, shuffle=False, verbose=0, callbacks=[go])
        finally:
            started.set()
            th.join()
        assert _check_consistent(m, x, y, batches) >= 3


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_keyboard_interrupt_during_predict_and_evaluate(sigint_default, method):
    m = conv_model()
    x, y = data(16)
    ref_p, ref_e = m.predict(x, batch_size=4, verbose=0), m.evaluate(x, y, batch_size=4, verbose=0)

    class Stop(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

        def on_test_batch_end(self, batch, logs=None):
            if batch == 1:
                signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        if method == "predict":
            m.predict(x, batch_size=4, verbose=0, callbacks=[Stop()])
        else:
            m.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Stop()])
    np.testing.assert_array_equal(m.predict(x, batch_size=4, verbose=0), ref_p)
    assert m.evaluate(x, y, batch_size=4, verbose=0) == ref_e
    assert m.optimizer.iterations == 0


# ----------------------------------------------------------- threads
def _gil_model():
    pyreg.utils.set_random_seed(0)
    m = models.Sequential([layers.Conv2D(64, 3, activation="relu", input_shape=(32, 32, 32)), layers.Flatten(),
                           layers.Dense(10, activation="softmax")])
    m.compile(optimizers.SGD(1e-3), "categorical_crossentropy")
    return m


def test_gil_is_released_during_fit(one_thread):
    """A background thread that wakes every millisecond (time.sleep releases
    the GIL) must keep waking while fit runs: it only needs the GIL for an
    instant, so it is starved only if the C kernels keep the GIL. Measured as
    the ratio of its wake-up rate during fit to its rate when the main thread
    sleeps; a kernel that held the GIL during its (tens of ms long) calls
    would give a ratio well under 0.35 with this model (measured)."""
    rng = np.random.default_rng(0)
    x = rng.random((128, 32, 32, 32), dtype=np.float32)
    y = pyreg.utils.to_categorical(np.arange(128) % 10, 10)
    m = _gil_model()
    m.fit(x[:32], y[:32], batch_size=32, verbose=0)  # warm-up: buffers, ISA
    count, stop = [0], threading.Event()

    def beat():
        while not stop.is_set():
            time.sleep(0.001)
            count[0] += 1

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    ratios = []
    try:
        for attempt in range(3):
            c0, t0 = count[0], time.perf_counter()
            time.sleep(0.3)
            solo = (count[0] - c0) / (time.perf_counter() - t0)
            c0, t0 = count[0], time.perf_counter()
            m.fit(x, y, batch_size=32, epochs=2, verbose=0)
            during = (count[0] - c0) / (time.perf_counter() - t0)
            ratios.append(during / solo)
            if ratios[-1] > 0.55:
                break
    finally:
        stop.set()
        th.join()
    assert max(ratios) > 0.55, ratios


def test_gil_is_released_during_a_kernel_call(one_thread):
    """A busy Python thread advances while one long conv2d_forward runs."""
    x = np.random.default_rng(0).random((64, 32, 32, 32), dtype=np.float32)
    k = np.full((3, 3, 32, 64), 0.01, np.float32)
    out = np.empty((64, 30, 30, 64), np.float32)
    count, stop = [0], threading.Event()

    def spin():
        n = 0
        while not stop.is_set():
            n += 1
            count[0] = n

    th = threading.Thread(target=spin, daemon=True)
    th.start()
    progress = []
    try:
        for attempt in range(3):
            c0, t0 = count[0], time.perf_counter()
            time.sleep(0.1)
            solo = (count[0] - c0) / (time.perf_counter() - t0)
            c0, t0 = count[0], time.perf_counter()
            _core.conv2d_forward(x, k, None, out, 1, 1, False)
            dt = time.perf_counter() - t0
            progress.append((count[0] - c0) / (solo * dt))
            if dt > 0.05 and progress[-1] > 0.3:
                break
    finally:
        stop.set()
        th.join()
    assert max(progress) > 0.3, progress


@pytest.mark.parametrize("threads", [1, 2])
def test_two_models_in_two_threads_match_sequential_training(threads):
    pyreg.set_num_threads(threads)
    try:
        x, y = data(48)
        vx, vy = data(16, seed=1)
        base = conv_model(seed=11)
        w0 = base.get_weights()

        def new_model():
            m = conv_model(seed=99)
            m.set_weights(w0)
            return m

        def train(m, out):
            h = m.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0, validation_data=(vx, vy))
            out.append((h.history, m.get_weights(), m.predict(x, verbose=0)))

        seq = []
        for _ in range(2):
            train(new_model(), seq)
        par = [[], []]
        ms = [new_model(), new_model()]
        barrier = threading.Barrier(2)

        def worker(i):
            barrier.wait()
            train(ms[i], par[i])

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        for (h, w, p), ref in zip([r[0] for r in par], seq):
            assert h == ref[0]
            assert same_weights(w, ref[1])
            assert np.array_equal(p, ref[2])
    finally:
        pyreg.set_num_threads(0)


# ------------------------------------------------------------- leaks
def _rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_no_leaks_in_predict_and_train_on_batch(one_thread):
    m = conv_model()
    x, y = data(16)
    xl = np.ascontiguousarray(x.astype(np.float64))  # converted on each call
    for _ in range(50):  # warm-up: buffers, allocator pools
        m.predict(x, verbose=0)
        m.predict(xl, verbose=0)
        m.train_on_batch(x, y)
    gc.collect()
    refs = [sys.getrefcount(a) for a in (x, y, xl)]
    rss0 = _rss()
    for _ in range(1000):
        m.predict(x, verbose=0)
    for _ in range(200):
        m.train_on_batch(x, y)
        m.predict(xl, batch_size=5, verbose=0)
    gc.collect()
    assert [sys.getrefcount(a) for a in (x, y, xl)] == refs
    growth = _rss() - rss0
    if UNDER_ASAN:  # ASan's quarantine keeps freed blocks: RSS says nothing there
        return
    assert growth < 10 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB"


def test_no_reference_leaks_on_errors():
    x = np.zeros((4, 8), np.float32)
    w = np.zeros((3, 4), np.float32)
    out = np.zeros((4, 4), np.float32)
    before = [sys.getrefcount(a) for a in (x, w, out)]
    for _ in range(1000):
        with pytest.raises(ValueError):
            _core.dense_forward(x, w, None, out)
    assert [sys.getrefcount(a) for a in (x, w, out)] == before
