"""MaxPooling2D against TensorFlow (forward and input gradient) and inside a model."""
import numpy as np
import pytest

import pyreg
from pyreg.testing import layer_gradients, rel_err

CASES = [((2, 2), None, "valid", 8, 8), ((3, 3), (2, 2), "same", 9, 10), ((2, 3), (1, 2), "same", 7, 8),
         ((3, 3), (1, 1), "valid", 6, 7), ((1, 1), None, "valid", 3, 3), ((2, 2), (2, 2), "same", 5, 5)]


@pytest.mark.parametrize("pool,strides,padding,H,W", CASES)
def test_maxpool_matches_tf(tfk, pool, strides, padding, H, W):
    import tensorflow as tf
    rng = np.random.default_rng(H * 31 + W)
    x = rng.standard_normal((3, H, W, 4)).astype(np.float32)
    kl = tfk.layers.MaxPooling2D(pool, strides=strides, padding=padding)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = kl(xt)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    dxt = tape.gradient(yt, xt, output_gradients=tf.constant(dy))
    y, dx, grads = layer_gradients(pyreg.layers.MaxPooling2D(pool, strides=strides, padding=padding), x, dy)
    assert grads == []
    assert rel_err(y, yt.numpy()) <= 1e-6
    assert rel_err(dx, dxt.numpy()) <= 1e-6


def test_maxpool_in_model_matches_keras(tfk):
    km = tfk.Sequential([tfk.layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 2)),
                         tfk.layers.MaxPooling2D(), tfk.layers.Flatten(), tfk.layers.Dense(3, activation="softmax")])
    km.compile(loss="categorical_crossentropy", optimizer=tfk.optimizers.legacy.SGD(0.1), metrics=["accuracy"])
    model = pyreg.interop.from_keras(km)
    rng = np.random.default_rng(1)
    x = rng.random((6, 10, 10, 2), dtype=np.float32)
    y = pyreg.utils.to_categorical(rng.integers(0, 3, 6), 3)
    report = pyreg.testing.compare_with_keras(model, km, x, y)
    assert report["max_rel_pred"] <= 1e-5
    assert report["max_rel_grad"] <= 1e-4


def test_maxpool_rejects_bad_arguments():
    with pytest.raises(ValueError, match="pool_size"):
        pyreg.layers.MaxPooling2D(0)
    with pytest.raises(ValueError, match="padding"):
        pyreg.layers.MaxPooling2D(2, padding="full")
    layer = pyreg.layers.MaxPooling2D(5)
    with pytest.raises(ValueError, match="larger than its input"):
        layer.build((3, 3, 1))
