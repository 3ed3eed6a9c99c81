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

/* Fixed reduction chunk: sums are formed per chunk of this many elements and
 * the chunk sums are added in index order, whatever the thread count. */
#define PR_REDUCE_CHUNK ((int64_t)1 << 16)

#endif
