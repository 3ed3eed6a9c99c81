"""The tutorial's experiment: L1 and elastic-net regularization in a CNN.

    python -m pyreg.article            # a few minutes on 2 cores, small sample
    python -m pyreg.article --full     # the whole tutorial: 50000 images, 10 epochs, each experiment

Model, exactly as the tutorial: three Conv2D(128, 3x3, relu) on 32x32x3,
Flatten, Dense(1024, relu, kernel_regularizer=...), Dense(10, softmax),
Adam(lr=0.0001, decay=1e-6), categorical cross-entropy, batch 128.
Experiments: l1(0.01) and l1_l2(0.01, 0.01) (the tutorial's), and as baselines
no regularizer and l2(0.01); optionally l1 applied proximally (exact zeros).

Data: CIFAR-10 when a copy is found (Keras's cache, pyreg's cache, --cifar-path),
else pyreg's embedded SYNTHETIC CIFAR-shaped set (said so in the output).
Model selection uses a validation split (the last 10% of the training data, as
Keras's validation_split); the test set is used once, at the end.
"""
import argparse
import gc
import json
import os
import sys
import time

import numpy as np

import pyreg
from pyreg import analysis
from pyreg.datasets import cifar10, synthetic
from pyreg.layers import Conv2D, Dense, Flatten
from pyreg.models import Sequential
from pyreg.optimizers import Adam
from pyreg.regularizers import l1, l1_l2, l2
from pyreg.utils import set_random_seed, to_categorical

EXPERIMENTS = {
    "l1": ("l1(0.01)", lambda: l1(0.01), False),
    "l1_l2": ("l1_l2(0.01, 0.01)", lambda: l1_l2(0.01, 0.01), False),
    "none": ("no regularizer", lambda: None, False),
    "l2": ("l2(0.01)", lambda: l2(0.01), False),
    "l1_prox": ("l1(0.01), proximal (beyond Keras)", lambda: l1(0.01), True),
}


def build_model(regularizer, proximal=False):
    """The tutorial's model and compile settings."""
    model = Sequential()
    model.add(Conv2D(128, kernel_size=(3, 3), activation="relu", input_shape=(32, 32, 3)))
    model.add(Conv2D(128, kernel_size=(3, 3), activation="relu"))
    model.add(Conv2D(128, kernel_size=(3, 3), activation="relu"))
    model.add(Flatten())
    model.add(Dense(1024, activation="relu", kernel_regularizer=regularizer))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy",
                  optimizer=Adam(learning_rate=0.0001, decay=1e-6, proximal_l1=proximal), metrics=["accuracy"])
    return model


def load_data(args):
    """(x_train, y_train), (x_test, y_test), description."""
    if args.data in ("auto", "cifar10"):
        try:
            (xtr, ytr), (xte, yte) = cifar10.load_data(path=args.cifar_path, download=args.download, verbose=1)
            desc = "CIFAR-10"
            ntr = min(args.samples, len(xtr)) if args.samples else len(xtr)
            nte = min(args.test_samples, len(xte)) if args.test_samples else len(xte)
            return (xtr[:ntr], ytr[:ntr]), (xte[:nte], yte[:nte]), f"{desc} ({ntr} train, {nte} test images)"
        except (OSError, ValueError) as e:
            if args.data == "cifar10":
                raise
            print(f"CIFAR-10 not found ({type(e).__name__}); using the embedded synthetic set instead.\n")
    ntr = args.samples or 50000
    nte = args.test_samples or 10000
    (xtr, ytr), (xte, yte) = synthetic.load_data(n_train=ntr, n_test=nte, seed=args.seed)
    return (xtr, ytr), (xte, yte), f"SYNTHETIC CIFAR-shaped data, not CIFAR-10 ({ntr} train, {nte} test images)"


def run_experiment(key, xtr, ytr, xte, yte, args):
    label, make_reg, proximal = EXPERIMENTS[key]
    set_random_seed(args.seed)
    model = build_model(make_reg(), proximal)
    print(f"\n=== {key}: Dense(1024) with {label} ===")
    t0 = time.perf_counter()
    history = model.fit(xtr, ytr, batch_size=args.batch_size, shuffle=True, epochs=args.epochs,
                        validation_split=args.validation_split, verbose=args.verbose)
    train_time = time.perf_counter() - t0
    test_loss, test_acc = model.evaluate(xte, yte, batch_size=args.batch_size, verbose=0)
    data_loss, penalty = model._last_eval_parts
    dense = model.layers[4]
    report = analysis.sparsity_report(dense, thresholds=(1e-3, 1e-2))
    rng = np.random.default_rng(0)
    sample = dense.kernel.value.ravel()[rng.choice(dense.kernel.value.size, 200_000, replace=False)].copy()
    result = {
        "experiment": key, "regularizer": label, "test_loss": test_loss, "test_accuracy": test_acc,
        "test_data_loss": data_loss, "test_penalty": penalty,
        "frac_abs_lt_1e-3": report["<0.001"], "frac_abs_lt_1e-2": report["<0.01"],
        "exact_zeros": report["exact_zeros"], "train_seconds": train_time,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    del model, dense
    gc.collect()
    return result, sample


def print_table(results):
    head = (f"{'experiment':<10} {'test loss':>11} {'test acc':>9} {'data loss':>10} {'penalty':>11} "
            f"{'|w|<1e-3':>9} {'|w|<1e-2':>9} {'zeros':>7} {'time':>7}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['experiment']:<10} {r['test_loss']:>11.4f} {r['test_accuracy']:>9.4f} {r['test_data_loss']:>10.4f} "
              f"{r['test_penalty']:>11.4f} {r['frac_abs_lt_1e-3']:>9.1%} {r['frac_abs_lt_1e-2']:>9.1%} "
              f"{r['exact_zeros']:>7.1%} {r['train_seconds']:>6.0f}s")


def write_figures(results, samples, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figures (pip install 'pyreg[plot]').")
        return []
    paths = []
    for r in results:
        fig = analysis.plot_history(r["history"], title=f"{r['experiment']}: {r['regularizer']}")
        p = os.path.join(out, f"history_{r['experiment']}.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    fig = analysis.plot_weight_histograms({r["experiment"]: samples[r["experiment"]] for r in results},
                                          title="Dense(1024) kernel weights (200,000 sampled)")
    p = os.path.join(out, "dense_kernel_histograms.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyreg.article", description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per experiment (tutorial: 10)")
    ap.add_argument("--samples", type=int, default=1536, help="training images, 0 = all (tutorial: 50000)")
    ap.add_argument("--test-samples", type=int, default=1000, help="test images, 0 = all (tutorial: 10000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--validation-split", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    ap.add_argument("--experiments", default="l1,l1_l2,none,l2",
                    help=f"comma-separated, from {','.join(EXPERIMENTS)}")
    ap.add_argument("--data", choices=["auto", "cifar10", "synthetic"], default="auto")
    ap.add_argument("--cifar-path", default=None, help="CIFAR-10 archive or extracted folder")
    ap.add_argument("--download", action="store_true", help="download CIFAR-10 if no copy is found")
    ap.add_argument("--out", default="pyreg_out", help="folder for results.json and figures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    ap.add_argument("--full", action="store_true", help="the whole tutorial: all data, 10 epochs")
    args = ap.parse_args(argv)
    if args.full:
        args.samples, args.test_samples, args.epochs = 0, 0, 10
    keys = [k.strip() for k in args.experiments.split(",") if k.strip()]
    unknown = [k for k in keys if k not in EXPERIMENTS]
    if unknown:
        ap.error(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}")
    if args.threads:
        pyreg.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    (xtr, ytr), (xte, yte), desc = load_data(args)
    print(f"Data: {desc}")
    print(f"Threads: {pyreg.get_num_threads()}, GEMM kernel: {pyreg._core.get_isa()}")
    x_train_norm = xtr.astype(np.float32) / np.float32(255.0)
    x_test_norm = xte.astype(np.float32) / np.float32(255.0)
    y_train, y_test = to_categorical(ytr, 10), to_categorical(yte, 10)

    results, samples = [], {}
    for key in keys:
        r, s = run_experiment(key, x_train_norm, y_train, x_test_norm, y_test, args)
        results.append(r)
        samples[key] = s
        print(f"Loss: {r['test_loss']:.3f}")
        print(f"Accuracy: {r['test_accuracy']:.3f}")

    print(f"\nResults on the test set ({desc}); loss = data loss + penalty, as Keras reports it.")
    print("Sparsity: fraction of the Dense(1024) kernel's 88.6 M weights.\n")
    print_table(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"data": desc, "args": vars(args), "results": results}, f, indent=1)
    paths = write_figures(results, samples, args.out)
    print(f"\nWrote {os.path.join(args.out, 'results.json')}" + (f" and {len(paths)} figures" if paths else ""))
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
