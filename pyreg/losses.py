"""Losses (Keras names), reduced as Keras's SUM_OVER_BATCH_SIZE: the mean over
the batch. Softmax followed by a cross-entropy is fused in training and
evaluation and computed from the logits, as TensorFlow does inside fit():
loss = logsumexp(z) - z[y], gradient (softmax(z) - y) / N. On probabilities
(from_logits=False, no softmax before), tf-keras's clipped formula is used."""
import numpy as np

from . import _core


class Loss:
    kind = None
    sparse = False

    def __init__(self, from_logits=False, reduction="auto", name=None):
        if reduction not in ("auto", "sum_over_batch_size"):
            raise ValueError(f"{type(self).__name__}: only reduction 'auto' (mean over the batch) is supported, "
                             f"got {reduction!r}")
        self.from_logits = bool(from_logits)
        self.name = name or self.default_name

    def per_sample(self, y_true, y_pred, from_logits=None):
        """Per-sample losses (NumPy), computed by the C core one row at a time."""
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        if y_pred.ndim != 2:
            raise ValueError(f"{self.name}: expected predictions of shape (batch, classes), got {y_pred.shape}")
        y_true = prepare_target(self, y_true, y_pred.shape)
        fl = self.from_logits if from_logits is None else from_logits
        out = np.empty(y_pred.shape[0], dtype=np.float32)
        for i in range(y_pred.shape[0]):
            out[i] = _core.loss(self.kind, fl, y_pred[i:i + 1], y_true[i:i + 1], None)[0]
        return out

    def __call__(self, y_true, y_pred):
        """Mean loss over the batch, as a Python float."""
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        y_true = prepare_target(self, y_true, y_pred.shape)
        total, _ = _core.loss(self.kind, self.from_logits, y_pred, y_true, None)
        return total / max(1, y_pred.shape[0])

    def get_config(self):
        return {"from_logits": self.from_logits, "name": self.name}


class CategoricalCrossentropy(Loss):
    kind = _core.LOSS_CATEGORICAL_CE
    default_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    kind = _core.LOSS_SPARSE_CATEGORICAL_CE
    sparse = True
    default_name = "sparse_categorical_crossentropy"


class MeanSquaredError(Loss):
    kind = _core.LOSS_MSE
    default_name = "mean_squared_error"

    def __init__(self, reduction="auto", name=None):
        super().__init__(False, reduction, name)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    return CategoricalCrossentropy(from_logits=from_logits).per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits=from_logits).per_sample(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError().per_sample(y_true, y_pred)


mse = MSE = mean_squared_error

_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
_FUNCS = {categorical_crossentropy: CategoricalCrossentropy,
          sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
          mean_squared_error: MeanSquaredError}


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if identifier in _FUNCS:
        return _FUNCS[identifier]()
    raise ValueError(f"Unknown loss {identifier!r}: expected one of {sorted(_BY_NAME)} or a pyreg.losses.Loss")


def prepare_target(loss, y, pred_shape):
    """The target as float32 C-contiguous, checked against the predictions' shape
    (raises ValueError naming what was expected and what was given)."""
    B, D = pred_shape[0], pred_shape[-1]
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{loss.name}: expected numeric targets, got dtype {y.dtype}")
    if loss.sparse:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.shape != (B,):
            raise ValueError(f"{loss.name}: expected integer labels of shape ({B},) or ({B}, 1), got {y.shape}")
        if y.size and (not np.all(np.isfinite(y)) or np.any(y != np.floor(y)) or y.min() < 0 or y.max() >= D):
            raise ValueError(f"{loss.name}: expected integer labels in [0, {D}), got values in "
                             f"[{y.min()}, {y.max()}]")
    else:
        if y.shape != (B, D):
            hint = ""
            if loss.kind == _core.LOSS_CATEGORICAL_CE and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
                hint = (" (integer labels given to categorical_crossentropy: one-hot encode them with "
                        "pyreg.utils.to_categorical, or use sparse_categorical_crossentropy)")
            raise ValueError(f"{loss.name}: expected targets of shape ({B}, {D}), got {y.shape}{hint}")
    return np.ascontiguousarray(y, dtype=np.float32)
