"""Sequential models with Keras 2's API: compile, fit, evaluate, predict,
train_on_batch, summary, get_weights / set_weights.

Python orchestrates; every per-batch computation is a call into the C core.
A training step is two passes that can be called one at a time:
`compute_gradients` (loss, penalty and every gradient of a batch) and
`apply_gradients` (the optimizer). `train_on_batch` and `fit` fuse the
regularizer's gradient into the optimizer's loop instead.
"""
import contextlib
import math
import os
import signal
import threading
import warnings

import numpy as np

from . import _core, backend, callbacks as callbacks_module, layers as layers_module, losses, optimizers

_GATHER_DTYPES = (np.float32, np.float64, np.uint8, np.int32, np.int64)
_FUSE_MIN = 1 << 22  # Dense kernels from 4 M weights (16 MB) on never hold their whole gradient
_ACCURACY_NAMES = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


def _shape_str(shape):
    return "(None, " + ", ".join(str(s) for s in shape) + ")" if shape else "(None,)"


def _whole_batch(x):
    """batch_size covering all of x (None if x has no length: the checks then name the problem)."""
    try:
        return max(1, len(x))
    except TypeError:
        return None


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _as_data(x, name):
    """The user's array as a C-contiguous, native-endian array that gather_rows
    reads directly (float32/float64/uint8/int32/int64); never modified."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: expected an array with a batch dimension, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got an empty array of shape {x.shape}")
    if x.dtype.type not in _GATHER_DTYPES:
        x = x.astype(np.float32)
    elif not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    return np.ascontiguousarray(x)


@contextlib.contextmanager
def _defer_sigint():
    """Holds Ctrl-C during a weight update so that the model is never left half
    updated; the KeyboardInterrupt is raised right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    try:
        old = signal.signal(signal.SIGINT, lambda s, f: pending.append(s))
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if pending:
            raise KeyboardInterrupt


class Sequential:
    """A linear stack of layers, as keras.Sequential."""

    def __init__(self, layers=None, name=None):
        self.name = name or backend.unique_name("sequential")
        self._layers = []
        self.built = False
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._input_shape = None
        self._flat = None
        self._grad_flat = None
        self._gbufs = None
        self._nan_warned = False
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------ structure
    @property
    def layers(self):
        return [l for l in self._layers if not isinstance(l, layers_module.InputLayer)]

    def add(self, layer):
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"The added layer must be an instance of pyreg.layers.Layer, got {layer!r}")
        if self.built:
            raise ValueError("Cannot add layers to a model that is already built")
        if not self._layers:
            self._input_shape = layer._input_shape_arg
        self._layers.append(layer)

    def pop(self):
        if not self._layers or self.built:
            raise ValueError("pop: the model has no layers, or is already built")
        self._layers.pop()

    def build(self, input_shape=None):
        """Builds every layer for inputs of shape (batch, *input_shape) and
        initialises the weights (one float32 allocation for all of them)."""
        if self.built:
            return
        if input_shape is not None:
            input_shape = tuple(input_shape)[1:]
        else:
            input_shape = self._input_shape
        if input_shape is None:
            raise ValueError("This model has not yet been built: give the first layer an `input_shape`, call "
                             "`build(input_shape)`, or call the model on data first")
        if not self.layers:
            raise ValueError("The model has no layers")
        shape = first = layers_module.Layer._check_shape(input_shape)
        built_here = []
        try:
            for layer in self._layers:
                if layer.built:
                    if tuple(layer.input_shape) != shape:
                        raise ValueError(f"Layer {layer.name!r} was built for input "
                                         f"{_shape_str(layer.input_shape)}, but receives {_shape_str(shape)}")
                else:
                    built_here.append(layer)
                    layer.build(shape)
                shape = layer.output_shape
            self._allocate_weights()
        except BaseException:
            for layer in built_here:  # undone, so that build can be retried with another shape
                layer.built = False
                layer._weights = []
                layer.input_shape = layer.output_shape = None
            raise
        self._input_shape = first
        self.built = True

    def _weights_list(self):
        return [w for l in self._layers for w in l._weights]

    def _allocate_weights(self):
        ws = self._weights_list()
        total = sum(w.size for w in ws)
        phys = _physical_memory()
        if phys and total * 4 > phys:  # refused even where the kernel overcommits (it would OOM-kill us later)
            raise MemoryError(f"Cannot allocate {total} parameters ({total * 4 / 2**30:.1f} GiB) for model "
                              f"{self.name!r}: more than this machine's {phys / 2**30:.1f} GiB of memory")
        try:
            flat = np.empty(total, dtype=np.float32)
        except (MemoryError, ValueError) as e:
            raise MemoryError(f"Cannot allocate {total} parameters ({total * 4 / 2**30:.1f} GiB) for model "
                              f"{self.name!r}") from e
        off = 0
        for w in ws:
            view = flat[off:off + w.size].reshape(w.shape)
            if w.value is not None:  # built before, e.g. called standalone
                np.copyto(view, w.value)
            else:
                w.initializer.fill(view)
            w.value = view
            off += w.size
        self._flat = flat
        for layer in self._layers:  # large Dense kernels: updated block by block during backward
            if isinstance(layer, layers_module.Dense) and layer.kernel.size >= _FUSE_MIN:
                layer.kernel.fused = True

    def _ensure_grads(self, full=False):
        """Gradient buffers: one allocation for every weight except the large
        Dense kernels, whose gradient the training step never holds whole (they
        are updated block by block in backward); full=True (compute_gradients)
        gives those a buffer too."""
        if self._grad_flat is None:
            ws = [w for w in self._weights_list() if not w.fused]
            self._grad_flat = np.zeros(sum(w.size for w in ws), dtype=np.float32)
            off = 0
            for w in ws:
                w.grad = self._grad_flat[off:off + w.size].reshape(w.shape)
                off += w.size
        if full:
            for w in self._weights_list():
                if w.grad is None:
                    w.grad = np.zeros(w.shape, dtype=np.float32)

    def _require_built(self, what):
        if not self.built:
            if self._input_shape is not None and self.layers:
                self.build()
            else:
                raise ValueError(f"{what}: this model has not yet been built. Build it by calling `build()` or by "
                                 "calling the model on a batch of data, or give the first layer an `input_shape`.")

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return (None,) + tuple(self.layers[-1].output_shape)

    # -------------------------------------------------------------- weights
    @property
    def weights(self):
        self._require_built("weights")
        return [w.value for w in self._weights_list()]

    trainable_weights = weights

    @property
    def trainable_variables(self):
        return self.weights

    def get_weights(self):
        """Copies of every weight, in Keras's order: per layer, kernel then bias."""
        self._require_built("get_weights")
        return [np.array(w.value, copy=True) for w in self._weights_list()]

    def set_weights(self, weights):
        self._require_built("set_weights")
        ws = self._weights_list()
        weights = list(weights)
        if len(weights) != len(ws):
            raise ValueError(f"You called `set_weights(weights)` on model {self.name!r} with a weight list of length "
                             f"{len(weights)}, but the model was expecting {len(ws)} weights.")
        arrays = []
        for w, v in zip(ws, weights):
            v = np.asarray(v)
            if v.shape != w.shape:
                raise ValueError(f"set_weights: weight {w.name} expects shape {w.shape}, got {v.shape}")
            if v.dtype.kind not in "biuf":
                raise TypeError(f"set_weights: weight {w.name} expects a real array, got dtype {v.dtype}")
            arrays.append(v)
        for w, v in zip(ws, arrays):  # all checked before anything is written
            np.copyto(w.value, v, casting="unsafe")

    def count_params(self):
        self._require_built("count_params")
        return sum(w.size for w in self._weights_list())

    # -------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=None, steps_per_execution=None, jit_compile=None, **kwargs):
        if kwargs:
            raise TypeError(f"compile: unexpected arguments {sorted(kwargs)}")
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='categorical_crossentropy'")
        if loss_weights is not None or weighted_metrics:
            raise ValueError("compile: loss_weights and weighted_metrics are not supported")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metrics = list(metrics or [])
        self._metric_names = []
        for m in metrics:
            if m not in _ACCURACY_NAMES:
                raise ValueError(f"compile: unsupported metric {m!r}; pyreg supports {list(_ACCURACY_NAMES)}")
            self._metric_names.append(m)
        if len(self._metric_names) > 1:
            raise ValueError("compile: give at most one accuracy metric")
        self.compiled = True

    @property
    def metrics_names(self):
        return ["loss"] + list(getattr(self, "_metric_names", []))

    def _fused(self):
        """True when the cross-entropy is computed from the last layer's
        pre-activation logits, as tf-keras does: backend.softmax and
        backend.sigmoid cache their input (`_keras_logits`) and both
        categorical cross-entropies use it whatever from_logits says. So a
        sigmoid output, or softmax with from_logits=True, also gives the
        softmax cross-entropy of the logits (TensorFlow's numbers, not the
        probability formula)."""
        last = self.layers[-1]
        ce = self.loss.kind in (_core.LOSS_CATEGORICAL_CE, _core.LOSS_SPARSE_CATEGORICAL_CE)
        return ce and getattr(last, "activation", None) in layers_module.LOGIT_ACTIVATIONS

    def _from_logits(self):
        return self._fused() or (self.loss.from_logits and self.loss.kind != _core.LOSS_MSE)

    # ------------------------------------------------------------- running
    def _forward(self, x, training, logits=False):
        n = len(self._layers)
        for i, layer in enumerate(self._layers):
            x = layer.forward(x, training=training, logits=logits and i == n - 1)
        return x

    def _grad_buffers(self, batch):
        sizes = [math.prod(l.input_shape) for l in self._layers[1:]] or [1]
        need = batch * max(sizes)
        if self._gbufs is None or self._gbufs[0].size < need:
            self._gbufs = None
            self._gbufs = [np.empty(need, dtype=np.float32), np.empty(need, dtype=np.float32)]
        return self._gbufs

    def _backward(self, dout, logits, update=None):
        bufs = self._grad_buffers(dout.shape[0])
        ranges = [(b.ctypes.data, b.ctypes.data + b.nbytes) for b in bufs]
        # the first layer that needs an input gradient: any layer after a weighted one
        first_weighted = next((i for i, l in enumerate(self._layers) if l._weights), len(self._layers))
        dy = dout
        n = len(self._layers)
        for i in range(n - 1, -1, -1):
            layer = self._layers[i]
            alloc = None
            if i > first_weighted:
                p = dy.ctypes.data
                other = 1 if ranges[0][0] <= p < ranges[0][1] else 0

                def alloc(shape, _b=bufs[other]):
                    return _b[:math.prod(shape)].reshape(shape)
            kernel = getattr(layer, "kernel", None)
            if update is not None and kernel is not None and kernel.fused:
                dy = layer.backward(dy, alloc, logits=logits and i == n - 1, update=update)
            else:
                dy = layer.backward(dy, alloc, logits=logits and i == n - 1)
            if dy is None:
                break

    def _check_x(self, x, name="x"):
        x = _as_data(x, name)
        if self._input_shape is None and not self.built and self.layers:
            self.build((None,) + tuple(x.shape[1:]))  # sets the input shape only if the build succeeds
        self._require_built(name)
        if tuple(x.shape[1:]) != tuple(self._input_shape):
            raise ValueError(f"Input 0 of layer {self.layers[0].name!r} is incompatible with the layer: expected "
                             f"shape={_shape_str(self._input_shape)}, found shape={_shape_str(x.shape[1:])}")
        return x

    def _check_xy(self, x, y):
        x = self._check_x(x)
        if not self.compiled:
            raise RuntimeError("You must compile your model before training/testing. Use `model.compile(optimizer, "
                               "loss)`.")
        if len(self.layers[-1].output_shape) != 1:
            raise ValueError(f"The model's output must be (batch, units) for a loss, got "
                             f"{_shape_str(self.layers[-1].output_shape)}")
        if isinstance(y, (list, tuple)):
            y = np.asarray(y)
        if not isinstance(y, np.ndarray):
            raise TypeError(f"y: expected a NumPy array, got {type(y).__name__}")
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"Data cardinality is ambiguous: x sizes: {x.shape[0]}, y sizes: "
                             f"{y.shape[0] if y.ndim else 'scalar'}. Make sure all arrays contain the same number "
                             "of samples.")
        y = losses.prepare_target(self.loss, y, (x.shape[0], self.layers[-1].output_shape[-1]))
        return x, y

    def _batches(self, n, batch_size, order):
        for s in range(0, n, batch_size):
            yield order[s:s + batch_size]

    def _input_buffers(self, batch, y):
        shape = (batch,) + tuple(self._input_shape)
        if getattr(self, "_xbuf", None) is None or self._xbuf.shape[0] < batch or self._xbuf.shape[1:] != shape[1:]:
            self._xbuf = np.empty(shape, dtype=np.float32)
        if y is not None:
            yshape = (batch,) + y.shape[1:]
            if getattr(self, "_ybuf", None) is None or self._ybuf.shape[0] < batch or self._ybuf.shape[1:] != yshape[1:]:
                self._ybuf = np.empty(yshape, dtype=np.float32)
            D = self.layers[-1].output_shape[-1]
            if getattr(self, "_dbuf", None) is None or self._dbuf.shape[0] < batch or self._dbuf.shape[1] != D:
                self._dbuf = np.empty((batch, D), dtype=np.float32)

    def _gather(self, x, y, idx):
        B = idx.shape[0]
        xb = self._xbuf[:B]
        _core.gather_rows(x, idx, xb)
        yb = None
        if y is not None:
            yb = self._ybuf[:B]
            _core.gather_rows(y, idx, yb)
        return xb, yb

    def _penalty(self):
        total = 0.0
        for w in self._weights_list():
            if w.regularizer is not None:
                total += _core.reg_penalty(w.value, w.regularizer.l1, w.regularizer.l2)
        return total

    def _train_step(self, xb, yb):
        """Gradient pass then fused update pass; returns (data loss, penalty, correct)."""
        self._ensure_grads()
        logits = self._from_logits()
        out = self._forward(xb, training=True, logits=self._fused())
        B = xb.shape[0]
        dout = self._dbuf[:B]
        loss_sum, correct = _core.loss(self.loss.kind, logits, out, yb, dout)
        opt, ws = self.optimizer, self._weights_list()
        penalty = [0.0]
        with _defer_sigint():  # a step is all or nothing, even on Ctrl-C
            lr = opt.begin_step([w.value for w in ws])

            def update_rows(weight, g, r0, r1):
                penalty[0] += opt.update(weight.value, g, weight.regularizer, lr, (r0, r1))

            self._backward(dout, self._fused(), update_rows)
            for w in ws:
                if not w.fused:
                    penalty[0] += opt.update(w.value, w.grad, w.regularizer, lr)
            opt.end_step()
        return loss_sum / B, penalty[0], correct

    def _test_step(self, xb, yb):
        logits = self._from_logits()
        out = self._forward(xb, training=False, logits=self._fused())
        loss_sum, correct = _core.loss(self.loss.kind, logits, out, yb, None)
        return loss_sum / xb.shape[0], correct

    def _warn_nan(self, value, where):
        if not self._nan_warned and not math.isfinite(value):
            self._nan_warned = True
            warnings.warn(f"pyreg: the loss became {value} {where}. Training goes on, as in Keras; pass "
                          "callbacks=[pyreg.callbacks.TerminateOnNaN()] to stop at the first invalid loss.",
                          RuntimeWarning, stacklevel=3)

    # ----------------------------------------------------------- public API
    def __call__(self, x, training=False):
        return self.predict(x, batch_size=_whole_batch(x), verbose=0)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        batch_size = self._check_batch_size(batch_size)
        x = self._check_x(x)
        n = x.shape[0]
        out = np.empty((n,) + tuple(self.layers[-1].output_shape), dtype=np.float32)
        self._input_buffers(min(batch_size, n), None)
        steps_n = -(-n // batch_size)
        cbs = callbacks_module.CallbackList(callbacks, add_progbar=self._verbose(verbose) != 0, model=self,
                                            verbose=self._verbose(verbose), epochs=1, steps=steps_n)
        cbs.on_predict_begin()
        order = np.arange(n, dtype=np.int64)
        for step, idx in enumerate(self._batches(n, batch_size, order)):
            cbs.on_predict_batch_begin(step)
            xb, _ = self._gather(x, None, idx)
            y = self._forward(xb, training=False)
            out[idx[0]:idx[0] + idx.shape[0]] = y
            cbs.on_predict_batch_end(step, {"outputs": y})
        cbs.on_predict_end()
        return out

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, _in_fit=False, _cbs=None):
        if sample_weight is not None:
            raise ValueError("evaluate: sample_weight is not supported")
        batch_size = self._check_batch_size(batch_size)
        x, y = self._check_xy(x, y)
        n = x.shape[0]
        self._input_buffers(min(batch_size, n), y)
        penalty = self._penalty()
        steps_n = -(-n // batch_size)
        verbose = self._verbose(verbose)
        cbs = _cbs if _cbs is not None else callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=steps_n)
        cbs.on_test_begin()
        seen, data_sum, correct = 0, 0.0, 0
        order = np.arange(n, dtype=np.int64)
        logs = {}
        for step, idx in enumerate(self._batches(n, batch_size, order)):
            cbs.on_test_batch_begin(step)
            xb, yb = self._gather(x, y, idx)
            data, c = self._test_step(xb, yb)
            B = idx.shape[0]
            seen += B
            data_sum += data * B
            correct += c
            logs = self._logs(data_sum / seen + penalty, correct / seen)
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        self._last_eval_parts = (data_sum / seen, penalty)
        if return_dict:
            return logs
        vals = [logs[k] for k in self.metrics_names]
        return vals[0] if len(vals) == 1 else vals

    def _logs(self, loss, acc):
        logs = {"loss": loss}
        for m in getattr(self, "_metric_names", []):
            logs[m] = acc
        return logs

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, reset_metrics=True,
                       return_dict=False):
        if sample_weight is not None or class_weight is not None:
            raise ValueError("train_on_batch: sample_weight and class_weight are not supported")
        x, y = self._check_xy(x, y)
        self._input_buffers(x.shape[0], y)
        xb, yb = self._gather(x, y, np.arange(x.shape[0], dtype=np.int64))
        data, penalty, correct = self._train_step(xb, yb)
        self._warn_nan(data + penalty, "in train_on_batch")
        logs = self._logs(data + penalty, correct / x.shape[0])
        if return_dict:
            return logs
        vals = [logs[k] for k in self.metrics_names]
        return vals[0] if len(vals) == 1 else vals

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        return self.evaluate(x, y, batch_size=_whole_batch(x), verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=_whole_batch(x), verbose=0)

    def compute_gradients(self, x, y):
        """The gradient pass alone: (loss, grads) for one batch, where loss =
        mean data loss + penalty and grads (in get_weights order) include the
        regularizers' gradients. Weights are not changed."""
        x, y = self._check_xy(x, y)
        self._ensure_grads(full=True)
        self._input_buffers(x.shape[0], y)
        xb, yb = self._gather(x, y, np.arange(x.shape[0], dtype=np.int64))
        out = self._forward(xb, training=True, logits=self._fused())
        dout = self._dbuf[:xb.shape[0]]
        loss_sum, _ = _core.loss(self.loss.kind, self._from_logits(), out, yb, dout)
        self._backward(dout, self._fused())
        penalty = 0.0
        for w in self._weights_list():
            if w.regularizer is not None:
                penalty += _core.reg_penalty(w.value, w.regularizer.l1, w.regularizer.l2)
                _core.reg_backward(w.grad, w.value, w.regularizer.l1, w.regularizer.l2)
        return loss_sum / xb.shape[0] + penalty, [np.array(w.grad, copy=True) for w in self._weights_list()]

    def apply_gradients(self, grads):
        """The update pass alone: the optimizer applies complete gradients (as
        returned by compute_gradients, possibly averaged across workers)."""
        if self.optimizer is None:
            raise RuntimeError("apply_gradients: compile the model first")
        self._require_built("apply_gradients")
        self.optimizer.apply_gradients(zip(grads, [w.value for w in self._weights_list()]))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        if class_weight is not None or sample_weight is not None:
            raise ValueError("fit: class_weight and sample_weight are not supported")
        if steps_per_epoch is not None or validation_steps is not None:
            raise ValueError("fit: steps_per_epoch and validation_steps are not supported (NumPy data only)")
        batch_size = self._check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: expected epochs to be an integer >= 0, got {epochs!r}")
        x, y = self._check_xy(x, y)
        if not (0.0 <= float(validation_split) < 1.0):
            raise ValueError(f"fit: expected validation_split in [0, 1), got {validation_split!r}")
        if validation_data is None and validation_split:
            split_at = int(math.floor(x.shape[0] * (1.0 - validation_split)))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty training or validation "
                                 f"set for {x.shape[0]} samples")
            validation_data = (x[split_at:], y[split_at:])
            x, y = x[:split_at], y[:split_at]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            vx, vy = self._check_xy(*validation_data)
        n = x.shape[0]
        steps = -(-n // batch_size)
        verbose = self._verbose(verbose)
        cbs = callbacks_module.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                            verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self._nan_warned = False
        self._input_buffers(min(batch_size, n), y)
        rng = backend.rng()
        cbs.on_train_begin()
        extra, logs = {}, {}
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            order = rng.permutation(n).astype(np.int64) if shuffle else np.arange(n, dtype=np.int64)
            seen, data_sum, pen_sum, correct = 0, 0.0, 0.0, 0
            logs = {}
            for step, idx in enumerate(self._batches(n, batch_size, order)):
                cbs.on_train_batch_begin(step)
                xb, yb = self._gather(x, y, idx)
                data, penalty, c = self._train_step(xb, yb)
                self._warn_nan(data + penalty, f"at epoch {epoch + 1}, batch {step}")
                B = idx.shape[0]
                seen += B
                data_sum += data * B
                pen_sum += penalty * B
                correct += c
                logs = self._logs((data_sum + pen_sum) / seen, correct / seen)
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            extra = {"data_loss": data_sum / max(seen, 1), "reg_loss": pen_sum / max(seen, 1)}
            if validation_data is not None and self._should_eval(epoch, validation_freq):
                val_logs = self.evaluate(vx, vy, batch_size=validation_batch_size or batch_size, verbose=0,
                                         return_dict=True, _cbs=cbs)
                self._input_buffers(min(batch_size, n), y)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                extra["val_data_loss"], extra["val_reg_loss"] = self._last_eval_parts
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.history is not None:  # beyond Keras: the loss split into its two parts
                for k, v in extra.items():
                    self.history.history.setdefault(k, []).append(v)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return self.history

    @staticmethod
    def _should_eval(epoch, freq):
        if isinstance(freq, int):
            return (epoch + 1) % freq == 0
        return (epoch + 1) in freq

    @staticmethod
    def _verbose(verbose):
        if verbose == "auto":
            return 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")
        return int(verbose)

    @staticmethod
    def _check_batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        return int(batch_size)

    # -------------------------------------------------------------- summary
    def summary(self, line_length=None, positions=None, print_fn=None):
        """Prints tf-keras's table: layer (type), output shape, param count, totals."""
        self._require_built("summary")
        print_fn = print_fn or print
        width = line_length or 65
        pos = positions or [0.45, 0.85, 1.0]
        cols = [int(width * p) for p in pos] if pos[-1] <= 1 else list(pos)

        def row(fields):
            line = ""
            for i, f in enumerate(fields):
                if i > 0:
                    line = line[:-1] + " "
                line += str(f)
                line = line[:cols[i]]
                line += " " * (cols[i] - len(line))
            return line

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(row([" Layer (type)", "Output Shape", "Param #"]))
        print_fn("=" * width)
        for layer in self.layers:
            shape = "(None, " + ", ".join(str(s) for s in layer.output_shape) + ")"
            print_fn(row([f" {layer.name} ({type(layer).__name__})", shape, layer.count_params()]))
            print_fn(" " * width)
        total = self.count_params()
        print_fn("=" * width)
        print_fn(f"Total params: {total} ({_readable_size(total * 4)})")
        print_fn(f"Trainable params: {total} ({_readable_size(total * 4)})")
        print_fn(f"Non-trainable params: 0 ({_readable_size(0)})")
        print_fn("_" * width)

    # --------------------------------------------------------------- config
    def get_config(self):
        cfg = {"name": self.name, "layers": [layers_module.serialize(l) for l in self._layers]}
        if self._input_shape is not None:
            cfg["input_shape"] = list(self._input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"))
        for lc in config["layers"]:
            model.add(layers_module.deserialize(lc))
        if config.get("input_shape") is not None:
            model._input_shape = tuple(config["input_shape"])
        return model

    # --------------------------------------------------------------- saving
    def save_weights(self, filepath, overwrite=True):
        """Writes the weights atomically (format: see pyreg.saving)."""
        from . import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Reads weights written by save_weights or save; the model is unchanged on any error."""
        from . import saving
        saving.load_weights(self, filepath)

    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Writes architecture, weights, compile settings and optimizer state, so that
        pyreg.models.load_model resumes training exactly."""
        from . import saving
        saving.save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def release_buffers(self):
        """Frees the activation, gradient and batch buffers (kept between calls for speed)."""
        for l in self._layers:
            l.release_buffers()
        self._gbufs = self._xbuf = self._ybuf = self._dbuf = None


def _readable_size(nbytes):
    units = ["Byte", "KB", "MB", "GB", "TB"]
    size = float(nbytes)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.2f} {unit}"
        size /= 1024


def load_model(filepath, compile=True):
    """A model written by Sequential.save (no pickle, no code execution)."""
    from . import saving
    return saving.load_model(filepath, compile=compile)
