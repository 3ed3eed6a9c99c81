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

/* Fixed reduction chunk: sums are formed per chunk of this many elements and
 * the chunk sums are added in index order, whatever the thread count. */
#define PR_REDUCE_CHUNK ((int64_t)1 << 16)

#endif
