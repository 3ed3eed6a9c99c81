"""Optimizers with tf-keras's legacy equations (the Keras 2 API the tutorial
uses: `Adam(lr=0.0001, decay=1e-6)`).

Learning rate at step k (0-based, counted in batches over the whole run):
lr / (1 + decay * k), computed in float32 as TensorFlow. The update itself is
one C loop per parameter buffer, fused with the regularizer's gradient.

Beyond Keras, `proximal_l1=True` applies each weight's L1 term by
soft-thresholding after the step instead of adding l1 * sign(w) to the
gradient, so weights reach exact zeros (see README, "Proximal L1"):
SGD: w = soft(w - lr*g, lr*l1), the proximal gradient step;
Adam: m without the L1 term, v with it, then w = soft(w - step, lr*sqrt(1-beta_2^t)*l1/(sqrt(v)+eps)).
"""
import math
import numbers
import warnings

import numpy as np

from . import _core


def _check_hyper(value, name, low=0.0, high=None, strict_low=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    value = float(value)
    if value < low or (strict_low and value == low) or (high is not None and value > high):
        rng = f"{'(' if strict_low else '['}{low}, {high if high is not None else 'inf'}{']' if high is not None else ')'}"
        raise ValueError(f"{name}: expected a value in {rng}, got {value!r}")
    return value


class Optimizer:
    """Base: holds iterations, decay and the per-weight state (one flat buffer per slot)."""

    _slot_names = ()
    _fused_prox = False  # True when the C update applies proximal L1 itself

    def __init__(self, name, learning_rate, kwargs):
        allowed = {"lr", "decay", "clipnorm", "clipvalue", "global_clipnorm", "proximal_l1"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"{name}: unexpected keyword arguments {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "lr" in kwargs:
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", UserWarning, stacklevel=3)
            learning_rate = kwargs["lr"]
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            if kwargs.get(k) is not None:
                raise ValueError(f"{name}: {k} is not supported by pyreg")
        self.name = name
        self.learning_rate = _check_hyper(learning_rate, f"{name} learning_rate")
        self.decay = _check_hyper(kwargs.get("decay", 0.0), f"{name} decay")
        self.proximal_l1 = bool(kwargs.get("proximal_l1", False))
        self.iterations = 0
        self._slots = {}     # id(weight array) -> dict of slot arrays
        self._owners = {}    # id(weight array) -> weight array (keeps ids valid)

    @property
    def lr(self):
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = _check_hyper(value, f"{self.name} lr")

    def decayed_lr(self):
        """lr / (1 + decay * iterations), in float32 as tf-keras's _decayed_lr."""
        lr = np.float32(self.learning_rate)
        if self.decay:
            lr = lr / (np.float32(1.0) + np.float32(self.decay) * np.float32(self.iterations))
        return float(np.float32(lr))

    # ---- state
    def _ensure_slots(self, arrays):
        missing = [a for a in arrays if id(a) not in self._slots]
        if not missing or not self._slot_names:
            for a in missing:
                self._slots[id(a)] = {}
                self._owners[id(a)] = a
            return
        total = sum(a.size for a in missing)
        flat = {s: np.zeros(total, dtype=np.float32) for s in self._slot_names}
        off = 0
        for a in missing:
            self._slots[id(a)] = {s: flat[s][off:off + a.size].reshape(a.shape) for s in self._slot_names}
            self._owners[id(a)] = a
            off += a.size

    def variables(self):
        """[iterations] + slot arrays in weight order (for saving)."""
        out = [np.array(self.iterations, dtype=np.int64)]
        for key in self._owners:
            out += [self._slots[key][s] for s in self._slot_names]
        return out

    def get_slot_state(self, arrays):
        return [[np.array(self._slots[id(a)][s]) for s in self._slot_names] if id(a) in self._slots else None
                for a in arrays]

    def set_slot_state(self, arrays, states, iterations):
        self._ensure_slots(arrays)
        for a, st in zip(arrays, states):
            if st is None:
                continue
            for s, v in zip(self._slot_names, st):
                np.copyto(self._slots[id(a)][s], v)
        self.iterations = int(iterations)

    # ---- updates
    def apply(self, triples):
        """One step over (weight, grad, regularizer) triples; returns the summed
        penalty of the pre-update weights (the regularizer's gradient is added to
        grad in place, fused with the update)."""
        lr = self.begin_step([w for w, _, _ in triples])
        penalty = 0.0
        for w, g, reg in triples:
            penalty += self.update(w, g, reg, lr)
        self.end_step()
        return penalty

    # A step in three parts, so that a model can update a large weight block by
    # block while its gradient is computed (never holding the whole gradient):
    # begin_step, update(...) for every weight or row block, end_step.
    def begin_step(self, arrays):
        """Creates missing optimizer state; returns this step's learning rate."""
        self._ensure_slots(arrays)
        return self.decayed_lr()

    def update(self, w, g, reg, lr, rows=None):
        """Updates w (or its rows [r0, r1) when rows is given, with g the
        gradient of those rows); returns the penalty of the pre-update rows."""
        slots = self._slots[id(w)]
        if rows is not None:
            r0, r1 = rows
            w = w[r0:r1]
            slots = {k: v[r0:r1] for k, v in slots.items()}
        l1 = reg.l1 if reg is not None else 0.0
        l2 = reg.l2 if reg is not None else 0.0
        if self.proximal_l1 and l1 and not self._fused_prox:
            penalty = _core.reg_penalty(w, l1, 0.0) + self._update(w, g, slots, lr, 0.0, l2)
            self._prox(w, l1, lr)
            return penalty
        return self._update(w, g, slots, lr, l1, l2)

    def end_step(self):
        self.iterations += 1

    def apply_gradients(self, grads_and_vars):
        """Keras's apply_gradients: [(grad, weight array), ...]; the gradients
        must already include any regularization term. Returns None."""
        triples = []
        for g, w in grads_and_vars:
            if not isinstance(w, np.ndarray) or w.dtype != np.float32 or not w.flags.c_contiguous or not w.flags.writeable:
                raise TypeError("apply_gradients: variables must be the model's float32 weight arrays "
                                "(model.trainable_weights)")
            g = np.asarray(g)
            if g.shape != w.shape:
                raise ValueError(f"apply_gradients: gradient of shape {g.shape} for a variable of shape {w.shape}")
            triples.append((w, np.array(g, dtype=np.float32, order="C", copy=True), None))
        self.apply(triples)

    def _update(self, w, g, slots, lr, l1, l2):
        raise NotImplementedError

    def _prox(self, w, l1, lr):
        _core.soft_threshold(w, float(np.float32(lr) * np.float32(l1)))

    def get_config(self):
        cfg = {"name": self.name, "learning_rate": self.learning_rate, "decay": self.decay}
        if self.proximal_l1:
            cfg["proximal_l1"] = True
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Adam(Optimizer):
    """tf-keras legacy Adam (ResourceApplyAdam): epsilon is added to sqrt(v)
    before bias correction ("epsilon hat"), unlike PyTorch."""

    _slot_names = ("m", "v")
    _fused_prox = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="Adam", **kwargs):
        super().__init__(name, learning_rate, kwargs)
        self.beta_1 = _check_hyper(beta_1, "Adam beta_1", 0.0, 1.0)
        self.beta_2 = _check_hyper(beta_2, "Adam beta_2", 0.0, 1.0)
        self.epsilon = _check_hyper(1e-7 if epsilon is None else epsilon, "Adam epsilon")
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self._slot_names = ("m", "v", "vhat")

    def _update(self, w, g, s, lr, l1, l2):
        return _core.adam_update(w, g, s["m"], s["v"], s.get("vhat"), lr, self.beta_1, self.beta_2,
                                 self.epsilon, self.iterations + 1, self.amsgrad, l1, l2, self.proximal_l1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=self.amsgrad)
        return cfg


class SGD(Optimizer):
    """tf-keras legacy SGD: plain, momentum (ResourceApplyKerasMomentum) or Nesterov."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(name, learning_rate, kwargs)
        self.momentum = _check_hyper(momentum, "SGD momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.momentum:
            self._slot_names = ("momentum",)

    def _update(self, w, g, slots, lr, l1, l2):
        buf = slots.get("momentum")
        return _core.sgd_update(w, g, buf, lr, self.momentum, self.nesterov, l1, l2)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(momentum=self.momentum, nesterov=self.nesterov)
        return cfg


_BY_NAME = {"adam": Adam, "sgd": SGD}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}: pyreg supports 'adam' and 'sgd' "
                     "(pyreg.optimizers.Adam, pyreg.optimizers.SGD)")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    cls = {"Adam": Adam, "SGD": SGD}.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown optimizer config {config!r}")
    return cls(**config["config"])
