"""Helpers for tests that compare pyreg with TensorFlow (tf-keras).

    report = pyreg.testing.compare_with_keras(model, keras_model, x, y)
    assert report["max_rel_grad"] < 1e-4

tf_keras is imported only when a comparison runs."""
import numpy as np


def rel_err(a, b):
    """max |a - b| / max(max |b|, tiny): the error relative to the reference's scale."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_err: shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def layer_gradients(layer, x, dy):
    """Runs a built pyreg layer forward on x and backward with upstream dy.
    Returns (y, dx, [gradient of each weight, in get_weights order])."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    dy = np.array(dy, dtype=np.float32, order="C", copy=True)
    if not layer.built:
        layer.build(x.shape[1:])
        layer._allocate_standalone()
    for w in layer._weights:
        w.grad = np.empty(w.shape, dtype=np.float32)
    y = np.array(layer.forward(x, training=True), copy=True)
    dx = layer.backward(dy, lambda shape: np.empty(shape, dtype=np.float32))
    grads = [np.array(w.grad, copy=True) for w in layer._weights]
    for w in layer._weights:
        w.grad = None
    return y, None if dx is None else np.array(dx, copy=True), grads


def keras_gradients(keras_model, x, y):
    """(loss, [grads]) from tf.GradientTape on the compiled loss plus the
    regularization losses, as tf-keras's train_step computes them."""
    import tensorflow as tf
    x = tf.convert_to_tensor(np.asarray(x, dtype=np.float32))
    y = tf.convert_to_tensor(np.asarray(y, dtype=np.float32))
    with tf.GradientTape() as tape:
        pred = keras_model(x, training=True)
        loss = keras_model.compiled_loss(y, pred, regularization_losses=keras_model.losses)
    grads = tape.gradient(loss, keras_model.trainable_weights)
    return float(loss.numpy()), [g.numpy() for g in grads]


def compare_with_keras(model, keras_model, x, y):
    """Runs pyreg and tf-keras on the same batch (after copying pyreg's weights
    into keras_model) and returns the largest differences:
    max_rel_pred, loss (both values and rel), max_rel_grad, per-weight grads."""
    keras_model.set_weights(model.get_weights())
    p_ref = keras_model.predict(np.asarray(x, dtype=np.float32), verbose=0, batch_size=len(x))
    p = model.predict(x, batch_size=len(x), verbose=0)
    loss_ref, g_ref = keras_gradients(keras_model, x, y)
    loss, g = model.compute_gradients(x, y)
    grad_errs = [rel_err(a, b) for a, b in zip(g, g_ref)]
    return {
        "max_rel_pred": rel_err(p, p_ref),
        "loss": loss,
        "loss_ref": loss_ref,
        "rel_loss": abs(loss - loss_ref) / max(abs(loss_ref), 1e-30),
        "grad_rel_errs": grad_errs,
        "max_rel_grad": max(grad_errs) if grad_errs else 0.0,
    }
