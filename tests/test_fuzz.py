"""Hypothesis fuzz of the C kernels' shape handling, through pyreg._core.

Random shapes, strides, paddings, labels and indices, valid or not: an
invalid combination must raise (ValueError, TypeError for a wrong dtype,
IndexError for a gather index), a valid one must match a small NumPy twin
computed in float64. Outputs are pre-filled with NaN so that an element the
kernel forgets to write is caught. Deterministic by default (derandomize);
set PYREG_FUZZ_RANDOM=1 to explore new examples on every run."""
import math
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyreg import _core  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("PYREG_FUZZ_EXAMPLES", "150")), deadline=None, database=None,
                derandomize=not os.environ.get("PYREG_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EPS = 1e-7


def rand(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def nanfill(shape):
    return np.full(shape, np.nan, np.float32)


def close(got, ref, tol=2e-4):
    ref = np.asarray(ref, np.float64)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=tol, atol=tol * scale)


def perturb(draw, shape, name, broken=True):
    """Either the shape itself or, sometimes (only if `broken`), one dimension
    changed or the rank changed."""
    mode = draw(st.sampled_from(["ok"] * 6 + ["dim", "rank"]), label=f"{name} mode") if broken else "ok"
    shape = list(shape)
    if mode == "dim" and shape:
        i = draw(st.integers(0, len(shape) - 1), label=f"{name} dim")
        shape[i] = max(0, shape[i] + draw(st.sampled_from([-1, 1, 2]), label=f"{name} delta"))
    elif mode == "rank":
        shape = shape[:-1] if shape and draw(st.booleans()) else shape + [1]
    return tuple(shape)


# ------------------------------------------------------------------ conv2d
def conv_geometry(H, W, KH, KW, sh, sw, same):
    if same:
        OH, OW = -(-H // sh), -(-W // sw)
        pt = max(0, (OH - 1) * sh + KH - H) // 2
        pl = max(0, (OW - 1) * sw + KW - W) // 2
    else:
        OH, OW = (H - KH) // sh + 1, (W - KW) // sw + 1
        pt = pl = 0
    return OH, OW, pt, pl


def conv_ref(x, k, b, sh, sw, same, g=None):
    """Forward (and backward with upstream g) of tf.nn.conv2d, NHWC, in float64."""
    x, k = x.astype(np.float64), k.astype(np.float64)
    N, H, W, C = x.shape
    KH, KW, _, F = k.shape
    OH, OW, pt, pl = conv_geometry(H, W, KH, KW, sh, sw, same)
    Hp, Wp = max(pt + H, (OH - 1) * sh + KH), max(pl + W, (OW - 1) * sw + KW)
    xp = np.zeros((N, Hp, Wp, C))
    xp[:, pt:pt + H, pl:pl + W] = x
    out = np.zeros((N, OH, OW, F))
    dxp, dk = np.zeros_like(xp), np.zeros_like(k)
    for di in range(KH):
        for dj in range(KW):
            rows, cols = slice(di, di + (OH - 1) * sh + 1, sh), slice(dj, dj + (OW - 1) * sw + 1, sw)
            patch = xp[:, rows, cols, :]
            out += np.einsum("nijc,cf->nijf", patch, k[di, dj])
            if g is not None:
                dk[di, dj] = np.einsum("nijc,nijf->cf", patch, g)
                dxp[:, rows, cols, :] += np.einsum("nijf,cf->nijc", g, k[di, dj])
    if b is not None:
        out += b
    if g is None:
        return out
    return out, dxp[:, pt:pt + H, pl:pl + W], dk, g.astype(np.float64).sum(axis=(0, 1, 2))


@st.composite
def conv_case(draw):
    """Mostly-valid and anything-goes cases in about equal numbers; the
    validity is decided from the drawn shapes, not from the mode."""
    broken = draw(st.booleans(), label="broken")
    lo = 0 if broken else 1
    N = draw(st.integers(0, 3), label="N")
    H, W = draw(st.integers(lo, 8), label="H"), draw(st.integers(lo, 8), label="W")
    C, F = draw(st.integers(lo, 4), label="C"), draw(st.integers(lo, 5), label="F")
    same = draw(st.booleans(), label="same")
    kmax_h, kmax_w = (6, 6) if broken or same else (H, W)
    KH, KW = draw(st.integers(lo, kmax_h), label="KH"), draw(st.integers(lo, kmax_w), label="KW")
    sh, sw = draw(st.integers(-1 if broken else 1, 4), label="SH"), draw(st.integers(-1 if broken else 1, 4),
                                                                          label="SW")
    kC = C if not broken or draw(st.integers(0, 3)) else max(C + draw(st.sampled_from([-1, 1])), 0)
    use_bias = draw(st.booleans(), label="bias")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    geometry_ok = min(H, W, C, F, KH, KW, sh, sw) >= 1 and kC == C and (same or (KH <= H and KW <= W))
    OH, OW = (conv_geometry(H, W, KH, KW, sh, sw, same)[:2] if geometry_ok else (max(H, 0), max(W, 0)))
    out_shape = perturb(draw, (N, OH, OW, F), "out", broken)
    bias_shape = perturb(draw, (F,), "bias", broken) if use_bias else None
    return dict(N=N, H=H, W=W, C=C, F=F, KH=KH, KW=KW, kC=kC, sh=sh, sw=sw, same=same, seed=seed, broken=broken,
                geometry_ok=geometry_ok, out_shape=out_shape, bias_shape=bias_shape, OH=OH, OW=OW)


@FUZZ
@given(conv_case())
def test_conv2d_forward(c):
    rng = np.random.default_rng(c["seed"])
    x = rand(rng, (c["N"], c["H"], c["W"], c["C"]))
    k = rand(rng, (c["KH"], c["KW"], c["kC"], c["F"]))
    b = None if c["bias_shape"] is None else rand(rng, c["bias_shape"])
    out = nanfill(c["out_shape"])
    valid = (c["geometry_ok"] and c["out_shape"] == (c["N"], c["OH"], c["OW"], c["F"])
             and (b is None or b.shape == (c["F"],)))
    event("valid" if valid else "invalid")
    if not valid:
        with pytest.raises(ValueError):
            _core.conv2d_forward(x, k, b, out, c["sh"], c["sw"], c["same"])
        return
    _core.conv2d_forward(x, k, b, out, c["sh"], c["sw"], c["same"])
    close(out, conv_ref(x, k, b, c["sh"], c["sw"], c["same"]))


@st.composite
def conv_backward_case(draw):
    c = draw(conv_case())
    c["want"] = tuple(draw(st.booleans(), label=f"want {n}") for n in ("dx", "dk", "db"))
    c["dout_shape"] = c["out_shape"]
    c["dx_shape"] = perturb(draw, (c["N"], c["H"], c["W"], c["C"]), "dx", c["broken"])
    c["dk_shape"] = perturb(draw, (c["KH"], c["KW"], c["C"], c["F"]), "dk", c["broken"])
    c["db_shape"] = perturb(draw, (c["F"],), "db", c["broken"])
    return c


@FUZZ
@given(conv_backward_case())
def test_conv2d_backward(c):
    rng = np.random.default_rng(c["seed"])
    x = rand(rng, (c["N"], c["H"], c["W"], c["C"]))
    k = rand(rng, (c["KH"], c["KW"], c["kC"], c["F"]))
    g = rand(rng, c["dout_shape"])
    wdx, wdk, wdb = c["want"]
    dx = nanfill(c["dx_shape"]) if wdx else None
    dk = nanfill(c["dk_shape"]) if wdk else None
    db = nanfill(c["db_shape"]) if wdb else None
    valid = (c["geometry_ok"] and g.shape == (c["N"], c["OH"], c["OW"], c["F"])
             and (dx is None or dx.shape == x.shape) and (dk is None or dk.shape == k.shape)
             and (db is None or db.shape == (c["F"],)))
    event("valid" if valid else "invalid")
    if not valid:
        with pytest.raises(ValueError):
            _core.conv2d_backward(g, x, k, dx, dk, db, c["sh"], c["sw"], c["same"])
        return
    _core.conv2d_backward(g, x, k, dx, dk, db, c["sh"], c["sw"], c["same"])
    _, rdx, rdk, rdb = conv_ref(x, k, None, c["sh"], c["sw"], c["same"], g=g.astype(np.float64))
    for got, ref in ((dx, rdx), (dk, rdk), (db, rdb)):
        if got is not None:
            close(got, ref)


@FUZZ
@given(st.sampled_from([np.float64, np.float16, np.int32, np.uint8]), st.integers(0, 4))
def test_conv2d_wrong_dtype_is_a_type_error(dtype, which):
    arrays = [np.zeros((1, 4, 4, 2), np.float32), np.zeros((3, 3, 2, 2), np.float32),
              np.zeros(2, np.float32), np.zeros((1, 2, 2, 2), np.float32)]
    arrays[min(which, 3)] = arrays[min(which, 3)].astype(dtype)
    with pytest.raises(TypeError, match="expected dtype float32"):
        _core.conv2d_forward(*arrays, 1, 1, False)


# ------------------------------------------------------------------- dense
@st.composite
def dense_case(draw):
    k = draw(st.booleans(), label="broken")
    lo = 0 if k else 1
    B, I, O = draw(st.integers(0, 5), label="B"), draw(st.integers(lo, 6), label="I"), draw(st.integers(lo, 6),
                                                                                              label="O")
    return dict(B=B, I=I, O=O, seed=draw(st.integers(0, 2**32 - 1)),
                x_shape=perturb(draw, (B, I), "x", k), out_shape=perturb(draw, (B, O), "out", k),
                bias_shape=perturb(draw, (O,), "bias", k) if draw(st.booleans()) else None,
                dx_shape=perturb(draw, (B, I), "dx", k) if draw(st.booleans()) else None,
                dw_shape=perturb(draw, (I, O), "dw", k) if draw(st.booleans()) else None,
                db_shape=perturb(draw, (O,), "db", k) if draw(st.booleans()) else None)


@FUZZ
@given(dense_case())
def test_dense_forward_and_backward(c):
    rng = np.random.default_rng(c["seed"])
    I, O = c["I"], c["O"]
    x, w = rand(rng, c["x_shape"]), rand(rng, (I, O))
    b = None if c["bias_shape"] is None else rand(rng, c["bias_shape"])
    out = nanfill(c["out_shape"])
    Bx = x.shape[0] if x.ndim == 2 else -1  # the kernel takes the batch size from x
    ok_fwd = (I >= 1 and O >= 1 and x.ndim == 2 and x.shape[1] == I and out.shape == (Bx, O)
              and (b is None or b.shape == (O,)))
    if not ok_fwd:
        with pytest.raises(ValueError):
            _core.dense_forward(x, w, b, out)
    else:
        _core.dense_forward(x, w, b, out)
        close(out, x.astype(np.float64) @ w + (0 if b is None else b))

    g = rand(rng, c["out_shape"])
    dx = None if c["dx_shape"] is None else nanfill(c["dx_shape"])
    dw = None if c["dw_shape"] is None else nanfill(c["dw_shape"])
    db = None if c["db_shape"] is None else nanfill(c["db_shape"])
    ok_bwd = (I >= 1 and O >= 1 and x.ndim == 2 and x.shape[1] == I and g.shape == (Bx, O)
              and (dx is None or dx.shape == (Bx, I)) and (dw is None or dw.shape == (I, O))
              and (db is None or db.shape == (O,)))
    event("valid" if ok_fwd and ok_bwd else "invalid")
    if not ok_bwd:
        with pytest.raises(ValueError):
            _core.dense_backward(g, x, w, dx, dw, db)
        return
    _core.dense_backward(g, x, w, dx, dw, db)
    g64 = g.astype(np.float64)
    if dx is not None:
        close(dx, g64 @ w.T)
    if dw is not None:
        close(dw, x.T.astype(np.float64) @ g64)
    if db is not None:
        close(db, g64.sum(axis=0))


# ------------------------------------------------------------------- losses
def loss_ref(kind, from_logits, p, t):
    """(loss_sum, correct, grad of the batch mean) as csrc/loss.c documents it."""
    p = p.astype(np.float64)
    B, D = p.shape
    scale = 1.0 / B if B else 0.0
    sparse = kind == _core.LOSS_SPARSE_CATEGORICAL_CE
    y = np.zeros((B, D)) if sparse else t.astype(np.float64)
    if sparse:
        y[np.arange(B), t.astype(np.int64)] = 1.0
    if kind == _core.LOSS_MSE:
        loss = ((p - y) ** 2).mean(axis=1)
        grad = 2.0 * (p - y) / D * scale
    elif from_logits:
        z = p - p.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = (y * (lse - z)).sum(axis=1)
        grad = (np.exp(z - lse) - y) * scale
    elif sparse:
        c = np.clip(p, EPS, 1 - EPS)
        s = c.sum(axis=1, keepdims=True)
        loss = (np.log(s) - np.log((c * y).sum(axis=1, keepdims=True)))[:, 0]
        inside = (p >= np.float32(EPS)) & (p <= np.float32(1 - EPS))
        grad = np.where(inside, (c / s - y) / c * scale, 0.0)
    else:
        s = p.sum(axis=1, keepdims=True)
        q = p / s
        c = np.clip(q, EPS, 1 - EPS)
        loss = -(y * np.log(c)).sum(axis=1)
        gq = np.where((q >= EPS) & (q <= 1 - EPS), -y / c, 0.0)
        grad = (gq - (gq * q).sum(axis=1, keepdims=True)) / s * scale
    if D == 1 and not sparse:
        correct = int(((p[:, 0] > 0.5) == (y[:, 0] > 0.5)).sum())
    else:
        correct = int((p.argmax(axis=1) == y.argmax(axis=1)).sum())
    return float(loss.sum()), correct, grad


@st.composite
def loss_case(draw):
    kind = draw(st.sampled_from([_core.LOSS_CATEGORICAL_CE, _core.LOSS_SPARSE_CATEGORICAL_CE, _core.LOSS_MSE]))
    B, D = draw(st.integers(0, 6), label="B"), draw(st.integers(0, 6), label="D")
    sparse = kind == _core.LOSS_SPARSE_CATEGORICAL_CE
    labels = None
    if sparse:
        label = st.one_of(st.integers(-2, D + 2).map(float), st.sampled_from([0.5, -0.0, math.nan, math.inf, 1e30]),
                          st.integers(0, max(D - 1, 0)).map(float), st.integers(0, max(D - 1, 0)).map(float))
        labels = draw(st.lists(label, min_size=B, max_size=B), label="labels")
    return dict(kind=kind, from_logits=draw(st.booleans()), B=B, D=D, labels=labels,
                seed=draw(st.integers(0, 2**32 - 1)), with_grad=draw(st.booleans()),
                target_shape=perturb(draw, (B,) if sparse else (B, D), "target"),
                grad_shape=perturb(draw, (B, D), "grad"))


@FUZZ
@given(loss_case())
def test_loss(c):
    rng = np.random.default_rng(c["seed"])
    B, D, kind = c["B"], c["D"], c["kind"]
    sparse = kind == _core.LOSS_SPARSE_CATEGORICAL_CE
    if kind == _core.LOSS_MSE or c["from_logits"]:
        p = rand(rng, (B, D), -3, 3)
    else:
        p = rand(rng, (B, D), 0.0, 1.0)
        p[rng.random((B, D)) < 0.2] = 0.0  # clipped entries
        p[:, :1] += 1e-3  # no all-zero row
    if sparse:
        t = np.zeros(c["target_shape"], np.float32)
        if t.shape == (B,):
            t[:] = np.array(c["labels"], np.float32)
    else:
        t = rand(rng, c["target_shape"], 0.0, 1.0)
    grad = nanfill(c["grad_shape"]) if c["with_grad"] else None
    shapes_ok = D >= 1 and t.shape == ((B,) if sparse else (B, D)) and (grad is None or grad.shape == (B, D))
    labels_ok = not sparse or not shapes_ok or bool(np.all((t >= 0) & (t < D) & (t == np.floor(t))))
    event("valid" if shapes_ok and labels_ok else "invalid labels" if shapes_ok else "invalid shapes")
    if not shapes_ok:
        with pytest.raises(ValueError):
            _core.loss(kind, c["from_logits"], p, t, grad)
        return
    if not labels_ok:
        with pytest.raises(ValueError, match=rf"expected integer labels in \[0, {D}\)"):
            _core.loss(kind, c["from_logits"], p, t, grad)
        return
    total, correct = _core.loss(kind, c["from_logits"], p, t, grad)
    ref_total, ref_correct, ref_grad = loss_ref(kind, c["from_logits"], p, t)
    assert math.isclose(total, ref_total, rel_tol=1e-4, abs_tol=1e-4)
    assert correct == ref_correct
    assert _core.count_correct(p, t, sparse) == ref_correct
    if grad is not None:
        close(grad, ref_grad)


# ------------------------------------------------------------- gather_rows
DTYPES = [np.float32, np.float64, np.uint8, np.int32, np.int64]


@st.composite
def gather_case(draw):
    R = draw(st.integers(0, 6), label="R")
    row = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=2), label="row shape"))
    n = draw(st.integers(0, 6), label="n")
    idx = draw(st.lists(st.integers(-3, R + 3), min_size=n, max_size=n), label="idx")
    dtype = draw(st.sampled_from(DTYPES + [np.float16, np.int16, np.bool_]), label="dtype")
    D = math.prod(row)
    out_shape = draw(st.sampled_from([(n,) + row, (n, D), (n,) + row]), label="out shape")
    out_shape = perturb(draw, out_shape, "out")
    return dict(R=R, row=row, idx=idx, dtype=dtype, out_shape=out_shape, seed=draw(st.integers(0, 2**32 - 1)))


@FUZZ
@given(gather_case())
def test_gather_rows(c):
    rng = np.random.default_rng(c["seed"])
    src = (rng.random((c["R"],) + c["row"]) * 200 - 50).astype(c["dtype"])
    idx = np.array(c["idx"], np.int64)
    out = nanfill(c["out_shape"])
    n, D = len(idx), math.prod(c["row"])
    if c["dtype"] not in DTYPES:
        with pytest.raises(TypeError, match="unsupported source dtype"):
            _core.gather_rows(src, idx, out)
        return
    rows_ok = c["R"] > 0 and all(0 <= i < c["R"] for i in idx)
    out_ok = len(out.shape) >= 1 and out.shape[0] == n and out.size == n * (D if c["R"] else 0)
    if not out_ok:
        with pytest.raises(ValueError, match="gather_rows: batch must have"):
            _core.gather_rows(src, idx, out)
        return
    if not rows_ok and n > 0:
        with pytest.raises(IndexError, match=rf"gather_rows: an index is outside \[0, {c['R']}\)"):
            _core.gather_rows(src, idx, out)
        return
    event("valid")
    _core.gather_rows(src, idx, out)
    np.testing.assert_array_equal(out.reshape(-1), src[idx].astype(np.float32).reshape(-1))


# ---------------------------------------------------------- sgemm shapes
@FUZZ
@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.booleans(), st.booleans(),
       st.integers(-1, 1), st.integers(-1, 1), st.integers(0, 2**32 - 1))
def test_sgemm_shapes(M, N, K, ta, tb, dk, dc, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (K, M) if ta else (M, K))
    b = rand(rng, (N, K + dk) if tb else (K + dk, N)) if K + dk >= 0 else rand(rng, (0, 0))
    c = nanfill((M, max(N + dc, 0)))
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    if opa.shape[1] != opb.shape[0] or c.shape != (opa.shape[0], opb.shape[1]):
        with pytest.raises(ValueError):
            _core.sgemm(a, b, c, trans_a=ta, trans_b=tb)
        return
    _core.sgemm(a, b, c, trans_a=ta, trans_b=tb)
    close(c, opa.astype(np.float64) @ opb)
