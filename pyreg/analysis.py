"""Teaching tools beyond Keras: how sparse are the weights, and what do they
look like? (The tutorial says L1 makes W sparse; these measure it.)

    pyreg.analysis.sparsity(model.layers[-2], threshold=1e-3)   # fraction |w| < 1e-3
    pyreg.analysis.weight_histogram(model.layers[-2].kernel.value)
    pyreg.analysis.plot_history(history)                        # needs matplotlib
"""
import numpy as np


def _kernel(obj):
    """The array to measure: an array itself, a layer's kernel, or a model's kernels."""
    if isinstance(obj, np.ndarray):
        return obj
    kernel = getattr(obj, "kernel", None)
    if kernel is not None:
        return kernel.value
    if hasattr(obj, "layers"):
        ks = [l.kernel.value.ravel() for l in obj.layers if getattr(l, "kernel", None) is not None]
        return np.concatenate(ks) if ks else np.zeros(0, np.float32)
    raise TypeError(f"expected an array, a layer with a kernel or a model, got {type(obj).__name__}")


def sparsity(obj, threshold=1e-3):
    """Fraction of weights with |w| < threshold (threshold=0: exact zeros only)."""
    w = _kernel(obj)
    if w.size == 0:
        return 0.0
    if threshold == 0:
        return float(np.count_nonzero(w == 0)) / w.size
    return float(np.count_nonzero(np.abs(w) < threshold)) / w.size


def sparsity_report(obj, thresholds=(1e-3, 1e-2)):
    """{'n': size, 'exact_zeros': fraction, '<1e-03': fraction, ...,
    'mean_abs': mean |w|}."""
    w = _kernel(obj)
    out = {"n": int(w.size), "exact_zeros": sparsity(w, 0.0)}
    for t in thresholds:
        out[f"<{t:g}"] = sparsity(w, t)
    out["mean_abs"] = float(np.mean(np.abs(w), dtype=np.float64)) if w.size else 0.0
    return out


def weight_histogram(obj, bins=101, range=None):
    """(counts, bin_edges) of the weights, symmetric around 0 by default."""
    w = _kernel(obj).ravel()
    if range is None:
        m = float(np.max(np.abs(w))) if w.size else 1.0
        range = (-m, m) if m > 0 else (-1.0, 1.0)
    return np.histogram(w, bins=bins, range=range)


def plot_history(history, keys=None, ax=None, title=None):
    """Loss and accuracy curves of a History (or its .history dict). Returns the figure."""
    import matplotlib
    if ax is None:
        matplotlib.use(matplotlib.get_backend())
    import matplotlib.pyplot as plt
    h = getattr(history, "history", history)
    keys = keys or [k for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in h]
    loss_keys = [k for k in keys if "loss" in k]
    acc_keys = [k for k in keys if "acc" in k]
    if ax is None:
        fig, axes = plt.subplots(1, 2 if acc_keys else 1, figsize=(10 if acc_keys else 5, 3.5))
        axes = np.atleast_1d(axes)
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    epochs = np.arange(1, len(h[keys[0]]) + 1) if keys else []
    for k in loss_keys:
        axes[0].plot(epochs, h[k], marker="o", label=k)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (data + penalty)")
    axes[0].set_yscale("log")
    axes[0].legend()
    if acc_keys and len(axes) > 1:
        for k in acc_keys:
            axes[1].plot(epochs, h[k], marker="o", label=k)
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("accuracy")
        axes[1].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_weight_histograms(named_weights, bins=101, range=None, title=None):
    """One histogram panel per (name, array-or-layer) pair, on shared axes. Returns the figure."""
    import matplotlib.pyplot as plt
    items = list(named_weights.items()) if isinstance(named_weights, dict) else list(named_weights)
    if range is None:
        m = max((float(np.max(np.abs(_kernel(o)))) for _, o in items), default=1.0) or 1.0
        range = (-m, m)
    fig, axes = plt.subplots(1, len(items), figsize=(4 * len(items), 3.2), sharex=True, squeeze=False)
    for ax, (name, obj) in zip(axes[0], items):
        counts, edges = weight_histogram(obj, bins=bins, range=range)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
        ax.set_yscale("log")
        ax.set_title(f"{name}\nexact zeros {sparsity(obj, 0):.1%}, |w|<1e-3 {sparsity(obj, 1e-3):.1%}", fontsize=9)
        ax.set_xlabel("w")
    axes[0][0].set_ylabel("count (log)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
