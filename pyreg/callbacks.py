"""Training callbacks with tf-keras 2 (`tf_keras.callbacks`) semantics.

Contract with the model (same call sequence as tf-keras `Model.fit`):

    callbacks = CallbackList(callbacks, add_history=True,
                             add_progbar=verbose != 0, model=model,
                             verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            logs = ...                      # running means: {'loss': .., ..}
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training: break
        epoch_logs = dict(logs)
        # validation = evaluate(..., callbacks=callbacks): on_test_* hooks
        # on the same CallbackList (its ProgbarLogger stays silent), then
        epoch_logs.update({'val_' + k: v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training: break
    callbacks.on_train_end(logs=epoch_logs)
    return model.history

evaluate: on_test_begin(); on_test_batch_begin(step) /
on_test_batch_end(step, logs) per batch; on_test_end(logs).
predict: on_predict_begin(); on_predict_batch_begin(step) /
on_predict_batch_end(step, {'outputs': batch_outputs}); on_predict_end().
"""

import logging
import os
import sys

import numpy as np

from .utils.progbar import Progbar

logger = logging.getLogger(__name__)


def _print(message):
    # Same as tf-keras io_utils.print_msg: stdout + newline, flushed.
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class Callback:
    """Base class for callbacks.

    Attributes:
        params: Dict of training parameters (verbose, epochs, steps, ...).
        model: The model being trained/evaluated.
    """

    def __init__(self):
        self.validation_data = None
        self.model = None
        self.params = {}

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    # Backwards-compatible aliases: the train-batch hooks forward to these.
    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


def _flatten(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, (list, tuple)):
        return [cb for item in callbacks for cb in _flatten(item)]
    return [callbacks]


class CallbackList:
    """Dispatches every hook to a list of callbacks, in order.

    Args:
        callbacks: Callback or list of callbacks.
        add_history: Append a `History` unless one is already present.
        add_progbar: Append a `ProgbarLogger(count_mode="steps")` unless one
            is already present.
        model: Model passed to every callback's `set_model`.
        **params: Passed to every callback's `set_params` (e.g. verbose,
            epochs, steps).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False,
                 model=None, **params):
        self.callbacks = _flatten(callbacks)
        self._history = next(
            (cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next(
            (cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)),
            None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger(count_mode="steps")
            self.callbacks.append(self._progbar)

        self.model = None
        self.params = {}
        # Model first: ProgbarLogger.set_params may look at the model.
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def set_params(self, params):
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model):
        self.model = model
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    # `logs=None` becomes a fresh {} so callbacks can always index it.
    def on_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs or {})

    def on_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs or {})

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs or {})

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs or {})

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs or {})

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs or {})

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs or {})

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs or {})

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs or {})

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs or {})

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs or {})

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs or {})

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs or {})

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs or {})

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs or {})


class History(Callback):
    """Records epoch logs: `history[key]` is the list of per-epoch values,
    keys in the order they first appear in the logs; `epoch` lists the
    epoch indices. `model.fit` returns this object (`model.history`)."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        # Keep model.history pointing at the latest recorder.
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints a progress bar and metrics to stdout.

    Uses params `verbose`, `epochs` and `steps` (or `samples` when
    count_mode="samples"). Logged values are the model's running metric
    results, so all of them are displayed as-is (stateful), as tf-keras does
    with the model's metrics. Inside `fit`, validation is silent; a bare
    `evaluate`/`predict` shows its own bar (predict without metrics).
    """

    def __init__(self, count_mode="samples", stateful_metrics=None):
        super().__init__()
        if count_mode not in ("samples", "steps"):
            raise ValueError(
                f"Unknown `count_mode`: {count_mode}. "
                'Expected values are ["samples", "steps"]')
        self.use_steps = count_mode == "steps"
        self.stateful_metrics = set(stateful_metrics or ())
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        # None: inferred from the batches seen at the end of the first epoch.
        self.target = params.get("steps" if self.use_steps else "samples")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True  # validation inside fit stays silent

    def on_train_end(self, logs=None):
        self._called_in_fit = False  # a later evaluate() may show its bar

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._batch_update_progbar(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._batch_update_progbar(batch, logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_begin(self, logs=None):
        self._reset_progbar()

    def on_predict_batch_end(self, batch, logs=None):
        self._batch_update_progbar(batch, None)  # never show predictions

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = Progbar(
            target=self.target, verbose=self.verbose,
            stateful_metrics=self.stateful_metrics,
            unit_name="step" if self.use_steps else "sample")

    def _items(self, logs):
        self.progbar._update_stateful_metrics(logs.keys())
        return list(logs.items())

    def _batch_update_progbar(self, batch, logs):
        logs = dict(logs or {})
        if self.progbar is None:
            self._reset_progbar()
        if self.use_steps:
            self.seen = batch + 1  # one-indexed
        else:
            batch_size = logs.pop("size", 0)
            num_steps = logs.pop("num_steps", 1)
            logs.pop("batch", None)
            self.seen += num_steps * batch_size
        if self.verbose == 1:
            self.progbar.update(self.seen, self._items(logs), finalize=False)

    def _finalize_progbar(self, logs):
        if self.progbar is None:
            self._reset_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, self._items(logs or {}),
                            finalize=True)


class TerminateOnNaN(Callback):
    """Stops training when a NaN or infinite loss is encountered."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _resolve_mode(name, mode, maximize_if):
    """Comparison op for 'min'/'max'/'auto' ('auto' decided by
    `maximize_if(monitor)`)."""
    if mode not in ("auto", "min", "max"):
        logger.warning("%s mode %s is unknown, fallback to auto mode.",
                       name, mode)
        mode = "auto"
    if mode == "auto":
        mode = "max" if maximize_if else "min"
    return np.greater if mode == "max" else np.less


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) every epoch or every `save_freq`
    batches.

    `filepath` may contain format fields filled with `epoch` (1-based),
    `batch` (1-based, batch-level saving) and the logs, e.g.
    `"weights.{epoch:02d}-{val_loss:.2f}.pyreg"`. With `save_best_only`,
    saves only when `monitor` improves ('auto' mode: maximize when 'acc' is
    in the name or it starts with 'fmeasure', else minimize).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0,
                 save_best_only=False, save_weights_only=False, mode="auto",
                 save_freq="epoch", options=None,
                 initial_value_threshold=None, **kwargs):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self.options = options  # accepted for API compatibility; unused
        self.period = kwargs.get("period", 1)  # deprecated epoch interval
        self.epochs_since_last_save = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = -1
        self._current_epoch = 0
        if save_freq != "epoch" and not isinstance(save_freq, int):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq}. "
                'Expected save_freq are "epoch" or integer')
        self.monitor_op = _resolve_mode(
            "ModelCheckpoint", mode,
            "acc" in monitor or monitor.startswith("fmeasure"))
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = -np.inf if self.monitor_op is np.greater else np.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_since_last_save += 1
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # new epoch restarted numbering
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        if not (isinstance(self.save_freq, int)
                or self.epochs_since_last_save >= self.period):
            return
        self.epochs_since_last_save = 0
        filepath = self._get_file_path(epoch, batch, logs)
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if os.path.isdir(filepath):
            raise IOError(
                "Please specify a non-directory filepath for "
                f"ModelCheckpoint. Filepath used is an existing directory: "
                f"{filepath}")

        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            self._save(filepath)
            return
        current = logs.get(self.monitor)
        if current is None:
            logger.warning("Can save best model only with %s available, "
                           "skipping.", self.monitor)
        elif self.monitor_op(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                       f"{self.best:.5f} to {current:.5f}, saving model to "
                       f"{filepath}")
            self.best = current
            self._save(filepath)
        elif self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve "
                   f"from {self.best:.5f}")

    def _save(self, filepath):
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1,
                                        **logs)
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}".'
                f" Reason: {e}") from e


class EarlyStopping(Callback):
    """Stops training when `monitor` has stopped improving for `patience`
    epochs ('auto' mode: maximize names ending in acc/accuracy/auc).

    An improvement must exceed `min_delta`; with `baseline`, the wait counter
    only resets once the baseline is beaten. With `restore_best_weights`,
    the weights of the best epoch (or of the first epoch if none improved)
    are restored at the end of training.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0,
                 verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _resolve_mode(
            "EarlyStopping", mode,
            monitor.endswith(("acc", "accuracy", "auc")))
        # Signed so that `monitor_op(current - min_delta, best)` works both
        # ways.
        self.min_delta = abs(min_delta) * (
            1 if self.monitor_op is np.greater else -1)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # Reset so an instance can be reused across fit() calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Fall back to the first epoch's weights if nothing improves.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current,
                                                             self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best "
                       f"epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            logger.warning(
                "Early stopping conditioned on metric `%s` which is not "
                "available. Available metrics are: %s",
                self.monitor, ",".join(logs.keys()))
        return value

    def _is_improvement(self, monitor_value, reference_value):
        return self.monitor_op(monitor_value - self.min_delta,
                               reference_value)


class LambdaCallback(Callback):
    """Callback built from plain functions, called positionally:
    `on_epoch_begin(epoch, logs)`, `on_epoch_end(epoch, logs)`,
    `on_batch_begin(batch, logs)`, `on_batch_end(batch, logs)` (train
    batches), `on_train_begin(logs)`, `on_train_end(logs)`. Extra keyword
    arguments become attributes, e.g. `on_test_end=fn`."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None,
                 on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_batch_begin=on_batch_begin, on_batch_end=on_batch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end)
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)
