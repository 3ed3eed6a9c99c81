"""Tests for pyreg.callbacks and pyreg.utils.progbar (tf-keras semantics).

A fake model and a fake training loop (same hook order as tf-keras
`Model.fit`) drive the callbacks; `time.time` is replaced by a manual clock
so the printed durations are deterministic. When `tf_keras` is importable,
the printed output is also compared byte for byte with tf-keras's.
"""

import os
import importlib
import math
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest


def _load_modules():
    """Import our two modules; if the package `__init__` is missing or
    broken, load them under a private package name instead."""
    try:
        from pyreg import callbacks
        from pyreg.utils import progbar
        return callbacks, progbar
    except Exception:
        root = Path(__file__).resolve().parents[1] / "pyreg"
        for name, path in (("_pyreg_cbtest", root),
                           ("_pyreg_cbtest.utils", root / "utils")):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]
            sys.modules[name] = pkg
        return (importlib.import_module("_pyreg_cbtest.callbacks"),
                importlib.import_module("_pyreg_cbtest.utils.progbar"))


cbm, pbm = _load_modules()
Progbar = pbm.Progbar


# -- fixtures and fakes -----------------------------------------------------

class Clock:
    """Manual replacement for time.time (starts far from 0 because tf-keras
    treats a 0 timestamp as 'unset')."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(time, "time", c)
    return c


class FakeModel:
    """Records the calls callbacks make on a model."""

    def __init__(self):
        self.stop_training = False
        self.calls = []
        self.weights = [0]
        self.history = None
        self.metrics = [SimpleNamespace(name="loss"),
                        SimpleNamespace(name="accuracy")]

    def save(self, path):
        self.calls.append(("save", path))

    def save_weights(self, path):
        self.calls.append(("save_weights", path))

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.calls.append(("set_weights", list(weights)))
        self.weights = list(weights)


def fake_fit(callbacks, model, epochs, steps, batch_logs, val_logs=None,
             clock=None, dt=0.25, val_steps=2):
    """Mirror of tf-keras Model.fit's callback sequence.

    batch_logs(epoch, step) -> running-mean logs after that batch;
    val_logs(epoch) -> final evaluate() logs (without the val_ prefix).
    The model's weights become [epoch + 1] after training epoch `epoch`.
    """
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = None
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            if clock is not None:
                clock.t += dt
            logs = batch_logs(epoch, step)
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        model.weights = [epoch + 1]
        epoch_logs = dict(logs)
        if val_logs is not None:  # evaluate() with the same CallbackList
            vlogs = val_logs(epoch)
            callbacks.on_test_begin()
            for s in range(val_steps):
                callbacks.on_test_batch_begin(s)
                callbacks.on_test_batch_end(s, vlogs)
            callbacks.on_test_end(vlogs)
            epoch_logs.update({"val_" + k: v for k, v in vlogs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callbacks.on_train_end(epoch_logs)
    return model.history


def fake_evaluate(callbacks, steps, logs, clock=None, dt=0.25):
    callbacks.on_test_begin()
    for s in range(steps):
        callbacks.on_test_batch_begin(s)
        if clock is not None:
            clock.t += dt
        callbacks.on_test_batch_end(s, logs)
    callbacks.on_test_end(logs)


def fake_predict(callbacks, steps, clock=None, dt=0.25):
    callbacks.on_predict_begin()
    for s in range(steps):
        callbacks.on_predict_batch_begin(s)
        if clock is not None:
            clock.t += dt
        callbacks.on_predict_batch_end(s, {"outputs": [0.0]})
    callbacks.on_predict_end()


def last_line(out):
    """The finally displayed line of a dynamic (\\r-redrawn) output."""
    return out.rsplit("\r", 1)[-1]


CONST_LOGS = {"loss": 3671.2, "accuracy": 0.4123}

# 391 steps of 1/32 s: 12.21875 s elapsed, 31.25 ms per step.
FINAL_391 = ("391/391 [==============================] - 12s 31ms/step"
             " - loss: 3671.2000 - accuracy: 0.4123\n")


# -- Progbar ------------------------------------------------------------------

def test_progbar_non_dynamic_exact_output(clock, capsys):
    bar = Progbar(3, interval=0)
    bar._dynamic_display = False  # e.g. a redirected stdout on Windows
    for i, loss in enumerate([0.5, 0.3, 0.1], start=1):
        clock.t += 1.0
        bar.update(i, [("loss", loss)])  # averaged: 0.5, 0.4, 0.3
    assert capsys.readouterr().out == (
        "\n1/3 [=========>....................] - ETA: 2s - loss: 0.5000"
        "\n2/3 [===================>..........] - ETA: 1s - loss: 0.4000"
        "\n3/3 [==============================] - 3s 1s/step - loss: 0.3000"
        "\n")


def test_progbar_dynamic_redraws_in_place(clock, capsys):
    bar = Progbar(2, interval=0)
    assert bar._dynamic_display  # always on POSIX, as in tf-keras
    clock.t += 0.5
    bar.update(1, [("loss", 0.5)])
    clock.t += 0.5
    bar.update(2, [("loss", 0.5)])
    line1 = "1/2 [==============>...............] - ETA: 0s - loss: 0.5000"
    line2 = ("2/2 [==============================] - 1s 500ms/step"
             " - loss: 0.5000")
    assert capsys.readouterr().out == (
        "\r" + line1 + "\b" * len(line1) + "\r" + line2 + "\n")


def test_progbar_pads_when_line_shrinks(clock, capsys):
    bar = Progbar(10000, interval=0)
    clock.t += 1.0
    bar.update(1)  # " - ETA: 2:46:39"
    first = capsys.readouterr().out
    clock.t += 0.001
    bar.update(9999)  # " - ETA: 0s": 5 characters shorter
    out = capsys.readouterr().out
    assert out.startswith("\b" * (len(first) - 1) + "\r")
    assert last_line(out) == (
        " 9999/10000 [" + "=" * 28 + ">.] - ETA: 0s" + " " * 5)


def test_progbar_value_formats(clock, capsys):
    values = [("big", 3671.2), ("acc", 0.4123), ("tiny", 0.0005),
              ("edge", 0.001), ("neg", -0.5), ("negtiny", -0.0005)]
    names = [k for k, _ in values]
    bar = Progbar(1, stateful_metrics=names)
    clock.t += 2.0
    bar.update(1, values)
    assert last_line(capsys.readouterr().out) == (
        "1/1 [==============================] - 2s 2s/step - big: 3671.2000"
        " - acc: 0.4123 - tiny: 5.0000e-04 - edge: 1.0000e-03"
        " - neg: -0.5000 - negtiny: -5.0000e-04\n")
    # verbose=2 compares the signed value: negatives use the e-format.
    bar = Progbar(1, verbose=2, stateful_metrics=names)
    clock.t += 2.0
    bar.update(1, values)
    assert capsys.readouterr().out == (
        "1/1 - 2s - big: 3671.2000 - acc: 0.4123 - tiny: 5.0000e-04"
        " - edge: 1.0000e-03 - neg: -5.0000e-01 - negtiny: -5.0000e-04"
        " - 2s/epoch - 2s/step\n")


def test_progbar_averages_weighted_by_steps(clock, capsys):
    bar = Progbar(4, interval=0, stateful_metrics=["s"])
    bar.update(1, [("m", 1.0), ("s", 1.0)])
    bar.update(4, [("m", 3.0), ("s", 3.0)])  # m weight 3: (1 + 9) / 4
    assert last_line(capsys.readouterr().out).endswith(
        " - m: 2.5000 - s: 3.0000\n")


def test_progbar_add_and_unknown_target(clock, capsys):
    bar = Progbar(None, interval=0)
    clock.t += 0.25
    bar.add(1, [("loss", 1.0)])
    clock.t += 0.25
    bar.add(2, [("loss", 4.0)])
    assert bar._seen_so_far == 3
    assert last_line(capsys.readouterr().out) == (
        "      3/Unknown - 0s 125ms/step - loss: 3.0000")


def test_progbar_eta_and_time_formats(clock, capsys):
    for target, eta in [(10000, "2:46:39"), (100, "1:39"), (61, "60s")]:
        bar = Progbar(target)
        clock.t += 1.0
        bar.update(1)
        assert f" - ETA: {eta}" in capsys.readouterr().out
    fmt = Progbar._format_time
    assert fmt(0, "step") == " 0s/step"
    assert fmt(2.4, "epoch") == " 2s/epoch"
    assert fmt(0.0315, "step") == " 32ms/step"
    assert fmt(0.0005, "sample") == " 500us/sample"


def test_progbar_throttles_intermediate_updates(clock, capsys):
    bar = Progbar(10, interval=0.05)
    bar._dynamic_display = False
    for i in range(1, 11):
        clock.t += 0.02
        bar.update(i)
    lines = capsys.readouterr().out.split("\n")[1:-1]
    # Redraws happen at steps 1, 4, 7 (>= 0.05 s apart), plus the final one.
    assert [line.split("/")[0] for line in lines] == [" 1", " 4", " 7", "10"]


def test_progbar_verbose0_is_silent(clock, capsys):
    bar = Progbar(2, verbose=0)
    bar.update(1, [("loss", 1.0)])
    bar.update(2, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


# -- CallbackList and History -------------------------------------------------

def test_callbacklist_dispatch_and_defaults():
    events = []

    class Recorder(cbm.Callback):
        def __getattribute__(self, name):
            attr = super().__getattribute__(name)
            if name.startswith("on_") and callable(attr):
                return lambda *a: (events.append((name,) + a), attr(*a))
            return attr

    model = FakeModel()
    rec = Recorder()
    cbl = cbm.CallbackList(rec, add_history=True, add_progbar=True,
                           model=model, verbose=0, epochs=3, steps=2)
    assert [type(cb).__name__ for cb in cbl] == [
        "Recorder", "History", "ProgbarLogger"]
    assert rec.model is model and rec.params == {
        "verbose": 0, "epochs": 3, "steps": 2}
    assert model.history is cbl.callbacks[1]
    # Existing History/ProgbarLogger instances are not duplicated.
    hist = cbm.History()
    cbl2 = cbm.CallbackList([hist, cbm.ProgbarLogger("steps")],
                            add_history=True, add_progbar=True, model=model)
    assert len(cbl2.callbacks) == 2 and model.history is hist

    cbl.on_train_begin()
    cbl.on_train_batch_end(0, {"loss": 1.0})
    cbl.on_epoch_end(0)
    assert events == [("on_train_begin", {}),
                      ("on_train_batch_end", 0, {"loss": 1.0}),
                      ("on_batch_end", 0, {"loss": 1.0}),  # compat alias
                      ("on_epoch_end", 0, {})]


def test_history_records_keys_in_order(clock):
    model = FakeModel()
    cbl = cbm.CallbackList(None, add_history=True, model=model, verbose=0,
                           epochs=3, steps=2)
    hist = fake_fit(
        cbl, model, 3, 2,
        lambda e, s: {"loss": 1.0 / (e + 1), "accuracy": 0.5 + e / 10},
        val_logs=lambda e: {"loss": 2.0 / (e + 1), "accuracy": 0.4})
    assert hist is model.history and isinstance(hist, cbm.History)
    assert list(hist.history) == ["loss", "accuracy", "val_loss",
                                  "val_accuracy"]
    assert hist.history["loss"] == [1.0, 0.5, 1.0 / 3]
    assert hist.history["val_loss"] == [2.0, 1.0, 2.0 / 3]
    assert hist.history["accuracy"] == [0.5, 0.6, 0.7]
    assert hist.epoch == [0, 1, 2]
    assert hist.params == {"verbose": 0, "epochs": 3, "steps": 2}


# -- ProgbarLogger ----------------------------------------------------------

def _progbar_fit(verbose, epochs, steps=391, dt=1 / 32, val=False, clock=None):
    model = FakeModel()
    cbl = cbm.CallbackList(None, add_history=True, add_progbar=verbose != 0,
                           model=model, verbose=verbose, epochs=epochs,
                           steps=steps)
    fake_fit(cbl, model, epochs, steps or 3, lambda e, s: dict(CONST_LOGS),
             val_logs=(lambda e: {"loss": 0.25}) if val else None,
             clock=clock, dt=dt)


def test_progbarlogger_final_line(clock, capsys):
    _progbar_fit(verbose=1, epochs=1, clock=clock)
    out = capsys.readouterr().out
    assert out.startswith("\r") and "Epoch" not in out
    assert " - ETA: 0s - loss: 3671.2000" in out
    assert last_line(out) == FINAL_391


def test_progbarlogger_epoch_header_and_silent_validation(clock, capsys):
    _progbar_fit(verbose=1, epochs=2, val=True, clock=clock)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2\n\r")
    first, second = out.split("Epoch 2/2\n")
    expected = FINAL_391[:-1] + " - val_loss: 0.2500\n"
    assert last_line(first) == last_line(second) == expected
    assert out.count("\n") == 4  # 2 headers + 2 final lines, no eval bars


def test_progbarlogger_verbose2(clock, capsys):
    _progbar_fit(verbose=2, epochs=1, clock=clock)
    assert capsys.readouterr().out == (
        "391/391 - 12s - loss: 3671.2000 - accuracy: 0.4123"
        " - 12s/epoch - 31ms/step\n")


def test_progbarlogger_verbose0_prints_nothing(clock, capsys):
    _progbar_fit(verbose=0, epochs=2, clock=clock)
    assert capsys.readouterr().out == ""


def test_progbarlogger_infers_unknown_steps(clock, capsys):
    _progbar_fit(verbose=1, epochs=1, steps=None, dt=0.25, clock=clock)
    out = capsys.readouterr().out
    assert "      1/Unknown - 0s 250ms/step - loss: 3671.2000" in out
    assert last_line(out) == (
        "3/3 [==============================] - 1s 250ms/step"
        " - loss: 3671.2000 - accuracy: 0.4123\n")


def test_progbarlogger_evaluate_and_predict(clock, capsys):
    model = FakeModel()
    cbl = cbm.CallbackList(None, add_history=True, add_progbar=True,
                           model=model, verbose=1, epochs=1, steps=2)
    fake_evaluate(cbl, 2, {"loss": 0.25, "accuracy": 1.0}, clock=clock)
    assert last_line(capsys.readouterr().out) == (
        "2/2 [==============================] - 0s 250ms/step"
        " - loss: 0.2500 - accuracy: 1.0000\n")
    fake_predict(cbl, 2, clock=clock)
    assert last_line(capsys.readouterr().out) == (
        "2/2 [==============================] - 0s 250ms/step\n")


# -- TerminateOnNaN -----------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_terminate_on_nan(bad, capsys):
    model = FakeModel()
    seen = []
    cbl = cbm.CallbackList(
        [cbm.TerminateOnNaN(),
         cbm.LambdaCallback(on_batch_end=lambda b, logs: seen.append(b))],
        add_history=True, model=model, verbose=0, epochs=5, steps=4)
    hist = fake_fit(cbl, model, 5, 4,
                    lambda e, s: {"loss": bad if s == 1 else 1.0})
    assert model.stop_training is True
    assert seen == [0, 1] and hist.epoch == [0]
    assert capsys.readouterr().out == (
        "Batch 1: Invalid loss, terminating training\n")


# -- ModelCheckpoint ----------------------------------------------------------

def test_model_checkpoint_formats_path_every_epoch(tmp_path, capsys):
    model = FakeModel()
    pattern = str(tmp_path / "ckpt"
                  / "weights.{epoch:02d}-{val_loss:.2f}.pyreg")
    ckpt = cbm.ModelCheckpoint(pattern, save_weights_only=True, verbose=1)
    fake_fit(cbm.CallbackList([ckpt], model=model), model, 2, 1,
             lambda e, s: {"loss": 1.0},
             val_logs=lambda e: {"loss": [0.123, 0.456][e]})
    expected = [str(tmp_path / "ckpt" / "weights.01-0.12.pyreg"),
                str(tmp_path / "ckpt" / "weights.02-0.46.pyreg")]
    assert model.calls == [("save_weights", p) for p in expected]
    assert (tmp_path / "ckpt").is_dir()  # parent directory is created
    assert capsys.readouterr().out == (
        f"\nEpoch 1: saving model to {expected[0]}\n"
        f"\nEpoch 2: saving model to {expected[1]}\n")


def test_model_checkpoint_save_best_only(tmp_path, capsys):
    model = FakeModel()
    path = str(tmp_path / "best.pyreg")
    ckpt = cbm.ModelCheckpoint(path, save_best_only=True, verbose=1)
    assert ckpt.monitor_op(1, 2)  # val_loss in auto mode: minimize
    losses = [0.5, 0.6, 0.4]
    fake_fit(cbm.CallbackList([ckpt], model=model), model, 3, 1,
             lambda e, s: {"loss": 1.0},
             val_logs=lambda e: {"loss": losses[e]})
    assert model.calls == [("save", path), ("save", path)]
    assert ckpt.best == 0.4
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from inf to 0.50000, saving model "
        f"to {path}\n"
        "\nEpoch 2: val_loss did not improve from 0.50000\n"
        f"\nEpoch 3: val_loss improved from 0.50000 to 0.40000, saving "
        f"model to {path}\n")


def test_model_checkpoint_modes_and_missing_monitor(tmp_path, caplog):
    assert cbm.ModelCheckpoint("p", monitor="val_accuracy").monitor_op(2, 1)
    assert cbm.ModelCheckpoint("p", monitor="fmeasure_x").monitor_op(2, 1)
    assert cbm.ModelCheckpoint("p", monitor="acc", mode="min").monitor_op(1, 2)
    model = FakeModel()
    ckpt = cbm.ModelCheckpoint(str(tmp_path / "m"), monitor="val_auc",
                               save_best_only=True)
    fake_fit(cbm.CallbackList([ckpt], model=model), model, 1, 1,
             lambda e, s: {"loss": 1.0})
    assert model.calls == []
    assert "Can save best model only with val_auc available" in caplog.text


def test_model_checkpoint_batch_frequency(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "m-{epoch}-{batch}.pyreg")
    ckpt = cbm.ModelCheckpoint(pattern, save_freq=3)
    fake_fit(cbm.CallbackList([ckpt], model=model), model, 2, 4,
             lambda e, s: {"loss": 1.0})
    # Batches counted across epochs: saves after 3rd and 6th batch seen.
    assert [p for _, p in model.calls] == [
        str(tmp_path / "m-1-3.pyreg"), str(tmp_path / "m-2-2.pyreg")]


# -- EarlyStopping ------------------------------------------------------------

def test_early_stopping_patience_and_restore(capsys):
    model = FakeModel()
    es = cbm.EarlyStopping(patience=1, restore_best_weights=True, verbose=1)
    losses = [1.0, 0.5, 0.6, 0.7, 0.4]
    hist = fake_fit(cbm.CallbackList([es], add_history=True, model=model),
                    model, 5, 1, lambda e, s: {"loss": 1.0},
                    val_logs=lambda e: {"loss": losses[e]})
    assert hist.epoch == [0, 1, 2] and es.stopped_epoch == 2
    assert model.stop_training is True
    assert model.calls == [("set_weights", [2])]  # weights after epoch 2
    assert capsys.readouterr().out == (
        "Epoch 3: early stopping\n"
        "Restoring model weights from the end of the best epoch: 2.\n")


def test_early_stopping_min_delta_mode_baseline():
    def run(es, values, monitor="val_loss"):
        model = FakeModel()
        key = monitor[4:]
        return fake_fit(cbm.CallbackList([es], add_history=True, model=model),
                        model, len(values), 1, lambda e, s: {"loss": 1.0},
                        val_logs=lambda e: {key: values[e]}).epoch

    # Improvements smaller than min_delta do not count.
    assert run(cbm.EarlyStopping(min_delta=0.1, patience=1),
               [1.0, 0.95, 0.9, 0.5]) == [0, 1]
    # 'accuracy' is maximized in auto mode.
    assert run(cbm.EarlyStopping(monitor="val_accuracy", patience=1),
               [0.1, 0.2, 0.3, 0.2, 0.1], "val_accuracy") == [0, 1, 2, 3]
    # Not beating the baseline never resets the wait counter.
    assert run(cbm.EarlyStopping(patience=2), [1.0, 1.1, 1.2, 1.3]) == [
        0, 1, 2]
    assert run(cbm.EarlyStopping(baseline=0.1, patience=2),
               [1.0, 1.1, 1.2, 1.3]) == [0, 1]
    # Reusable: state is reset on train begin.
    es = cbm.EarlyStopping(patience=0)
    assert run(es, [1.0, 2.0, 0.5]) == [0, 1]
    assert run(es, [1.0, 0.5, 0.4]) == [0, 1, 2]


# -- LambdaCallback ---------------------------------------------------------

def test_lambda_callback():
    events = []
    cb = cbm.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch,
                                                        logs["loss"])),
        on_batch_begin=lambda batch, logs: events.append(("batch", batch)),
        on_train_end=lambda logs: events.append("train_end"),
        on_test_end=lambda logs: events.append("test_end"))
    model = FakeModel()
    fake_fit(cbm.CallbackList([cb], model=model), model, 1, 2,
             lambda e, s: {"loss": 0.5}, val_logs=lambda e: {"loss": 0.1})
    assert events == ["train_begin", ("batch", 0), ("batch", 1), "test_end",
                      ("epoch", 0, 0.5), "train_end"]


# -- byte-for-byte comparison with tf-keras --------------------------------

@pytest.fixture(scope="module")
def tfk():
    # Never skipped in the normal suite (CI installs tf-keras); only
    # tools/asan.sh, which keeps TensorFlow out of the sanitized run, skips.
    if os.environ.get("PYREG_NO_TF"):
        pytest.skip("TensorFlow is kept out of this run (tools/asan.sh)")
    import tf_keras
    from tf_keras.callbacks import ProgbarLogger
    from tf_keras.utils import Progbar as TFProgbar
    return SimpleNamespace(Progbar=TFProgbar, ProgbarLogger=ProgbarLogger,
                           version=tf_keras.__version__)


def _progbar_scenarios():
    vals = lambda i: [("loss", 3671.2 / i), ("acc", 0.4123), ("tiny", 5e-4),
                      ("neg", -0.5 * i), ("zero", 0.0)]
    return {
        "steps": dict(target=391, dt=1 / 32, steps=range(1, 392)),
        "jumps": dict(target=100, dt=0.7, steps=[1, 4, 30, 31, 90, 100]),
        "slow_eta": dict(target=10000, dt=1.5, steps=[1, 2, 9999, 10000]),
        "minutes": dict(target=200, dt=0.9, steps=[1, 2, 3, 199, 200]),
        "fast": dict(target=5, dt=0.0004, steps=range(1, 6)),
        "unknown": dict(target=None, dt=0.3, steps=range(1, 8)),
        "width": dict(target=7, dt=0.1, steps=range(1, 8), width=10),
        "stateful": dict(target=9, dt=0.2, steps=[1, 5, 9],
                         stateful_metrics=["acc", "neg"]),
        "forced": dict(target=8, dt=0.2, steps=[1, 3, 3], finalize_last=True),
    }, vals


@pytest.mark.parametrize("dynamic", [True, False])
@pytest.mark.parametrize("name,verbose", [
    (name, verbose) for name, sc in sorted(_progbar_scenarios()[0].items())
    for verbose in (1, 2)
    if verbose == 1 or sc["target"] is not None])  # tf-keras v2 needs target
def test_progbar_matches_tf_keras(tfk, monkeypatch, capsys, name, verbose,
                                  dynamic):
    scenario, vals = _progbar_scenarios()
    sc = scenario[name]

    def run(cls):
        clock = Clock()
        monkeypatch.setattr(time, "time", clock)
        bar = cls(sc["target"], width=sc.get("width", 30), verbose=verbose,
                  stateful_metrics=sc.get("stateful_metrics"))
        bar._dynamic_display = dynamic
        steps = list(sc["steps"])
        for n, i in enumerate(steps):
            clock.t += sc["dt"]
            last = n == len(steps) - 1
            fin = True if last and sc.get("finalize_last") else None
            bar.update(i, vals(i), finalize=fin)
        if sc["target"] is None:
            bar.target = steps[-1]
            bar.update(steps[-1], vals(steps[-1]), finalize=True)
        return capsys.readouterr().out

    capsys.readouterr()
    theirs = run(tfk.Progbar)
    ours = run(Progbar)
    assert theirs and ours == theirs


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("steps", [5, None])
def test_progbarlogger_matches_tf_keras(tfk, monkeypatch, capsys, verbose,
                                        steps):
    def run(logger_cls):
        clock = Clock()
        monkeypatch.setattr(time, "time", clock)
        model = FakeModel()
        logger = logger_cls(count_mode="steps")
        logger.set_model(model)
        logger.set_params({"verbose": verbose, "epochs": 2, "steps": steps})
        batch_logs = lambda e, s: {"loss": 1.5 / (s + 1 + e),
                                   "accuracy": 0.1 * s}
        fake_fit(cbm.CallbackList([logger]), model, 2, 5, batch_logs,
                 val_logs=lambda e: {"loss": 0.3, "accuracy": 0.0005},
                 clock=clock, dt=0.125)
        # A standalone evaluate() and predict() with a fresh logger.
        logger = logger_cls(count_mode="steps")
        logger.set_model(model)
        logger.set_params({"verbose": verbose, "epochs": 1, "steps": steps})
        cbl = cbm.CallbackList([logger])
        fake_evaluate(cbl, 5, {"loss": 0.25, "accuracy": 1.0}, clock=clock)
        fake_predict(cbl, 5, clock=clock)
        return capsys.readouterr().out

    capsys.readouterr()
    theirs = run(tfk.ProgbarLogger)
    ours = run(cbm.ProgbarLogger)
    assert theirs and ours == theirs
