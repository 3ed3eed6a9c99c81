#!/usr/bin/env python3
"""pyreg's benchmark: the machine's peak, pyreg's GEMM against OpenBLAS, and the
tutorial's model in pyreg against PyTorch and TensorFlow (tf_keras).

    python bench/bench.py                       # everything, < 10 minutes on 2 cores
    python bench/bench.py --quick               # smoke test, 1-2 minutes
    python bench/bench.py --threads 1 --peers pyreg,torch --json /tmp/r.json

Every framework runs in its own subprocess (this script started with --worker),
one after another, with the same thread count, so that imports do not interfere
and each one's peak RSS is its own. The parent imports nothing but the standard
library. See bench/README.md for what each number means.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Variables that this environment may set and that slow down NumPy's OpenBLAS;
# removed from every worker's environment.
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

PEERS = ("pyreg", "openblas", "torch", "tf")
PEER_ALIASES = {"numpy": "openblas", "blas": "openblas", "pytorch": "torch", "tensorflow": "tf", "keras": "tf"}
PEER_LABELS = {"pyreg": "pyreg", "openblas": "OpenBLAS", "torch": "PyTorch", "tf": "TensorFlow"}
PEER_MODULES = {"pyreg": "pyreg", "openblas": "numpy", "torch": "torch", "tf": "tensorflow"}

# Repetitions: (default, --quick)
SETTINGS = {
    "peak_seconds": (0.5, 0.15),      # per FMA run (best of 3)
    "mem_mib": (512, 256),            # footprint of the bandwidth arrays
    "gemm_min_time": (1.0, 0.15),     # seconds of timed calls per GEMM shape
    "gemm_min_reps": (5, 3),
    "train_warmup": (2, 1),
    "train_steps": (5, 3),
    "infer_warmup": (2, 1),
    "infer_reps": (5, 3),
    "opt_reps": (5, 3),
    "probe_steps": (2, 1),            # PyTorch layout probe: timed steps per layout
    "small_warmup": (5, 3),
    "small_steps": (40, 10),
    "small_batch": (32, 32),
    "batch": (128, 32),
    "worker_timeout": (1500, 600),
}


# --------------------------------------------------------------------- geometry

def conv_chunk_bytes():
    """pyreg's bound on a convolution's patch buffer (PR_CONV_CHUNK_BYTES in
    csrc/conv2d.c), which sets the rows of each conv GEMM; 12 MiB if the source
    is not next to this script."""
    try:
        with open(os.path.join(ROOT, "csrc", "conv2d.c")) as f:
            m = re.search(r"#define\s+PR_CONV_CHUNK_BYTES\s+\(\(int64_t\)\s*(\d+)\s*<<\s*(\d+)\)", f.read())
        if m:
            return int(m.group(1)) << int(m.group(2))
    except OSError:
        pass
    return 12 << 20


def tutorial_layers():
    """The tutorial's weighted layers: ('conv', H, W, C, F, k) (valid, stride 1) or ('dense', I, O)."""
    return [("conv", 32, 32, 3, 128, 3), ("conv", 30, 30, 128, 128, 3), ("conv", 28, 28, 128, 128, 3),
            ("dense", 26 * 26 * 128, 1024), ("dense", 1024, 10)]


def layer_gemm(layer, batch):
    """(M, N, K) of a layer's forward GEMM over the whole batch."""
    if layer[0] == "conv":
        _, H, W, C, F, k = layer
        return batch * (H - k + 1) * (W - k + 1), F, k * k * C
    _, I, O = layer
    return batch, O, I


def model_flops(layers, batch):
    """(forward, training) flops of the GEMMs: 2*M*N*K per forward GEMM; training
    adds the weight gradient (same count) and the input gradient (same count)
    for every layer but the first, whose input needs no gradient. Bias, activation,
    loss and optimizer work is not counted."""
    fwd = train = 0
    for i, layer in enumerate(layers):
        M, N, K = layer_gemm(layer, batch)
        f = 2 * M * N * K
        fwd += f
        train += f * (2 if i == 0 else 3)
    return fwd, train


def param_count(layers):
    n = 0
    for layer in layers:
        if layer[0] == "conv":
            _, H, W, C, F, k = layer
            n += k * k * C * F + F
        else:
            n += layer[1] * layer[2] + layer[2]
    return n


def gemm_shapes(batch):
    """The tutorial model's GEMM shapes at this batch size, as (name, M, N, K,
    trans_a, trans_b), timed on explicit matrices. The convolutions' rows are
    one chunk of whole images (images per chunk * output pixels), as pyreg
    runs the first layer (im2col chunks) and every input gradient (dP chunks);
    the forward and kernel-gradient GEMMs of the 128-channel layers run as one
    implicit GEMM over the batch instead, with the same per-tile work."""
    chunk = conv_chunk_bytes()
    shapes = []
    conv1, conv2 = tutorial_layers()[0], tutorial_layers()[1]
    for name, layer in (("conv1", conv1), ("conv2", conv2)):
        _, H, W, C, F, k = layer
        pix, kdim = (H - k + 1) * (W - k + 1), k * k * C
        imgs = max(1, min(batch, chunk // (pix * kdim * 4)))
        rows = imgs * pix
        shapes.append((f"{name} fwd", rows, F, kdim, False, False))
        shapes.append((f"{name} dW", kdim, F, rows, True, False))
        if name != "conv1":
            shapes.append((f"{name} dX", rows, kdim, F, False, True))
    _, I, O = tutorial_layers()[3]
    shapes += [("dense fwd", batch, O, I, False, False),
               ("dense dW", I, O, batch, True, False),
               ("dense dX", batch, I, O, False, True)]
    return shapes


# ---------------------------------------------------------------- worker helpers

def _timed(fn, reps, warmup=0):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _outside_core(core, fn, reps):
    """Runs fn reps times with every function of pyreg._core wrapped in a timer:
    the share of the wall time spent outside them is pyreg's per-step overhead
    (Python orchestration, argument checks and conversion, allocation). The
    timers' own cost counts as overhead, so the share is an upper bound."""
    names = [n for n in dir(core) if not n.startswith("_") and callable(getattr(core, n))]
    orig = {n: getattr(core, n) for n in names}
    inside = [0.0]

    def wrap(f):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                inside[0] += time.perf_counter() - t0
        return timed

    for n in names:
        setattr(core, n, wrap(orig[n]))
    try:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        wall = time.perf_counter() - t0
    finally:
        for n in names:
            setattr(core, n, orig[n])
    return {"wall_s": wall / reps, "in_core_s": inside[0] / reps, "outside_s": (wall - inside[0]) / reps,
            "outside_share": (wall - inside[0]) / wall, "n": reps}


def _timed_for(fn, min_time, min_reps, max_reps=200):
    """Calls fn once to warm up, then until min_time seconds and min_reps calls."""
    fn()
    times = []
    t_start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - t_start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _summary(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times), "all_s": times}


def _memory_mib():
    """(ru_maxrss, VmHWM, VmRSS) of this process in MiB (None where unknown)."""
    import resource
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
    hwm = rss = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return maxrss, hwm, rss


def _data(batch, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    y = np.zeros((batch, 10), dtype=np.float32)
    y[np.arange(batch), labels] = 1.0
    return x, y, labels


def _import_pyreg():
    import importlib.util
    if importlib.util.find_spec("pyreg") is None and os.path.isdir(os.path.join(ROOT, "pyreg")):
        sys.path.insert(0, ROOT)
    import pyreg
    return pyreg


# ------------------------------------------------------------------ GEMM worker

def _openblas_info():
    """OpenBLAS's configuration as loaded by NumPy: threadpoolctl's report when
    it is installed, else OpenBLAS's own get_config / get_corename via ctypes."""
    try:
        from threadpoolctl import threadpool_info
        infos = [d for d in threadpool_info() if d.get("internal_api") == "openblas"]
        if infos:
            d = infos[0]
            return {"source": "threadpoolctl", "version": d.get("version"), "architecture": d.get("architecture"),
                    "threading_layer": d.get("threading_layer"), "num_threads": d.get("num_threads"),
                    "filepath": d.get("filepath")}
    except Exception:  # threadpoolctl is optional
        pass
    import ctypes
    path = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "openblas" in line.lower() and ".so" in line:
                    path = line.split()[-1]
                    break
    except OSError:
        pass
    if not path:
        return {"source": "none", "note": "no OpenBLAS library found in this process"}
    info = {"source": "ctypes", "filepath": path}
    lib = ctypes.CDLL(path)

    def call(names, restype):
        for n in names:
            fn = getattr(lib, n, None)
            if fn is not None:
                fn.restype = restype
                v = fn()
                return v.decode() if isinstance(v, bytes) else v
        return None
    info["config"] = call(["scipy_openblas_get_config64_", "openblas_get_config64_", "openblas_get_config"],
                          ctypes.c_char_p)
    info["architecture"] = call(["scipy_openblas_get_corename64_", "openblas_get_corename64_",
                                 "openblas_get_corename"], ctypes.c_char_p)
    info["num_threads"] = call(["scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                                "openblas_get_num_threads"], ctypes.c_int)
    return info


def worker_gemm(spec):
    import numpy as np
    threads = spec["threads"]
    out = {"backend": spec["backend"], "threads": threads, "shapes": []}
    if spec["backend"] == "pyreg":
        pyreg = _import_pyreg()
        from pyreg import _core
        pyreg.set_num_threads(threads)
        out["version"] = pyreg.__version__
        out["isa"] = _core.get_isa()
        out["num_threads"] = pyreg.get_num_threads()

        def run(a, b, c, ta, tb):
            _core.sgemm(a, b, c, trans_a=ta, trans_b=tb)
    else:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(threads, user_api="blas")
        except ImportError:
            pass  # OPENBLAS_NUM_THREADS is set in this worker's environment
        out["version"] = f"numpy {np.__version__}"
        out["openblas"] = _openblas_info()
        out["env"] = {k: os.environ.get(k) for k in BLAS_ENV_VARS + ("OPENBLAS_NUM_THREADS",)}

        def run(a, b, c, ta, tb):
            np.matmul(a.T if ta else a, b.T if tb else b, out=c)
    rng = np.random.default_rng(1)
    for name, M, N, K, ta, tb in spec["shapes"]:
        a = rng.random((K, M) if ta else (M, K), dtype=np.float32) - np.float32(0.5)
        b = rng.random((N, K) if tb else (K, N), dtype=np.float32) - np.float32(0.5)
        c = np.empty((M, N), dtype=np.float32)
        times = _timed_for(lambda: run(a, b, c, ta, tb), spec["min_time"], spec["min_reps"])
        out["shapes"].append({"name": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb,
                              "flops": 2 * M * N * K, **_summary(times)})
        del a, b, c
    return out


# ----------------------------------------------------------------- model workers

def _pyreg_model(kind):
    from pyreg.layers import Conv2D, Dense, Flatten
    from pyreg.models import Sequential
    from pyreg.optimizers import Adam
    from pyreg.regularizers import l1
    m = Sequential()
    if kind == "tutorial":
        m.add(Conv2D(128, kernel_size=(3, 3), activation="relu", input_shape=(32, 32, 3)))
        m.add(Conv2D(128, kernel_size=(3, 3), activation="relu"))
        m.add(Conv2D(128, kernel_size=(3, 3), activation="relu"))
        m.add(Flatten())
        m.add(Dense(1024, activation="relu", kernel_regularizer=l1(0.01)))
    else:
        m.add(Conv2D(8, kernel_size=(3, 3), activation="relu", input_shape=(32, 32, 3)))
        m.add(Flatten())
        m.add(Dense(32, activation="relu", kernel_regularizer=l1(0.01)))
    m.add(Dense(10, activation="softmax"))
    m.compile(loss="categorical_crossentropy", optimizer=Adam(learning_rate=1e-4, decay=1e-6), metrics=["accuracy"])
    return m


def _tf_model(keras, kind):
    L = keras.layers
    if kind == "tutorial":
        layers = [L.Conv2D(128, (3, 3), activation="relu", input_shape=(32, 32, 3)),
                  L.Conv2D(128, (3, 3), activation="relu"),
                  L.Conv2D(128, (3, 3), activation="relu"),
                  L.Flatten(),
                  L.Dense(1024, activation="relu", kernel_regularizer=keras.regularizers.l1(0.01))]
    else:
        layers = [L.Conv2D(8, (3, 3), activation="relu", input_shape=(32, 32, 3)),
                  L.Flatten(),
                  L.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.l1(0.01))]
    m = keras.Sequential(layers + [L.Dense(10, activation="softmax")])
    m.compile(loss="categorical_crossentropy",
              optimizer=keras.optimizers.legacy.Adam(learning_rate=1e-4, decay=1e-6), metrics=["accuracy"])
    return m


def _torch_model(torch, kind):
    nn = torch.nn
    if kind == "tutorial":
        m = nn.Sequential(nn.Conv2d(3, 128, 3), nn.ReLU(), nn.Conv2d(128, 128, 3), nn.ReLU(),
                          nn.Conv2d(128, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(26 * 26 * 128, 1024), nn.ReLU(),
                          nn.Linear(1024, 10))
        reg = m[7].weight
    else:
        m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(30 * 30 * 8, 32), nn.ReLU(),
                          nn.Linear(32, 10))
        reg = m[3].weight
    return m, reg


def _torch_adam(torch, params):
    """Adam(lr=1e-4), fused (one pass per tensor) when this PyTorch supports it
    on CPU, with Keras's decay lr / (1 + 1e-6 * step) as a LambdaLR."""
    try:
        opt, impl = torch.optim.Adam(params, lr=1e-4, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        opt, impl = torch.optim.Adam(params, lr=1e-4), "default"
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1.0 + 1e-6 * k))
    return opt, sched, impl


def _torch_input(torch, x, layout):
    t = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC array -> logical NCHW
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    return t.contiguous()


def _torch_setup(spec):
    import torch
    torch.set_num_threads(spec["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    return torch


def _torch_train_fn(torch, model, reg, opt, sched, xt, lt):
    F = torch.nn.functional

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xt), lt) + 0.01 * reg.abs().sum()
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()
    return step


def _torch_infer_fn(torch, model, xt):
    def infer():
        with torch.inference_mode():
            return torch.softmax(model(xt), dim=1).numpy()
    return infer


def worker_torch_probe(spec):
    """Times a few steps in NCHW and in channels-last; returns the faster layout
    for training and for inference (run apart from the measured worker so that
    its memory does not count in that worker's peak RSS)."""
    import gc
    torch = _torch_setup(spec)
    x, _, labels = _data(spec["batch"])
    lt = torch.from_numpy(labels)
    res = {}
    for layout in ("nchw", "channels_last"):
        model, reg = _torch_model(torch, spec["model"])
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        opt, sched, _ = _torch_adam(torch, model.parameters())
        xt = _torch_input(torch, x, layout)
        train = _timed(_torch_train_fn(torch, model, reg, opt, sched, xt, lt), spec["steps"], warmup=1)
        infer = _timed(_torch_infer_fn(torch, model, xt), spec["steps"], warmup=1)
        res[layout] = {"train_s": min(train), "infer_s": min(infer)}
        del model, reg, opt, sched, xt
        gc.collect()
    return {"probe": res,
            "train_layout": min(res, key=lambda k: res[k]["train_s"]),
            "infer_layout": min(res, key=lambda k: res[k]["infer_s"])}


def worker_model(spec):
    peer, kind, threads, batch = spec["peer"], spec["model"], spec["threads"], spec["batch"]
    out = {"peer": peer, "model": kind, "threads": threads, "batch": batch}
    if peer == "tf":
        # threads before anything else touches TensorFlow
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import tf_keras as keras
        keras.utils.set_random_seed(0)
        out["version"] = f"tensorflow {tf.__version__}, tf_keras {keras.__version__}"
        out["config"] = (f"intra_op={threads} inter_op=1, TF_ENABLE_ONEDNN_OPTS="
                         f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset (default)')}")
    elif peer == "torch":
        torch = _torch_setup(spec)
        out["version"] = f"torch {torch.__version__}"
    else:
        pyreg = _import_pyreg()
        pyreg.set_num_threads(threads)
        out["version"] = f"pyreg {pyreg.__version__} ({pyreg._core.get_isa()})"
        out["config"] = f"set_num_threads({threads})"
    out["rss_after_import_mib"] = _memory_mib()[2]

    x, y, labels = _data(batch)
    tw, ts = spec["train_warmup"], spec["train_steps"]
    iw, ir = spec["infer_warmup"], spec["infer_reps"]

    if peer == "pyreg":
        model = _pyreg_model(kind)
        train_times = _timed(lambda: model.train_on_batch(x, y), ts, warmup=tw)
        mem = _memory_mib()
        out["overhead"] = _outside_core(pyreg._core, lambda: model.train_on_batch(x, y), max(3, ts // 2))
        infer_times = _timed(lambda: model.predict(x, batch_size=batch, verbose=0), ir, warmup=iw)
        out["infer_call"] = f"model.predict(x, batch_size={batch}, verbose=0)"
        out["params"] = model.count_params()
        if spec.get("optimizer"):
            # the fused Adam + L1 pass alone, over the model's weights and last gradients;
            # large Dense kernels are updated block by block during backward and keep
            # no gradient, so they get one here (allocated after the RSS measurement)
            model._ensure_grads(full=True)
            triples = [(w.value, w.grad, w.regularizer) for w in model._weights_list()]
            opt_times = _timed(lambda: model.optimizer.apply(triples), spec["opt_reps"], warmup=1)
            out["optimizer"] = {"params": model.count_params(), "bytes": 32 * model.count_params(),
                                **_summary(opt_times)}
    elif peer == "tf":
        model = _tf_model(keras, kind)
        train_times = _timed(lambda: model.train_on_batch(x, y), ts, warmup=tw)
        mem = _memory_mib()
        xt = tf.constant(x)
        options = {
            "model.predict_on_batch(x)": lambda: model.predict_on_batch(x),
            "model(x, training=False)": lambda: model(xt, training=False).numpy(),
        }
        best = None
        out["infer_options"] = {}
        for name, fn in options.items():
            t = _timed(fn, ir, warmup=iw)
            out["infer_options"][name] = statistics.median(t)
            if best is None or statistics.median(t) < statistics.median(best[1]):
                best = (name, t)
        out["infer_call"], infer_times = best
        out["params"] = int(model.count_params())
    else:  # torch
        model, reg = _torch_model(torch, kind)
        tl, il = spec.get("train_layout", "nchw"), spec.get("infer_layout", "nchw")
        if tl == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        opt, sched, impl = _torch_adam(torch, model.parameters())
        lt = torch.from_numpy(labels)
        xt = _torch_input(torch, x, tl)
        train_times = _timed(_torch_train_fn(torch, model, reg, opt, sched, xt, lt), ts, warmup=tw)
        mem = _memory_mib()
        if il != tl:
            model = model.to(memory_format=torch.channels_last if il == "channels_last" else torch.contiguous_format)
            xt = _torch_input(torch, x, il)
        infer_times = _timed(_torch_infer_fn(torch, model, xt), ir, warmup=iw)
        out["infer_call"] = "torch.inference_mode(): softmax(model(x))"
        out["config"] = (f"set_num_threads({threads}), interop 1, train layout {tl}, inference layout {il}, "
                         f"Adam {impl}, L1 as 0.01*w.abs().sum() in the loss")
        out["params"] = sum(p.numel() for p in model.parameters())
    out["train"] = _summary(train_times)
    out["infer"] = _summary(infer_times)
    out["rss_train_mib"], out["vmhwm_train_mib"], _ = mem
    return out


def worker_main(spec_json, out_path):
    spec = json.loads(spec_json)
    kind = spec["kind"]
    try:
        if kind == "gemm":
            res = worker_gemm(spec)
        elif kind == "torch_probe":
            res = worker_torch_probe(spec)
        else:
            res = worker_model(spec)
        res["status"] = "ok"
    except ModuleNotFoundError as e:
        if e.name not in ("pyreg", "numpy", "torch", "tensorflow", "tf_keras"):
            raise  # e.g. pyreg._core not built: a failure, not a missing peer
        res = {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    with open(out_path, "w") as f:
        json.dump(res, f)


# ------------------------------------------------------------------------ parent

def log(msg):
    print(msg, flush=True)


def child_env(threads):
    env = dict(os.environ)
    for k in BLAS_ENV_VARS:
        env.pop(k, None)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_worker(spec, label, args, tmpdir):
    out_path = os.path.join(tmpdir, f"worker{run_worker.count}.json")
    err_path = os.path.join(tmpdir, f"worker{run_worker.count}.log")
    run_worker.count += 1
    t0 = time.perf_counter()
    log(f"  {label} ...")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec), "--worker-out", out_path]
    try:
        with open(err_path, "w") as err:
            proc = subprocess.run(cmd, env=child_env(args.threads), stdout=err, stderr=subprocess.STDOUT,
                                  timeout=args.timeout, cwd=ROOT)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    dt = time.perf_counter() - t0
    res = None
    if rc == 0 and os.path.exists(out_path):
        with open(out_path) as f:
            res = json.load(f)
    if res is None:
        with open(err_path, errors="replace") as f:
            tail = f.read()[-2000:]
        res = {"status": "failed", "error": f"exit status {rc}", "log_tail": tail}
        log(f"    FAILED ({rc}) after {dt:.0f} s; last output:\n" + "\n".join("    | " + l for l in tail.splitlines()[-15:]))
    else:
        log(f"    {res['status']} ({dt:.0f} s)")
    res["wall_s"] = dt
    return res


run_worker.count = 0


def compile_peak(tmpdir):
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return None, "no C compiler (gcc/cc) found"
    exe = os.path.join(tmpdir, "peak_fma")
    cmd = [cc, "-O2", "-pthread", "-o", exe, os.path.join(HERE, "peak_fma.c")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"{' '.join(cmd)} failed: {p.stderr.strip()[-500:]}"
    return exe, None


def run_peak(exe, mode, threads, arg):
    p = subprocess.run([exe, mode, str(threads), str(arg)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return json.loads(p.stdout)


def machine_info():
    info = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
        if rev.returncode == 0:
            info["pyreg_commit"] = rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    info["removed_env"] = {k: os.environ[k] for k in BLAS_ENV_VARS if k in os.environ}
    try:
        info["loadavg_start"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def peer_available(peer):
    import importlib.util
    if peer == "pyreg":
        return importlib.util.find_spec("pyreg") is not None or os.path.isdir(os.path.join(ROOT, "pyreg"))
    if peer == "tf":
        return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("tf_keras") is not None
    return importlib.util.find_spec(PEER_MODULES[peer]) is not None


# ------------------------------------------------------------------------ report

def status_of(res):
    if res is None:
        return "not run"
    return res.get("status", "failed")


def make_row(section, name, unit, values, statuses, ratio="time", pct=None):
    """values/statuses: {backend: number or None}; ratio: 'time' (peer/pyreg,
    a speedup of pyreg), 'memory' (peer/pyreg) or None."""
    row = {"section": section, "measurement": name, "unit": unit, "values": values, "status": statuses}
    if ratio and values.get("pyreg"):
        row["ratio_peer_over_pyreg"] = {p: v / values["pyreg"] for p, v in values.items()
                                        if p != "pyreg" and v is not None}
    if pct:
        row["pct_of_peak"] = pct
    return row


def fmt_num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def render_section(title, rows, backends):
    lines = ["", title, "=" * len(title)]
    header = ["measurement", "unit"] + [PEER_LABELS[b] for b in backends]
    table = [header]
    for r in rows:
        cells = [r["measurement"], r["unit"]]
        for b in backends:
            st = r["status"].get(b, "not run")
            v = r["values"].get(b)
            if v is None:
                cells.append(st if st != "ok" else "-")
                continue
            s = fmt_num(v)
            if r.get("pct_of_peak", {}).get(b) is not None:
                s += f" ({r['pct_of_peak'][b]:.0f}%)"
            ratio = r.get("ratio_peer_over_pyreg", {}).get(b)
            if ratio is not None:
                s += f" x{ratio:.2f}"
            cells.append(s)
        table.append(cells)
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) if j < 2 else str(c).rjust(w)
                               for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _overhead_lines(rows, res, what):
    """pyreg's time outside its C functions per training step (see _outside_core):
    a row for the JSON and a line for the text."""
    o = res.get("overhead") if isinstance(res, dict) else None
    if not o:
        return []
    rows.append({"section": "overhead", "measurement": f"{what}: train step outside pyreg._core", "unit": "ms",
                 "values": {"pyreg": o["outside_s"] * 1e3}, "status": {"pyreg": "ok"},
                 "share_of_step": o["outside_share"]})
    return [f"  pyreg, {what}: {o['outside_s'] * 1e3:.2f} ms of a {o['wall_s'] * 1e3:.2f} ms training step "
            f"outside its C functions = {100 * o['outside_share']:.2f}% (Python, argument checks, allocation; "
            f"{o['n']} timed steps)"]


def build_report(args, peak, mem, gemm, models, small):
    """Rows for the table and the JSON; returns (rows, text lines)."""
    rows, text = [], []
    n = args.threads
    peak_n = peak.get(n, {}).get("gflops") if peak else None
    fwd_flops, train_flops = model_flops(tutorial_layers(), args.batch)

    def pct(gflops):
        return 100.0 * gflops / peak_n if (peak_n and gflops is not None) else None

    # GEMMs
    gb = [b for b in ("pyreg", "openblas") if b in args.peers]
    if gb and "gemm" not in args.skip:
        sec = f"GEMM: tutorial model's shapes at batch {args.batch}, {n} thread(s) " \
              f"[ms (% of {n}-thread peak) xR = OpenBLAS ms / pyreg ms]"
        by = {b: {s["name"]: s for s in gemm[b].get("shapes", [])} if gemm.get(b) else {} for b in gb}
        srows = []
        for name, M, N, K, ta, tb in gemm_shapes(args.batch):
            tr = ("A^T" if ta else "") + ("B^T" if tb else "")
            label = f"{name} ({M}, {N}, {K}){' ' + tr if tr else ''}"
            vals, sts, pcts, gfl = {}, {}, {}, {}
            for b in gb:
                s = by[b].get(name)
                sts[b] = status_of(gemm.get(b))
                vals[b] = s["median_s"] * 1e3 if s else None
                if s:
                    gfl[b] = s["flops"] / s["median_s"] * 1e-9
                    pcts[b] = pct(gfl[b])
            row = make_row("gemm", label, "ms", vals, sts, pct={k: v for k, v in pcts.items() if v is not None})
            row["gflops"] = gfl
            srows.append(row)
        rows += srows
        text += render_section(sec, srows, gb)

    # tutorial model
    mb = [b for b in ("pyreg", "torch", "tf") if b in args.peers]
    if mb and "model" not in args.skip:
        sec = f"Tutorial model (Conv2D(128)x3, Dense(1024, l1), Dense(10)), batch {args.batch}, {n} thread(s) " \
              f"[xR = peer / pyreg]"
        g = {b: models.get(b) or {} for b in mb}
        sts = {b: status_of(models.get(b)) for b in mb}

        def val(b, *keys):
            d = g[b]
            for k in keys:
                d = d.get(k) if isinstance(d, dict) else None
            return d

        t_train = {b: val(b, "train", "median_s") for b in mb}
        t_inf = {b: val(b, "infer", "median_s") for b in mb}
        gf_train = {b: train_flops / t * 1e-9 for b, t in t_train.items() if t}
        gf_inf = {b: fwd_flops / t * 1e-9 for b, t in t_inf.items() if t}
        mrows = [
            make_row("model", "train step (median)", "ms", {b: t and t * 1e3 for b, t in t_train.items()}, sts),
            make_row("model", f"train throughput ({train_flops / 1e9:.1f} GFLOP/step)", "GFLOP/s",
                     {b: gf_train.get(b) for b in mb}, sts, ratio=None,
                     pct={b: pct(v) for b, v in gf_train.items() if pct(v) is not None}),
            make_row("model", f"inference batch of {args.batch} (median)", "ms",
                     {b: t and t * 1e3 for b, t in t_inf.items()}, sts),
            make_row("model", f"inference throughput ({fwd_flops / 1e9:.1f} GFLOP/batch)", "GFLOP/s",
                     {b: gf_inf.get(b) for b in mb}, sts, ratio=None,
                     pct={b: pct(v) for b, v in gf_inf.items() if pct(v) is not None}),
            make_row("model", "peak RSS, training (ru_maxrss)", "MiB", {b: val(b, "rss_train_mib") for b in mb}, sts,
                     ratio="memory"),
            make_row("model", "peak RSS, training (VmHWM)", "MiB", {b: val(b, "vmhwm_train_mib") for b in mb}, sts,
                     ratio="memory"),
        ]
        rows += mrows
        text += render_section(sec, mrows, mb)
        text += _overhead_lines(rows, g.get("pyreg", {}), "tutorial model")

    if mb and "small" not in args.skip:
        g2 = {b: small.get(b) or {} for b in mb}
        sts2 = {b: status_of(small.get(b)) for b in mb}
        sb = args.small_batch
        srows = [
            make_row("small", "train step (median)", "ms",
                     {b: g2[b].get("train", {}).get("median_s") and g2[b]["train"]["median_s"] * 1e3 for b in mb},
                     sts2),
            make_row("small", f"inference batch of {sb} (median)", "ms",
                     {b: g2[b].get("infer", {}).get("median_s") and g2[b]["infer"]["median_s"] * 1e3 for b in mb},
                     sts2),
        ]
        rows += srows
        text += render_section(f"Small model (Conv2D(8), Dense(32, l1), Dense(10)), batch {sb}: per-step overhead "
                               f"[xR = peer / pyreg]", srows, mb)
        text += _overhead_lines(rows, g2.get("pyreg", {}), "small model")

    # optimizer pass
    opt = (models.get("pyreg") or {}).get("optimizer")
    if opt:
        t = opt["median_s"]
        gbs = opt["bytes"] / t * 1e-9
        lines = ["", "Optimizer pass alone (pyreg: Adam + L1 fused, model.optimizer.apply)",
                 "=" * 68,
                 f"  {opt['params'] / 1e6:.1f} M parameters, {opt['bytes'] / 1e9:.2f} GB moved "
                 f"(w, g, m, v read and written: 32 bytes/parameter)",
                 f"  time {t * 1e3:.1f} ms (median of {opt['n']}), effective bandwidth {gbs:.1f} GB/s"]
        row = {"section": "optimizer", "measurement": "Adam + L1 pass", "unit": "ms",
               "values": {"pyreg": t * 1e3}, "status": {"pyreg": "ok"}, "effective_gbs": gbs}
        if mem:
            for k, label in (("rmw4_gbs", "in-place 4-array stream (same access pattern)"),
                             ("triad_gbs", "STREAM triad")):
                if mem.get(k):
                    row[f"pct_of_{k}"] = 100 * gbs / mem[k]
                    lines.append(f"  = {100 * gbs / mem[k]:.0f}% of the measured {label}: {mem[k]:.1f} GB/s")
        if models.get("pyreg", {}).get("train", {}).get("median_s"):
            share = t / models["pyreg"]["train"]["median_s"]
            row["share_of_train_step"] = share
            lines.append(f"  = {100 * share:.0f}% of pyreg's training step")
        rows.append(row)
        text += lines
    return rows, text


# -------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="pyreg's benchmark: the machine's peak, pyreg's GEMM against OpenBLAS, "
                                            "the tutorial's model against PyTorch and TensorFlow (see bench/README.md)")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    p.add_argument("--threads", type=int, default=cpus, help=f"threads for every framework (default: {cpus})")
    p.add_argument("--batch", type=int, default=None, help="batch size of the tutorial model (default 128, "
                                                            "32 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and batch 32: a 1-2 minute smoke test")
    p.add_argument("--json", default=os.path.join(HERE, "results.json"), help="where to write the results "
                                                                               "(default bench/results.json)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help="comma-separated subset of pyreg,openblas,torch,tf (default: all)")
    p.add_argument("--torch-layout", choices=("auto", "nchw", "channels_last"), default="auto",
                   help="PyTorch memory format; auto times both briefly and keeps the faster (default)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: peak,gemm,model,small")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per worker process")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    q = 1 if args.quick else 0
    args.settings = {k: v[q] for k, v in SETTINGS.items()}
    if args.batch is None:
        args.batch = args.settings["batch"]
    args.small_batch = args.settings["small_batch"]
    if args.timeout is None:
        args.timeout = args.settings["worker_timeout"]
    if args.threads < 1 or args.batch < 1:
        p.error("--threads and --batch must be >= 1")
    peers = []
    for name in args.peers.split(","):
        name = PEER_ALIASES.get(name.strip().lower(), name.strip().lower())
        if not name:
            continue
        if name not in PEERS:
            p.error(f"unknown peer {name!r}: choose among {', '.join(PEERS)}")
        if name not in peers:
            peers.append(name)
    args.peers = peers
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.worker_out)
        return 0
    s = args.settings
    t_start = time.perf_counter()
    n = args.threads
    info = machine_info()
    fwd_flops, train_flops = model_flops(tutorial_layers(), args.batch)
    log(f"pyreg benchmark: {n} thread(s), batch {args.batch}{', quick mode' if args.quick else ''}; "
        f"peers: {', '.join(args.peers)}")
    log(f"CPU: {info.get('cpu', '?')} ({info.get('usable_cpus')} usable); pyreg commit {info.get('pyreg_commit', '?')}")
    busy = info.get("loadavg_start", 0.0) > 0.5
    if busy:
        log(f"WARNING: load average {info['loadavg_start']:.1f} before the run: other processes use the cores, "
            "timings will be noisy")
    if info["removed_env"]:
        log(f"removed from the workers' environment: {info['removed_env']}")
    available = {p: peer_available(p) for p in args.peers}
    for p_, ok in available.items():
        if not ok:
            log(f"  {PEER_LABELS[p_]}: not installed -> reported as missing")

    results = {"config": {"threads": n, "batch": args.batch, "small_batch": args.small_batch, "quick": args.quick,
                          "peers": args.peers, "settings": s, "conv_chunk_bytes": conv_chunk_bytes()},
               "machine": info,
               "flops": {"train_step": train_flops, "inference_batch": fwd_flops,
                         "params": param_count(tutorial_layers())}}
    peak, mem = {}, None
    gemm, models, small = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="pyreg-bench-") as tmpdir:
        # 1. peak FMA throughput and memory bandwidth
        if "peak" not in args.skip:
            log("\n[1/4] peak fp32 FMA throughput and memory bandwidth (bench/peak_fma.c)")
            exe, err = compile_peak(tmpdir)
            if exe:
                try:
                    for t in sorted({1, n}):
                        peak[t] = run_peak(exe, "fma", t, s["peak_seconds"])
                        log(f"  {t} thread(s): {peak[t]['gflops']:.1f} GFLOP/s ({peak[t]['isa']}; over wall-clock "
                            f"time instead of CPU time: {peak[t]['gflops_wall']:.1f})")
                    mem = run_peak(exe, "mem", n, s["mem_mib"])
                    log(f"  memory, {n} thread(s): triad {mem['triad_gbs']:.1f} GB/s, "
                        f"in-place 4-array stream {mem['rmw4_gbs']:.1f} GB/s")
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                    err = str(e)
            if err:
                log(f"  peak measurement unavailable: {err}")
                results["peak_error"] = err
        results["peak"] = {str(k): v for k, v in peak.items()}
        results["memory"] = mem

        # 2. GEMMs
        shapes = gemm_shapes(args.batch)
        if "gemm" not in args.skip:
            log(f"\n[2/4] GEMMs of the tutorial model ({len(shapes)} shapes)")
            for b in ("pyreg", "openblas"):
                if b not in args.peers:
                    continue
                if not available[b]:
                    gemm[b] = {"status": "missing"}
                    continue
                gemm[b] = run_worker({"kind": "gemm", "backend": b, "threads": n, "shapes": shapes,
                                      "min_time": s["gemm_min_time"], "min_reps": s["gemm_min_reps"]},
                                     f"{PEER_LABELS[b]} GEMMs", args, tmpdir)
        results["gemm"] = gemm

        # 3. the tutorial's model, then the small model
        common = {"kind": "model", "threads": n}
        for part, kind, batch in (("model", "tutorial", args.batch), ("small", "small", args.small_batch)):
            if part in args.skip:
                continue
            store = models if kind == "tutorial" else small
            step = "3/4" if kind == "tutorial" else "4/4"
            log(f"\n[{step}] {kind} model, batch {batch}: training steps, inference, peak RSS")
            big = kind == "tutorial"
            for b in ("pyreg", "torch", "tf"):
                if b not in args.peers:
                    continue
                if not available[b]:
                    store[b] = {"status": "missing"}
                    continue
                spec = dict(common, peer=b, model=kind, batch=batch,
                            train_warmup=s["train_warmup"] if big else s["small_warmup"],
                            train_steps=s["train_steps"] if big else s["small_steps"],
                            infer_warmup=s["infer_warmup"] if big else s["small_warmup"],
                            infer_reps=s["infer_reps"] if big else s["small_steps"],
                            opt_reps=s["opt_reps"], optimizer=big and b == "pyreg")
                if b == "torch":
                    layouts = {"train_layout": args.torch_layout, "infer_layout": args.torch_layout}
                    if args.torch_layout == "auto":
                        pr = run_worker({"kind": "torch_probe", "threads": n, "model": kind, "batch": batch,
                                         "steps": s["probe_steps"] if big else s["small_steps"] // 2},
                                        "PyTorch layout probe (NCHW vs channels-last)", args, tmpdir)
                        results.setdefault("torch_probe", {})[kind] = pr
                        if pr.get("status") == "ok":
                            layouts = {"train_layout": pr["train_layout"], "infer_layout": pr["infer_layout"]}
                            log(f"    training: {pr['train_layout']}, inference: {pr['infer_layout']}")
                        else:
                            layouts = {"train_layout": "nchw", "infer_layout": "nchw"}
                    spec.update(layouts)
                store[b] = run_worker(spec, f"{PEER_LABELS[b]} {kind} model", args, tmpdir)
        results["models"] = models
        results["small_models"] = small

    rows, text = build_report(args, peak, mem, gemm, models, small)
    results["rows"] = rows
    results["total_seconds"] = time.perf_counter() - t_start
    try:
        info["loadavg_end"] = os.getloadavg()[0]
    except OSError:
        pass

    # header with the reference numbers, then the tables
    out = ["", "#" * 78, f"pyreg benchmark, {n} thread(s), {info.get('cpu', '?')}"]
    if peak:
        out.append("peak fp32 FMA: " + ", ".join(f"{t} thread(s) {v['gflops']:.1f} GFLOP/s" for t, v in
                                                 sorted(peak.items())) + f" [{next(iter(peak.values()))['isa']}]")
    if mem:
        out.append(f"memory bandwidth ({n} thread(s)): STREAM triad {mem['triad_gbs']:.1f} GB/s, "
                   f"in-place 4-array stream {mem['rmw4_gbs']:.1f} GB/s")
    out.append(f"tutorial model: {param_count(tutorial_layers()) / 1e6:.1f} M parameters, "
               f"{train_flops / 1e9:.1f} GFLOP per training step, {fwd_flops / 1e9:.1f} GFLOP per inference batch "
               f"(batch {args.batch}, GEMM flops only)")
    versions = []
    for b in ("pyreg", "torch", "tf"):
        res = models.get(b) if (models.get(b) or {}).get("version") else small.get(b)
        if res and res.get("version"):
            versions.append(res["version"])
    if versions:
        out.append("versions: " + "; ".join(versions))
    ob = (gemm.get("openblas") or {}).get("openblas")
    if ob:
        out.append(f"OpenBLAS (through NumPy, {gemm['openblas'].get('version')}): kernel {ob.get('architecture')}, "
                   f"{ob.get('num_threads')} thread(s), {ob.get('config') or ob.get('version')} "
                   f"[{ob.get('source')}]")
    for b in ("torch", "tf"):
        res = models.get(b) or {}
        if res.get("config") or res.get("infer_call"):
            out.append(f"{PEER_LABELS[b]}: {res.get('config', '')}; inference: {res.get('infer_call', '?')}")
    out += text
    out += ["", "values are medians; (N%) = % of the measured peak for the same thread count; "
            "xR = peer / pyreg (for times: > 1 means pyreg is faster)",
            f"total {results['total_seconds']:.0f} s"]
    if busy:
        out.append(f"WARNING: load average was {info['loadavg_start']:.1f} at the start (other processes): "
                   "timings are noisy")
    log("\n".join(out))
    results["table"] = out
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
