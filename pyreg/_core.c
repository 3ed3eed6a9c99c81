/* _core.c: the only file that knows CPython and NumPy.
 *
 * Every function takes NumPy arrays prepared by the Python layer: float32,
 * C-contiguous, aligned, and (for outputs) writeable; it checks all of that and
 * every shape, raises a Python exception naming what was expected and what was
 * given, then releases the GIL around the C kernel. No array is created here,
 * so every reference is borrowed and no error path has anything to release. */
#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <numpy/arrayobject.h>

#include "../csrc/pyreg.h"

/* ------------------------------------------------------------- checking */

static const char *dtype_name(PyArrayObject *a)
{
    switch (PyArray_TYPE(a)) {
    case NPY_FLOAT32: return "float32";
    case NPY_FLOAT64: return "float64";
    case NPY_UINT8: return "uint8";
    case NPY_INT32: return "int32";
    case NPY_INT64: return "int64";
    default: return "another dtype";
    }
}

/* obj as a float32 C-contiguous array of rank ndim (-1: any); NULL + exception. */
static PyArrayObject *as_f32(PyObject *obj, const char *name, int ndim, int writable)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy.ndarray, got %.100s",
                     name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s: expected dtype float32, got %s", name, dtype_name(a));
        return NULL;
    }
    if (!PyArray_ISCARRAY_RO(a) || !PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous, aligned, native-endian array", name);
        return NULL;
    }
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a writeable array", name);
        return NULL;
    }
    if (ndim >= 0 && PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d dimensions, got %d", name, ndim, PyArray_NDIM(a));
        return NULL;
    }
    return a;
}

/* Same, but None gives NULL with no exception; *ok is 0 on error. */
static PyArrayObject *as_f32_opt(PyObject *obj, const char *name, int ndim, int writable, int *ok)
{
    if (obj == Py_None) return NULL;
    PyArrayObject *a = as_f32(obj, name, ndim, writable);
    if (!a) *ok = 0;
    return a;
}

#define DIM(a, i) ((int64_t)PyArray_DIM((a), (i)))
#define F32(a) ((float *)PyArray_DATA(a))

static int expect_shape(PyArrayObject *a, const char *name, int nd, const int64_t *want)
{
    if (!a) return 1;
    int same = PyArray_NDIM(a) == nd;
    for (int i = 0; same && i < nd; i++) same = DIM(a, i) == want[i];
    if (same) return 1;
    char wbuf[160] = "(", gbuf[160] = "(";
    for (int i = 0; i < nd; i++)
        snprintf(wbuf + strlen(wbuf), sizeof wbuf - strlen(wbuf), "%lld%s", (long long)want[i], i + 1 < nd ? ", " : "");
    for (int i = 0; i < PyArray_NDIM(a); i++)
        snprintf(gbuf + strlen(gbuf), sizeof gbuf - strlen(gbuf), "%lld%s", (long long)DIM(a, i), i + 1 < PyArray_NDIM(a) ? ", " : "");
    PyErr_Format(PyExc_ValueError, "%s: expected shape %s), got %s)", name, wbuf, gbuf);
    return 0;
}

/* 1 if the output does not share memory with the input (NULL: nothing to
 * check); else a ValueError: the kernels read inputs while writing outputs. */
static int disjoint(PyArrayObject *out, PyArrayObject *in, const char *what)
{
    if (!out || !in) return 1;
    const char *o = PyArray_BYTES(out), *i = PyArray_BYTES(in);
    if (o + PyArray_NBYTES(out) <= i || i + PyArray_NBYTES(in) <= o) return 1;
    PyErr_Format(PyExc_ValueError, "%s: the output must not share memory with an input", what);
    return 0;
}

static PyObject *status_error(int st, const char *what)
{
    PyObject *type = st == PR_ENOMEM ? PyExc_MemoryError
                   : st == PR_EOVERFLOW ? PyExc_OverflowError : PyExc_ValueError;
    PyErr_Format(type, "%s: %s", what, pr_strerror(st));
    return NULL;
}

/* ------------------------------------------------------------- runtime */

static PyObject *py_set_num_threads(PyObject *self, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i:set_num_threads", &n)) return NULL;
    if (n < 0 || n > 1024) { /* thousands of OpenMP threads crash libgomp */
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected n in [0, 1024] (0 = default), got %d", n);
        return NULL;
    }
    pr_set_num_threads(n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs)
{
    return PyLong_FromLong(pr_get_num_threads());
}

static PyObject *py_set_isa(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:set_isa", &name)) return NULL;
    if (pr_set_isa(name) != PR_OK) {
        PyErr_Format(PyExc_ValueError,
                     "set_isa: expected one of 'generic', 'avx2', 'avx512' supported by this CPU, got '%s'", name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_get_isa(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(pr_get_isa());
}

static PyObject *py_isa_supported(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:isa_supported", &name)) return NULL;
    return PyBool_FromLong(pr_isa_supported(name));
}

/* ---------------------------------------------------------------- gemm */

/* sgemm(a, b, c, trans_a=0, trans_b=0, alpha=1, beta=0, reference=0): c = alpha op(a) op(b) + beta c */
static PyObject *py_sgemm(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"a", "b", "c", "trans_a", "trans_b", "alpha", "beta", "reference", NULL};
    PyObject *ao, *bo, *co;
    int ta = 0, tb = 0, ref = 0;
    float alpha = 1.0f, beta = 0.0f;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|ppffp:sgemm", kwlist, &ao, &bo, &co, &ta, &tb, &alpha, &beta, &ref))
        return NULL;
    PyArrayObject *a = as_f32(ao, "sgemm a", 2, 0), *b = a ? as_f32(bo, "sgemm b", 2, 0) : NULL;
    PyArrayObject *c = b ? as_f32(co, "sgemm c", 2, 1) : NULL;
    if (!c) return NULL;
    int64_t M = ta ? DIM(a, 1) : DIM(a, 0), K = ta ? DIM(a, 0) : DIM(a, 1);
    int64_t Kb = tb ? DIM(b, 1) : DIM(b, 0), N = tb ? DIM(b, 0) : DIM(b, 1);
    if (K != Kb) {
        PyErr_Format(PyExc_ValueError, "sgemm: inner dimensions differ: op(a) is (%lld, %lld), op(b) is (%lld, %lld)",
                     (long long)M, (long long)K, (long long)Kb, (long long)N);
        return NULL;
    }
    int64_t want[2] = {M, N};
    if (!expect_shape(c, "sgemm c", 2, want)) return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = (ref ? pr_sgemm_ref : pr_sgemm)(ta, tb, M, N, K, alpha, F32(a), DIM(a, 1), F32(b), DIM(b, 1), beta, F32(c), N);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "sgemm");
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- conv2d */

/* Shape from x (N,H,W,C), kernel (KH,KW,C,F), strides and padding. */
static int conv_shape(pr_conv2d_shape *s, PyArrayObject *x, PyArrayObject *k,
                      int sh, int sw, int same)
{
    if (DIM(k, 2) != DIM(x, 3)) {
        PyErr_Format(PyExc_ValueError, "conv2d: input has %lld channels but the kernel expects %lld",
                     (long long)DIM(x, 3), (long long)DIM(k, 2));
        return 0;
    }
    s->N = DIM(x, 0); s->H = DIM(x, 1); s->W = DIM(x, 2); s->C = DIM(x, 3);
    s->KH = DIM(k, 0); s->KW = DIM(k, 1); s->F = DIM(k, 3);
    s->SH = sh; s->SW = sw;
    if (pr_conv2d_shape_init(s, same) != PR_OK) {
        PyErr_Format(PyExc_ValueError,
                     "conv2d: cannot convolve input (%lld, %lld, %lld, %lld) with kernel (%lld, %lld, %lld, %lld), "
                     "strides (%d, %d), padding '%s'", (long long)s->N, (long long)s->H, (long long)s->W,
                     (long long)s->C, (long long)s->KH, (long long)s->KW, (long long)s->C, (long long)s->F,
                     sh, sw, same ? "same" : "valid");
        return 0;
    }
    return 1;
}

/* conv2d_forward(x, kernel, bias|None, out, sh, sw, same, relu=False) */
static PyObject *py_conv2d_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *ko, *bo, *oo;
    int sh, sw, same, relu = 0, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOiip|p:conv2d_forward", &xo, &ko, &bo, &oo, &sh, &sw, &same, &relu))
        return NULL;
    PyArrayObject *x = as_f32(xo, "conv2d input", 4, 0), *k = x ? as_f32(ko, "conv2d kernel", 4, 0) : NULL;
    if (!k) return NULL;
    PyArrayObject *b = as_f32_opt(bo, "conv2d bias", 1, 0, &ok);
    PyArrayObject *out = ok ? as_f32(oo, "conv2d output", 4, 1) : NULL;
    if (!out) return NULL;
    pr_conv2d_shape s;
    if (!conv_shape(&s, x, k, sh, sw, same)) return NULL;
    int64_t wb[1] = {s.F}, wo[4] = {s.N, s.OH, s.OW, s.F};
    if (!expect_shape(b, "conv2d bias", 1, wb) || !expect_shape(out, "conv2d output", 4, wo)) return NULL;
    if (!disjoint(out, x, "conv2d_forward") || !disjoint(out, k, "conv2d_forward") ||
        !disjoint(out, b, "conv2d_forward"))
        return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_conv2d_forward(F32(out), F32(x), F32(k), b ? F32(b) : NULL, &s, relu);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "conv2d_forward");
    Py_RETURN_NONE;
}

/* conv2d_backward(dout, x, kernel, dx|None, dkernel|None, dbias|None, sh, sw, same) */
static PyObject *py_conv2d_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *xo, *ko, *dxo, *dko, *dbo;
    int sh, sw, same, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOiip:conv2d_backward", &go, &xo, &ko, &dxo, &dko, &dbo, &sh, &sw, &same))
        return NULL;
    PyArrayObject *g = as_f32(go, "conv2d output gradient", 4, 0);
    PyArrayObject *x = g ? as_f32(xo, "conv2d input", 4, 0) : NULL;
    PyArrayObject *k = x ? as_f32(ko, "conv2d kernel", 4, 0) : NULL;
    if (!k) return NULL;
    PyArrayObject *dx = as_f32_opt(dxo, "conv2d input gradient", 4, 1, &ok);
    PyArrayObject *dk = ok ? as_f32_opt(dko, "conv2d kernel gradient", 4, 1, &ok) : NULL;
    PyArrayObject *db = ok ? as_f32_opt(dbo, "conv2d bias gradient", 1, 1, &ok) : NULL;
    if (!ok) return NULL;
    pr_conv2d_shape s;
    if (!conv_shape(&s, x, k, sh, sw, same)) return NULL;
    int64_t wg[4] = {s.N, s.OH, s.OW, s.F}, wx[4] = {s.N, s.H, s.W, s.C};
    int64_t wk[4] = {s.KH, s.KW, s.C, s.F}, wb[1] = {s.F};
    if (!expect_shape(g, "conv2d output gradient", 4, wg) || !expect_shape(dx, "conv2d input gradient", 4, wx) ||
        !expect_shape(dk, "conv2d kernel gradient", 4, wk) || !expect_shape(db, "conv2d bias gradient", 1, wb))
        return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_conv2d_backward(dx ? F32(dx) : NULL, dk ? F32(dk) : NULL, db ? F32(db) : NULL,
                            F32(g), F32(x), F32(k), &s);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "conv2d_backward");
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------- pooling */

static int pool_shape(pr_pool2d_shape *s, PyArrayObject *x, int ph, int pw, int sh, int sw, int same)
{
    s->N = DIM(x, 0); s->H = DIM(x, 1); s->W = DIM(x, 2); s->C = DIM(x, 3);
    s->PH = ph; s->PW = pw; s->SH = sh; s->SW = sw;
    if (pr_pool2d_shape_init(s, same) != PR_OK) {
        PyErr_Format(PyExc_ValueError, "max_pooling2d: cannot pool input (%lld, %lld, %lld, %lld) with pool (%d, %d), "
                     "strides (%d, %d), padding '%s'", (long long)s->N, (long long)s->H, (long long)s->W,
                     (long long)s->C, ph, pw, sh, sw, same ? "same" : "valid");
        return 0;
    }
    return 1;
}

/* maxpool2d_forward(x, out, ph, pw, sh, sw, same) */
static PyObject *py_maxpool2d_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo;
    int ph, pw, sh, sw, same;
    if (!PyArg_ParseTuple(args, "OOiiiip:maxpool2d_forward", &xo, &oo, &ph, &pw, &sh, &sw, &same)) return NULL;
    PyArrayObject *x = as_f32(xo, "max_pooling2d input", 4, 0), *out = x ? as_f32(oo, "max_pooling2d output", 4, 1) : NULL;
    if (!out) return NULL;
    pr_pool2d_shape s;
    if (!pool_shape(&s, x, ph, pw, sh, sw, same)) return NULL;
    int64_t wo[4] = {s.N, s.OH, s.OW, s.C};
    if (!expect_shape(out, "max_pooling2d output", 4, wo)) return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_maxpool2d_forward(F32(out), F32(x), &s);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "maxpool2d_forward");
    Py_RETURN_NONE;
}

/* maxpool2d_backward(dout, x, dx, ph, pw, sh, sw, same) */
static PyObject *py_maxpool2d_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *xo, *dxo;
    int ph, pw, sh, sw, same;
    if (!PyArg_ParseTuple(args, "OOOiiiip:maxpool2d_backward", &go, &xo, &dxo, &ph, &pw, &sh, &sw, &same)) return NULL;
    PyArrayObject *g = as_f32(go, "max_pooling2d output gradient", 4, 0);
    PyArrayObject *x = g ? as_f32(xo, "max_pooling2d input", 4, 0) : NULL;
    PyArrayObject *dx = x ? as_f32(dxo, "max_pooling2d input gradient", 4, 1) : NULL;
    if (!dx) return NULL;
    pr_pool2d_shape s;
    if (!pool_shape(&s, x, ph, pw, sh, sw, same)) return NULL;
    int64_t wg[4] = {s.N, s.OH, s.OW, s.C}, wx[4] = {s.N, s.H, s.W, s.C};
    if (!expect_shape(g, "max_pooling2d output gradient", 4, wg) || !expect_shape(dx, "max_pooling2d input gradient", 4, wx))
        return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_maxpool2d_backward(F32(dx), F32(g), F32(x), &s);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "maxpool2d_backward");
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- dense */

/* dense_forward(x, w, b|None, out, relu=False) */
static PyObject *py_dense_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *wo, *bo, *oo;
    int relu = 0, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOO|p:dense_forward", &xo, &wo, &bo, &oo, &relu)) return NULL;
    PyArrayObject *x = as_f32(xo, "dense input", 2, 0), *w = x ? as_f32(wo, "dense kernel", 2, 0) : NULL;
    if (!w) return NULL;
    PyArrayObject *b = as_f32_opt(bo, "dense bias", 1, 0, &ok);
    PyArrayObject *out = ok ? as_f32(oo, "dense output", 2, 1) : NULL;
    if (!out) return NULL;
    int64_t B = DIM(x, 0), Din = DIM(w, 0), Dout = DIM(w, 1);
    int64_t wx[2] = {B, Din}, wb[1] = {Dout}, wout[2] = {B, Dout};
    if (!expect_shape(x, "dense input", 2, wx) || !expect_shape(b, "dense bias", 1, wb) ||
        !expect_shape(out, "dense output", 2, wout))
        return NULL;
    if (!disjoint(out, x, "dense_forward") || !disjoint(out, w, "dense_forward") ||
        !disjoint(out, b, "dense_forward"))
        return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_dense_forward(F32(out), F32(x), F32(w), b ? F32(b) : NULL, B, Din, Dout, relu);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "dense_forward");
    Py_RETURN_NONE;
}

/* dense_backward(dout, x, w, dx|None, dw|None, db|None) */
static PyObject *py_dense_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *xo, *wo, *dxo, *dwo, *dbo;
    int ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOO:dense_backward", &go, &xo, &wo, &dxo, &dwo, &dbo)) return NULL;
    PyArrayObject *g = as_f32(go, "dense output gradient", 2, 0);
    PyArrayObject *x = g ? as_f32(xo, "dense input", 2, 0) : NULL;
    PyArrayObject *w = x ? as_f32(wo, "dense kernel", 2, 0) : NULL;
    if (!w) return NULL;
    PyArrayObject *dx = as_f32_opt(dxo, "dense input gradient", 2, 1, &ok);
    PyArrayObject *dw = ok ? as_f32_opt(dwo, "dense kernel gradient", 2, 1, &ok) : NULL;
    PyArrayObject *db = ok ? as_f32_opt(dbo, "dense bias gradient", 1, 1, &ok) : NULL;
    if (!ok) return NULL;
    int64_t B = DIM(x, 0), Din = DIM(w, 0), Dout = DIM(w, 1);
    int64_t wx[2] = {B, Din}, wg[2] = {B, Dout}, ww[2] = {Din, Dout}, wb[1] = {Dout};
    if (!expect_shape(x, "dense input", 2, wx) || !expect_shape(g, "dense output gradient", 2, wg) ||
        !expect_shape(dx, "dense input gradient", 2, wx) || !expect_shape(dw, "dense kernel gradient", 2, ww) ||
        !expect_shape(db, "dense bias gradient", 1, wb))
        return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_dense_backward(dx ? F32(dx) : NULL, dw ? F32(dw) : NULL, db ? F32(db) : NULL,
                           F32(g), F32(x), F32(w), B, Din, Dout);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "dense_backward");
    Py_RETURN_NONE;
}

/* dense_weight_grad_rows(dout (B,O), x (B,I), dw_rows (R,O), r0): rows r0..r0+R of x^T @ dout */
static PyObject *py_dense_weight_grad_rows(PyObject *self, PyObject *args)
{
    PyObject *go, *xo, *dwo;
    long long r0;
    if (!PyArg_ParseTuple(args, "OOOL:dense_weight_grad_rows", &go, &xo, &dwo, &r0)) return NULL;
    PyArrayObject *g = as_f32(go, "dense output gradient", 2, 0);
    PyArrayObject *x = g ? as_f32(xo, "dense input", 2, 0) : NULL;
    PyArrayObject *dw = x ? as_f32(dwo, "dense kernel gradient rows", 2, 1) : NULL;
    if (!dw) return NULL;
    int64_t B = DIM(x, 0), Din = DIM(x, 1), Dout = DIM(g, 1), R = DIM(dw, 0);
    int64_t wg[2] = {B, Dout}, wdw[2] = {R, Dout};
    if (!expect_shape(g, "dense output gradient", 2, wg) || !expect_shape(dw, "dense kernel gradient rows", 2, wdw))
        return NULL;
    if (r0 < 0 || R < 1 || r0 + R > Din) {
        PyErr_Format(PyExc_ValueError, "dense_weight_grad_rows: rows [%lld, %lld) are outside [0, %lld)",
                     r0, r0 + (long long)R, (long long)Din);
        return NULL;
    }
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_dense_weight_grad_rows(F32(dw), F32(g), F32(x), B, Din, Dout, r0, r0 + R);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "dense_weight_grad_rows");
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- activations */

static int last_axis(PyArrayObject *a, int64_t *rows, int64_t *D)
{
    int nd = PyArray_NDIM(a);
    *D = nd ? DIM(a, nd - 1) : 1;
    *rows = *D ? (int64_t)PyArray_SIZE(a) / *D : 0;
    return 1;
}

static int check_kind(int kind, int lo, int hi, const char *what)
{
    if (kind >= lo && kind <= hi) return 1;
    PyErr_Format(PyExc_ValueError, "%s: expected a kind in [%d, %d], got %d", what, lo, hi, kind);
    return 0;
}

static int same_shape(PyArrayObject *a, PyArrayObject *b, const char *name)
{
    int64_t want[NPY_MAXDIMS];
    for (int i = 0; i < PyArray_NDIM(a); i++) want[i] = DIM(a, i);
    return expect_shape(b, name, PyArray_NDIM(a), want);
}

/* activation_forward(kind, x, out) ; out may be x */
static PyObject *py_activation_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo;
    int kind;
    if (!PyArg_ParseTuple(args, "iOO:activation_forward", &kind, &xo, &oo)) return NULL;
    if (!check_kind(kind, PR_ACT_LINEAR, PR_ACT_SOFTMAX, "activation_forward")) return NULL;
    PyArrayObject *x = as_f32(xo, "activation input", -1, 0), *out = x ? as_f32(oo, "activation output", -1, 1) : NULL;
    if (!out || !same_shape(x, out, "activation output")) return NULL;
    int64_t rows, D;
    last_axis(x, &rows, &D);
    if (rows == 0 || D == 0) Py_RETURN_NONE;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_activation_forward(F32(out), F32(x), kind, rows, D);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "activation_forward");
    Py_RETURN_NONE;
}

/* activation_backward(kind, y, dy, dx) ; dx may be dy */
static PyObject *py_activation_backward(PyObject *self, PyObject *args)
{
    PyObject *yo, *go, *dxo;
    int kind;
    if (!PyArg_ParseTuple(args, "iOOO:activation_backward", &kind, &yo, &go, &dxo)) return NULL;
    if (!check_kind(kind, PR_ACT_LINEAR, PR_ACT_SOFTMAX, "activation_backward")) return NULL;
    PyArrayObject *y = as_f32(yo, "activation output", -1, 0);
    PyArrayObject *g = y ? as_f32(go, "activation output gradient", -1, 0) : NULL;
    PyArrayObject *dx = g ? as_f32(dxo, "activation input gradient", -1, 1) : NULL;
    if (!dx || !same_shape(y, g, "activation output gradient") || !same_shape(y, dx, "activation input gradient"))
        return NULL;
    int64_t rows, D;
    last_axis(y, &rows, &D);
    if (rows == 0 || D == 0) Py_RETURN_NONE;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_activation_backward(F32(dx), F32(g), F32(y), kind, rows, D);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "activation_backward");
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------- losses */

/* loss(kind, from_logits, pred (B,D), target (B,D) or (B,), grad|None) -> (loss_sum, correct) */
static PyObject *py_loss(PyObject *self, PyObject *args)
{
    PyObject *po, *to, *go;
    int kind, from_logits, ok = 1;
    if (!PyArg_ParseTuple(args, "ipOOO:loss", &kind, &from_logits, &po, &to, &go)) return NULL;
    if (!check_kind(kind, PR_LOSS_CATEGORICAL_CE, PR_LOSS_MSE, "loss")) return NULL;
    PyArrayObject *p = as_f32(po, "loss prediction", 2, 0);
    PyArrayObject *t = p ? as_f32(to, "loss target", kind == PR_LOSS_SPARSE_CATEGORICAL_CE ? 1 : 2, 0) : NULL;
    if (!t) return NULL;
    PyArrayObject *g = as_f32_opt(go, "loss gradient", 2, 1, &ok);
    if (!ok) return NULL;
    int64_t B = DIM(p, 0), D = DIM(p, 1);
    int64_t wt[2] = {B, D};
    if (!expect_shape(t, "loss target", kind == PR_LOSS_SPARSE_CATEGORICAL_CE ? 1 : 2, wt) ||
        !same_shape(p, g ? g : p, "loss gradient"))
        return NULL;
    if (D < 1) {
        PyErr_SetString(PyExc_ValueError, "loss: predictions have 0 columns");
        return NULL;
    }
    double sum = 0.0;
    int64_t correct = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_loss_forward_backward(&sum, &correct, g ? F32(g) : NULL, F32(p), F32(t), kind, from_logits, B, D);
    Py_END_ALLOW_THREADS
    if (st == PR_EINVAL && kind == PR_LOSS_SPARSE_CATEGORICAL_CE) {
        PyErr_Format(PyExc_ValueError,
                     "sparse_categorical_crossentropy: expected integer labels in [0, %lld), got a label outside",
                     (long long)D);
        return NULL;
    }
    if (st) return status_error(st, "loss");
    return Py_BuildValue("dL", sum, (long long)correct);
}

/* count_correct(pred (B,D), target, sparse) -> int */
static PyObject *py_count_correct(PyObject *self, PyObject *args)
{
    PyObject *po, *to;
    int sparse;
    if (!PyArg_ParseTuple(args, "OOp:count_correct", &po, &to, &sparse)) return NULL;
    PyArrayObject *p = as_f32(po, "prediction", 2, 0);
    PyArrayObject *t = p ? as_f32(to, "target", sparse ? 1 : 2, 0) : NULL;
    if (!t) return NULL;
    int64_t B = DIM(p, 0), D = DIM(p, 1), wt[2] = {B, D};
    if (!expect_shape(t, "target", sparse ? 1 : 2, wt)) return NULL;
    if (D < 1) return PyLong_FromLong(0);
    int64_t c;
    Py_BEGIN_ALLOW_THREADS
    c = pr_count_correct(F32(p), F32(t), sparse, B, D);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(c);
}

/* ---------------------------------------------------------- regularizers */

static int check_factor(float v, const char *name)
{
    if (v >= 0.0f && v <= 3.4e38f) return 1;
    char buf[64]; /* PyErr_Format has no %g */
    snprintf(buf, sizeof buf, "%g", (double)v);
    PyErr_Format(PyExc_ValueError, "%s: expected a finite factor >= 0, got %s", name, buf);
    return 0;
}

/* reg_penalty(w, l1, l2) -> float */
static PyObject *py_reg_penalty(PyObject *self, PyObject *args)
{
    PyObject *wo;
    float l1, l2;
    if (!PyArg_ParseTuple(args, "Off:reg_penalty", &wo, &l1, &l2)) return NULL;
    PyArrayObject *w = as_f32(wo, "regularized weights", -1, 0);
    if (!w || !check_factor(l1, "l1") || !check_factor(l2, "l2")) return NULL;
    double p;
    Py_BEGIN_ALLOW_THREADS
    p = pr_reg_penalty(F32(w), (int64_t)PyArray_SIZE(w), l1, l2);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(p);
}

/* reg_backward(grad, w, l1, l2): grad += d penalty / dw */
static PyObject *py_reg_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *wo;
    float l1, l2;
    if (!PyArg_ParseTuple(args, "OOff:reg_backward", &go, &wo, &l1, &l2)) return NULL;
    PyArrayObject *g = as_f32(go, "gradient", -1, 1), *w = g ? as_f32(wo, "weights", -1, 0) : NULL;
    if (!w || !same_shape(w, g, "gradient") || !check_factor(l1, "l1") || !check_factor(l2, "l2")) return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_reg_backward(F32(g), F32(w), (int64_t)PyArray_SIZE(w), l1, l2);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "reg_backward");
    Py_RETURN_NONE;
}

/* soft_threshold(w, thr) -> zeros */
static PyObject *py_soft_threshold(PyObject *self, PyObject *args)
{
    PyObject *wo;
    float thr;
    if (!PyArg_ParseTuple(args, "Of:soft_threshold", &wo, &thr)) return NULL;
    PyArrayObject *w = as_f32(wo, "weights", -1, 1);
    if (!w || !check_factor(thr, "threshold")) return NULL;
    int64_t z = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_soft_threshold(F32(w), (int64_t)PyArray_SIZE(w), thr, &z);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "soft_threshold");
    return PyLong_FromLongLong(z);
}

/* ------------------------------------------------------------ optimizers */

/* adam_update(w, g, m, v, vhat|None, lr, beta_1, beta_2, epsilon, t, amsgrad, l1, l2, prox_l1=0) -> penalty */
static PyObject *py_adam_update(PyObject *self, PyObject *args)
{
    PyObject *wo, *go, *mo, *vo, *vho;
    pr_adam_hyper h;
    long long t;
    int ams, prox = 0, ok = 1;
    float l1, l2;
    if (!PyArg_ParseTuple(args, "OOOOOffffLpff|p:adam_update", &wo, &go, &mo, &vo, &vho, &h.lr, &h.beta_1,
                          &h.beta_2, &h.epsilon, &t, &ams, &l1, &l2, &prox))
        return NULL;
    PyArrayObject *w = as_f32(wo, "weights", -1, 1);
    PyArrayObject *g = w ? as_f32(go, "gradient", -1, 1) : NULL;
    PyArrayObject *m = g ? as_f32(mo, "adam m", -1, 1) : NULL;
    PyArrayObject *v = m ? as_f32(vo, "adam v", -1, 1) : NULL;
    if (!v) return NULL;
    PyArrayObject *vh = as_f32_opt(vho, "adam vhat", -1, 1, &ok);
    if (!ok || !same_shape(w, g, "gradient") || !same_shape(w, m, "adam m") || !same_shape(w, v, "adam v") ||
        (vh && !same_shape(w, vh, "adam vhat")))
        return NULL;
    if (ams && !vh) {
        PyErr_SetString(PyExc_ValueError, "adam_update: amsgrad needs vhat");
        return NULL;
    }
    if (t < 1) {
        PyErr_Format(PyExc_ValueError, "adam_update: expected step t >= 1, got %lld", t);
        return NULL;
    }
    if (!check_factor(l1, "l1") || !check_factor(l2, "l2")) return NULL;
    h.t = t;
    h.amsgrad = ams;
    h.prox_l1 = prox;
    double pen = 0.0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_adam_update(F32(w), F32(g), F32(m), F32(v), vh ? F32(vh) : NULL, (int64_t)PyArray_SIZE(w), &h, l1, l2, &pen);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "adam_update");
    return PyFloat_FromDouble(pen);
}

/* sgd_update(w, g, buf|None, lr, momentum, nesterov, l1, l2) -> penalty */
static PyObject *py_sgd_update(PyObject *self, PyObject *args)
{
    PyObject *wo, *go, *bo;
    float lr, mom, l1, l2;
    int nest, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOffpff:sgd_update", &wo, &go, &bo, &lr, &mom, &nest, &l1, &l2)) return NULL;
    PyArrayObject *w = as_f32(wo, "weights", -1, 1);
    PyArrayObject *g = w ? as_f32(go, "gradient", -1, 1) : NULL;
    if (!g) return NULL;
    PyArrayObject *b = as_f32_opt(bo, "momentum buffer", -1, 1, &ok);
    if (!ok || !same_shape(w, g, "gradient") || (b && !same_shape(w, b, "momentum buffer"))) return NULL;
    if (mom != 0.0f && !b) {
        PyErr_SetString(PyExc_ValueError, "sgd_update: momentum needs a buffer");
        return NULL;
    }
    if (!check_factor(l1, "l1") || !check_factor(l2, "l2")) return NULL;
    double pen = 0.0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_sgd_update(F32(w), F32(g), b ? F32(b) : NULL, (int64_t)PyArray_SIZE(w), lr, mom, nest, l1, l2, &pen);
    Py_END_ALLOW_THREADS
    if (st) return status_error(st, "sgd_update");
    return PyFloat_FromDouble(pen);
}

/* ------------------------------------------------------------- data path */

/* gather_rows(src (R, ...), idx int64 (n,), out float32 (n, ...)): out = float32(src[idx]) */
static PyObject *py_gather_rows(PyObject *self, PyObject *args)
{
    PyObject *so, *io, *oo;
    if (!PyArg_ParseTuple(args, "OOO:gather_rows", &so, &io, &oo)) return NULL;
    if (!PyArray_Check(so) || !PyArray_Check(io)) {
        PyErr_SetString(PyExc_TypeError, "gather_rows: expected numpy arrays");
        return NULL;
    }
    PyArrayObject *src = (PyArrayObject *)so, *idx = (PyArrayObject *)io;
    PyArrayObject *out = as_f32(oo, "batch", -1, 1);
    if (!out) return NULL;
    int dt;
    switch (PyArray_TYPE(src)) {
    case NPY_FLOAT32: dt = PR_DT_F32; break;
    case NPY_FLOAT64: dt = PR_DT_F64; break;
    case NPY_UINT8: dt = PR_DT_U8; break;
    case NPY_INT32: dt = PR_DT_I32; break;
    case NPY_INT64: dt = PR_DT_I64; break;
    default:
        PyErr_Format(PyExc_TypeError, "gather_rows: unsupported source dtype %s", dtype_name(src));
        return NULL;
    }
    if (!PyArray_ISCARRAY_RO(src) || !PyArray_ISNOTSWAPPED(src) || PyArray_NDIM(src) < 1) {
        PyErr_SetString(PyExc_ValueError, "gather_rows: source must be a C-contiguous native-endian array of rank >= 1");
        return NULL;
    }
    if (PyArray_TYPE(idx) != NPY_INT64 || PyArray_NDIM(idx) != 1 || !PyArray_ISCARRAY_RO(idx)) {
        PyErr_SetString(PyExc_ValueError, "gather_rows: indices must be a contiguous 1-D int64 array");
        return NULL;
    }
    int64_t R = DIM(src, 0), n = DIM(idx, 0);
    int64_t D = R ? (int64_t)PyArray_SIZE(src) / R : 0;
    if (PyArray_NDIM(out) < 1 || DIM(out, 0) != n || (int64_t)PyArray_SIZE(out) != n * D) {
        PyErr_Format(PyExc_ValueError, "gather_rows: batch must have %lld rows of %lld values", (long long)n, (long long)D);
        return NULL;
    }
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = pr_gather_rows(F32(out), PyArray_DATA(src), dt, R, (const int64_t *)PyArray_DATA(idx), n, D);
    Py_END_ALLOW_THREADS
    if (st) {
        PyErr_Format(PyExc_IndexError, "gather_rows: an index is outside [0, %lld)", (long long)R);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"set_num_threads", py_set_num_threads, METH_VARARGS, "set_num_threads(n): threads for every kernel (0 = default)."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> int"},
    {"set_isa", py_set_isa, METH_VARARGS, "set_isa(name): force the GEMM kernel: 'generic', 'avx2' or 'avx512'."},
    {"get_isa", py_get_isa, METH_NOARGS, "get_isa() -> str: the GEMM kernel in use."},
    {"isa_supported", py_isa_supported, METH_VARARGS, "isa_supported(name) -> bool"},
    {"sgemm", (PyCFunction)(void (*)(void))py_sgemm, METH_VARARGS | METH_KEYWORDS,
     "sgemm(a, b, c, trans_a=False, trans_b=False, alpha=1, beta=0, reference=False): c = alpha op(a) op(b) + beta c."},
    {"conv2d_forward", py_conv2d_forward, METH_VARARGS, "conv2d_forward(x, kernel, bias, out, sh, sw, same, relu=False)"},
    {"conv2d_backward", py_conv2d_backward, METH_VARARGS, "conv2d_backward(dout, x, kernel, dx, dkernel, dbias, sh, sw, same)"},
    {"maxpool2d_forward", py_maxpool2d_forward, METH_VARARGS, "maxpool2d_forward(x, out, ph, pw, sh, sw, same)"},
    {"maxpool2d_backward", py_maxpool2d_backward, METH_VARARGS, "maxpool2d_backward(dout, x, dx, ph, pw, sh, sw, same)"},
    {"dense_forward", py_dense_forward, METH_VARARGS, "dense_forward(x, w, b, out, relu=False)"},
    {"dense_weight_grad_rows", py_dense_weight_grad_rows, METH_VARARGS, "dense_weight_grad_rows(dout, x, dw_rows, r0)"},
    {"dense_backward", py_dense_backward, METH_VARARGS, "dense_backward(dout, x, w, dx, dw, db)"},
    {"activation_forward", py_activation_forward, METH_VARARGS, "activation_forward(kind, x, out)"},
    {"activation_backward", py_activation_backward, METH_VARARGS, "activation_backward(kind, y, dy, dx)"},
    {"loss", py_loss, METH_VARARGS, "loss(kind, from_logits, pred, target, grad) -> (loss_sum, correct)"},
    {"count_correct", py_count_correct, METH_VARARGS, "count_correct(pred, target, sparse) -> int"},
    {"reg_penalty", py_reg_penalty, METH_VARARGS, "reg_penalty(w, l1, l2) -> float: l1 sum|w| + l2 sum w^2"},
    {"reg_backward", py_reg_backward, METH_VARARGS, "reg_backward(grad, w, l1, l2): grad += l1 sign(w) + 2 l2 w"},
    {"soft_threshold", py_soft_threshold, METH_VARARGS, "soft_threshold(w, thr) -> number of zeros"},
    {"adam_update", py_adam_update, METH_VARARGS, "adam_update(w, g, m, v, vhat, lr, b1, b2, eps, t, amsgrad, l1, l2) -> penalty"},
    {"sgd_update", py_sgd_update, METH_VARARGS, "sgd_update(w, g, buf, lr, momentum, nesterov, l1, l2) -> penalty"},
    {"gather_rows", py_gather_rows, METH_VARARGS, "gather_rows(src, idx, out): out = float32(src[idx])"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "pyreg._core",
                                       "pyreg's C core (see csrc/pyreg.h).", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ACT_LINEAR", PR_ACT_LINEAR) || PyModule_AddIntConstant(m, "ACT_RELU", PR_ACT_RELU) ||
        PyModule_AddIntConstant(m, "ACT_SIGMOID", PR_ACT_SIGMOID) || PyModule_AddIntConstant(m, "ACT_TANH", PR_ACT_TANH) ||
        PyModule_AddIntConstant(m, "ACT_SOFTMAX", PR_ACT_SOFTMAX) ||
        PyModule_AddIntConstant(m, "LOSS_CATEGORICAL_CE", PR_LOSS_CATEGORICAL_CE) ||
        PyModule_AddIntConstant(m, "LOSS_SPARSE_CATEGORICAL_CE", PR_LOSS_SPARSE_CATEGORICAL_CE) ||
        PyModule_AddIntConstant(m, "LOSS_MSE", PR_LOSS_MSE)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
