/* internal.h: helpers shared by the kernels (not part of the public API). */
#ifndef PYREG_INTERNAL_H
#define PYREG_INTERNAL_H
#include "pyreg.h"

#ifdef _OPENMP
#include <omp.h>
#define PR_PRAGMA(x) _Pragma(#x)
/* Parallel-for over an index range when the work is large enough. */
#define PR_PARALLEL_FOR(work) PR_PRAGMA(omp parallel for schedule(static) num_threads(pr_get_num_threads()) if ((work) > 131072))
#else
#define PR_PARALLEL_FOR(work)
#endif

/* a*b into *out unless it overflows int64 (operands must be >= 0). */
static inline int pr_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return 0;
    if (a != 0 && b > INT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* One spatial axis of a sliding window (conv2d, pooling), TensorFlow's rules:
 * valid: out = ceil((in - k + 1) / s), no padding, k <= in required;
 * same:  out = ceil(in / s), pad_before = max(0, (out-1)*s + k - in) / 2 (the
 *        extra row/column goes after). Returns 0 if k > in with valid. */
static inline int pr_window_axis(int64_t in, int64_t k, int64_t s, int same, int64_t *out, int64_t *pad_before)
{
    if (same) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + k - in;
        *pad_before = total > 0 ? total / 2 : 0;
        return 1;
    }
    if (k > in) return 0;
    *out = (in - k + s) / s;
    *pad_before = 0;
    return 1;
}

/* ------------------------------------------------- GEMM for the layers */

/* A convolution's patch matrix P (the im2col matrix), never stored: row q is
 * output pixel q = (n*OH + i)*OW + j, column k = (di*KW + dj)*C + c is kernel
 * tap (di, dj) and channel c, and P[q, k] = inp[n, i*SH + di - pad_top,
 * j*SW + dj - pad_left, c], 0 in the padding. The GEMM packs its panels
 * straight from the input (implicit GEMM). */
typedef struct {
    const float *inp;         /* (N, H, W, C) */
    const pr_conv2d_shape *s; /* OH, OW, pads filled in */
} pr_patches;

/* What pr_sgemm_ext adds to pr_sgemm (each part optional):
 *   a:    op(A) is P (trans_a = 0: M <= N*OH*OW rows, K = KH*KW*C) or P^T
 *         (trans_a = 1: M = KH*KW*C, K <= N*OH*OW); A and lda are ignored;
 *   bias: N floats, C = alpha*op(A)op(B) + bias (beta must be 0): the bias
 *         joins each tile of C after its first k block, so with alpha == 1
 *         the bits are those of setting every row of C to the bias and
 *         calling pr_sgemm with beta = 1 (what it replaces);
 *   relu: at the end, C = max(C, 0), NaN and -0 kept (TensorFlow's relu):
 *         the same bits as a separate pass.
 * Both are applied to each tile of C while it is in cache. */
typedef struct {
    const pr_patches *a;
    const float *bias;
    int relu;
} pr_gemm_ext;

int pr_sgemm_ext(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc,
                 const pr_gemm_ext *ext);

/* Fixed reduction chunk: sums are formed per chunk of this many elements and
 * the chunk sums are added in index order, whatever the thread count. */
#define PR_REDUCE_CHUNK ((int64_t)1 << 16)

#endif
