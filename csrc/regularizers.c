/* regularizers.c: Keras's weight penalties and their gradients.
 *   L1(w) = l1 * sum|w|,  L2(w) = l2 * sum w^2 (no 1/2),  L1L2 = both. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* Sum over one chunk, in double, in 8 lanes (lane = index mod 8) added in
 * order at the end: vectorisable, and the same bits as the fused optimizer
 * loops in optim.c, which use the same chunks and lanes. */
static double penalty_chunk(const float *w, int64_t n, float l1, float l2)
{
    double a1[8] = {0}, a2[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            const double x = w[i + j];
            a1[j] += fabs(x);
            a2[j] += x * x;
        }
    for (; i < n; i++) {
        const double x = w[i];
        a1[i & 7] += fabs(x);
        a2[i & 7] += x * x;
    }
    double s1 = 0.0, s2 = 0.0;
    for (int j = 0; j < 8; j++) {
        s1 += a1[j];
        s2 += a2[j];
    }
    return (double)l1 * s1 + (double)l2 * s2;
}

double pr_reg_penalty(const float *w, int64_t n, float l1, float l2)
{
    if (!w || n <= 0 || (l1 == 0.0f && l2 == 0.0f)) return 0.0;
    int64_t nchunks = (n + PR_REDUCE_CHUNK - 1) / PR_REDUCE_CHUNK;
    double *part = (double *)malloc((size_t)nchunks * sizeof(double));
    if (!part) { /* same chunking, sequentially */
        double total = 0.0;
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t i0 = c * PR_REDUCE_CHUNK, len = n - i0 < PR_REDUCE_CHUNK ? n - i0 : PR_REDUCE_CHUNK;
            total += penalty_chunk(w + i0, len, l1, l2);
        }
        return total;
    }
    PR_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * PR_REDUCE_CHUNK, len = n - i0 < PR_REDUCE_CHUNK ? n - i0 : PR_REDUCE_CHUNK;
        part[c] = penalty_chunk(w + i0, len, l1, l2);
    }
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

/* grad += l1 * sign(w) + 2 * l2 * w, sign(0) = 0 */
int pr_reg_backward(float *grad, const float *w, int64_t n, float l1, float l2)
{
    if (!grad || !w || n < 0) return PR_EINVAL;
    const float two_l2 = 2.0f * l2;
    PR_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float s = (w[i] > 0.0f) - (w[i] < 0.0f);
        grad[i] += l1 * s + two_l2 * w[i];
    }
    return PR_OK;
}

/* Proximal step for L1: w = sign(w) * max(|w| - thr, 0) */
int pr_soft_threshold(float *w, int64_t n, float thr, int64_t *zeros)
{
    if (!w || n < 0 || !(thr >= 0.0f)) return PR_EINVAL;
    int64_t z = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(pr_get_num_threads()) reduction(+ : z) if (n > 32768)
#endif
    for (int64_t i = 0; i < n; i++) {
        float a = w[i] < 0.0f ? -w[i] : w[i];
        float r = a - thr;
        w[i] = r > 0.0f ? (w[i] < 0.0f ? -r : r) : 0.0f;
        z += w[i] == 0.0f;
    }
    if (zeros) *zeros = z;
    return PR_OK;
}
