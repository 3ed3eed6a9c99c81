/* activations.c: elementwise and softmax activations, forward and backward.
 * Backward passes take the forward OUTPUT y, so layers keep one buffer. */
#include "internal.h"

#include <math.h>

/* y = f(x) over (rows, D); y may alias x. */
int pr_activation_forward(float *out, const float *inp, int kind, int64_t rows, int64_t D)
{
    int64_t n;
    if (!out || !inp || rows < 0 || D < 1 || !pr_mul_ok(rows, D, &n)) return PR_EINVAL;
    switch (kind) {
    case PR_ACT_LINEAR: /* f(x) = x */
        if (out != inp) {
            PR_PARALLEL_FOR(n)
            for (int64_t i = 0; i < n; i++) out[i] = inp[i];
        }
        return PR_OK;
    case PR_ACT_RELU: /* f(x) = max(x, 0) as TensorFlow: relu(NaN) = NaN, relu(-0) = -0 */
        PR_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
        return PR_OK;
    case PR_ACT_SIGMOID: /* f(x) = 1 / (1 + exp(-x)) */
        PR_PARALLEL_FOR(n * 8)
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-inp[i]));
        return PR_OK;
    case PR_ACT_TANH: /* f(x) = tanh(x) */
        PR_PARALLEL_FOR(n * 8)
        for (int64_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
        return PR_OK;
    case PR_ACT_SOFTMAX: /* f(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x) */
        PR_PARALLEL_FOR(n * 8)
        for (int64_t r = 0; r < rows; r++) {
            const float *x = inp + r * D;
            float *y = out + r * D;
            float m = x[0];
            for (int64_t j = 1; j < D; j++) m = x[j] > m ? x[j] : m;
            double sum = 0.0;
            for (int64_t j = 0; j < D; j++) { y[j] = expf(x[j] - m); sum += y[j]; }
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < D; j++) y[j] *= inv;
        }
        return PR_OK;
    default:
        return PR_EINVAL;
    }
}

/* dx = f'(x) * dy written through y = f(x); dx may alias dy. */
int pr_activation_backward(float *dinp, const float *dout, const float *out,
                           int kind, int64_t rows, int64_t D)
{
    int64_t n;
    if (!dinp || !dout || !out || rows < 0 || D < 1 || !pr_mul_ok(rows, D, &n)) return PR_EINVAL;
    switch (kind) {
    case PR_ACT_LINEAR:
        if (dinp != dout) {
            PR_PARALLEL_FOR(n)
            for (int64_t i = 0; i < n; i++) dinp[i] = dout[i];
        }
        return PR_OK;
    case PR_ACT_RELU: /* f'(x) = [x > 0] = [y > 0] */
        PR_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) { /* both loads unconditional: no branch, so it vectorises */
            float d = dout[i];
            dinp[i] = out[i] > 0.0f ? d : 0.0f;
        }
        return PR_OK;
    case PR_ACT_SIGMOID: /* f' = y (1 - y) */
        PR_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
        return PR_OK;
    case PR_ACT_TANH: /* f' = 1 - y^2 */
        PR_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
        return PR_OK;
    case PR_ACT_SOFTMAX: /* dx = y * (dy - sum_j dy_j y_j) */
        PR_PARALLEL_FOR(n)
        for (int64_t r = 0; r < rows; r++) {
            const float *y = out + r * D, *dy = dout + r * D;
            float *dx = dinp + r * D;
            double dot = 0.0;
            for (int64_t j = 0; j < D; j++) dot += (double)dy[j] * y[j];
            float d = (float)dot;
            for (int64_t j = 0; j < D; j++) dx[j] = y[j] * (dy[j] - d);
        }
        return PR_OK;
    default:
        return PR_EINVAL;
    }
}
