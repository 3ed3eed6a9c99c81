"""ReLU fused into the Conv2D and Dense GEMMs (applied to each output tile
while it is in cache) gives the same bits as the separate pass it replaces,
on every convolution path (implicit GEMM from 16 channels on, im2col chunks
below, the input itself for a pointwise convolution); and the C forward
functions refuse an output that shares memory with an input (they read the
input while writing the output)."""
import numpy as np
import pytest

import pyreg
from pyreg import _core

CONV = [
    # (input NHWC, kernel, strides, same padding, filters)
    ((3, 9, 7, 3), (3, 3), (1, 1), True, 20),     # im2col chunks
    ((2, 11, 10, 16), (3, 3), (1, 1), False, 33),  # implicit
    ((2, 8, 9, 64), (3, 2), (2, 1), True, 7),      # implicit, k blocks split a tap
    ((4, 5, 5, 40), (1, 1), (1, 1), False, 9),     # pointwise: the input is the patch matrix
]


def _out_shape(shape, k, s, same, f):
    def axis(n, kk, ss):
        return -(-n // ss) if same else (n - kk + ss) // ss
    return (shape[0], axis(shape[1], k[0], s[0]), axis(shape[2], k[1], s[1]), f)


@pytest.mark.parametrize("shape,k,s,same,f", CONV)
def test_conv2d_fused_relu_is_the_separate_pass(shape, k, s, same, f):
    rng = np.random.default_rng(sum(shape) + f)
    x = rng.standard_normal(shape).astype(np.float32)
    kern = rng.standard_normal(k + (shape[3], f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    plain = np.empty(_out_shape(shape, k, s, same, f), np.float32)
    fused = np.empty_like(plain)
    _core.conv2d_forward(x, kern, b, plain, s[0], s[1], same)
    _core.conv2d_forward(x, kern, b, fused, s[0], s[1], same, True)
    assert (plain < 0).any() and (plain > 0).any()
    separate = plain.copy()
    _core.activation_forward(_core.ACT_RELU, separate, separate)
    assert np.array_equal(fused.view(np.uint32), separate.view(np.uint32))
    assert np.array_equal(separate, np.maximum(plain, 0))


def test_dense_fused_relu_is_the_separate_pass():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, 1000)).astype(np.float32)
    w = rng.standard_normal((1000, 300)).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    plain, fused = np.empty((37, 300), np.float32), np.empty((37, 300), np.float32)
    _core.dense_forward(x, w, b, plain)
    _core.dense_forward(x, w, b, fused, True)
    separate = plain.copy()
    _core.activation_forward(_core.ACT_RELU, separate, separate)
    assert np.array_equal(fused.view(np.uint32), separate.view(np.uint32))
    assert (fused == 0).mean() > 0.2


def test_layers_use_the_fused_relu_with_unchanged_results():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 10, 10, 24)).astype(np.float32)
    for relu_layer, linear_layer in (
            (pyreg.layers.Conv2D(12, 3, activation="relu"), pyreg.layers.Conv2D(12, 3)),
            (pyreg.layers.Dense(12, activation="relu"), pyreg.layers.Dense(12))):
        relu_layer(x)
        linear_layer(x)
        linear_layer.set_weights(relu_layer.get_weights())
        assert relu_layer._gemm_relu and not linear_layer._gemm_relu
        ref = linear_layer(x)
        _core.activation_forward(_core.ACT_RELU, ref, ref)
        assert np.array_equal(relu_layer(x), ref)
    act = pyreg.layers.Activation("relu")
    assert not act._gemm_relu  # an Activation layer has no GEMM: it runs the pass itself
    assert np.array_equal(act(x), np.maximum(x, 0))


def test_forward_refuses_an_output_sharing_memory_with_an_input():
    buf = np.zeros(2 * 6 * 6 * 4 + 64, np.float32)
    x = buf[:2 * 6 * 6 * 4].reshape(2, 6, 6, 4)
    out = buf[64:64 + 2 * 4 * 4 * 4].reshape(2, 4, 4, 4)  # overlaps x
    kern = np.ones((3, 3, 4, 4), np.float32)
    before = buf.copy()
    with pytest.raises(ValueError, match="share memory"):
        _core.conv2d_forward(x, kern, None, out, 1, 1, False)
    w = np.ones((16, 16), np.float32)
    xd = buf[:32].reshape(2, 16)
    with pytest.raises(ValueError, match="share memory"):
        _core.dense_forward(xd, w, None, buf[16:48].reshape(2, 16))
    with pytest.raises(ValueError, match="share memory"):
        _core.dense_forward(xd, w, w[0], w[1:3])
    assert np.array_equal(buf, before)
