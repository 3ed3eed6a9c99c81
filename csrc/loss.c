/* loss.c: losses with their gradients, one call for both.
 * Per-sample losses are summed in double; gradients are of the batch MEAN. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#define PR_EPSILON 1e-7f /* tf-keras backend.epsilon() */

static int64_t argmax_row(const float *x, int64_t D)
{
    int64_t best = 0;
    for (int64_t j = 1; j < D; j++)
        if (x[j] > x[best]) best = j; /* first index on ties */
    return best;
}

static int target_class(const float *target, int sparse, int64_t b, int64_t D)
{
    if (sparse) return (int)target[b];
    return (int)argmax_row(target + b * D, D);
}

int64_t pr_count_correct(const float *pred, const float *target, int sparse,
                         int64_t B, int64_t D)
{
    if (!pred || !target || B < 0 || D < 1) return 0;
    int64_t correct = 0;
    if (D == 1 && !sparse) { /* binary_accuracy: (pred > 0.5) == target */
        for (int64_t b = 0; b < B; b++) correct += (pred[b] > 0.5f) == (target[b] > 0.5f);
        return correct;
    }
    for (int64_t b = 0; b < B; b++)
        correct += argmax_row(pred + b * D, D) == target_class(target, sparse, b, D);
    return correct;
}

/* One row of cross-entropy from logits z: loss = sum_k y_k (lse(z) - z_k),
 * grad = (softmax(z) - y) * scale, as tf.nn.softmax_cross_entropy_with_logits. */
static double xent_logits_row(float *g, const float *z, const float *y, int label,
                              int64_t D, float scale)
{
    float m = z[0];
    for (int64_t j = 1; j < D; j++) m = z[j] > m ? z[j] : m;
    double sum = 0.0;
    for (int64_t j = 0; j < D; j++) sum += exp((double)z[j] - m);
    double lse = log(sum);
    double loss = 0.0;
    for (int64_t j = 0; j < D; j++) {
        double yj = y ? y[j] : (j == label ? 1.0 : 0.0);
        double shifted = (double)z[j] - m;
        if (yj != 0.0) loss += yj * (lse - shifted);
        if (g) g[j] = (float)((exp(shifted) / sum - yj) * scale);
    }
    return loss;
}

/* One row of tf-keras's categorical_crossentropy on probabilities p:
 * q = p / sum p, c = clip(q, eps, 1-eps), loss = -sum_k y_k log c_k. */
static double xent_probs_row(float *g, const float *p, const float *y, int64_t D, float scale)
{
    double s = 0.0;
    for (int64_t j = 0; j < D; j++) s += p[j];
    double loss = 0.0, dot = 0.0;
    for (int64_t j = 0; j < D; j++) {
        double q = p[j] / s;
        double c = q < PR_EPSILON ? PR_EPSILON : (q > 1.0 - PR_EPSILON ? 1.0 - PR_EPSILON : q);
        loss -= y[j] * log(c);
        /* dL/dq: zero where clipped (clip_by_value passes inside [eps, 1-eps]) */
        double gq = (q >= PR_EPSILON && q <= 1.0 - PR_EPSILON) ? -y[j] / c : 0.0;
        if (g) g[j] = (float)gq;
        dot += gq * q;
    }
    if (g) /* through q = p / s: dL/dp_j = (dL/dq_j - sum_k dL/dq_k q_k) / s */
        for (int64_t j = 0; j < D; j++) g[j] = (float)((g[j] - dot) / s * scale);
    return loss;
}

/* tf-keras's sparse_categorical_crossentropy on probabilities: no
 * renormalisation, c = clip(p), then softmax cross-entropy on log c:
 * loss = log(sum c) - log c_y. */
static double sparse_xent_probs_row(float *g, const float *p, int label, int64_t D, float scale)
{
    double s = 0.0;
    for (int64_t j = 0; j < D; j++) {
        float c = p[j] < PR_EPSILON ? PR_EPSILON : (p[j] > 1.0f - PR_EPSILON ? 1.0f - PR_EPSILON : p[j]);
        s += c;
    }
    float cy = p[label] < PR_EPSILON ? PR_EPSILON : (p[label] > 1.0f - PR_EPSILON ? 1.0f - PR_EPSILON : p[label]);
    if (g)
        for (int64_t j = 0; j < D; j++) {
            int inside = p[j] >= PR_EPSILON && p[j] <= 1.0f - PR_EPSILON;
            double c = p[j] < PR_EPSILON ? PR_EPSILON : (p[j] > 1.0f - PR_EPSILON ? 1.0f - PR_EPSILON : p[j]);
            double dlogc = c / s - (j == label ? 1.0 : 0.0);
            g[j] = inside ? (float)(dlogc / c * scale) : 0.0f;
        }
    return log(s) - log((double)cy);
}

int pr_loss_forward_backward(double *loss_sum, int64_t *correct, float *dinp,
                             const float *inp, const float *target, int kind,
                             int from_logits, int64_t B, int64_t D)
{
    int64_t n;
    if (!loss_sum || !inp || !target || B < 0 || D < 1 || !pr_mul_ok(B, D, &n)) return PR_EINVAL;
    if (kind != PR_LOSS_CATEGORICAL_CE && kind != PR_LOSS_SPARSE_CATEGORICAL_CE && kind != PR_LOSS_MSE)
        return PR_EINVAL;
    const int sparse = kind == PR_LOSS_SPARSE_CATEGORICAL_CE;
    if (sparse)
        for (int64_t b = 0; b < B; b++)
            if (!(target[b] >= 0.0f && target[b] < (float)D) || target[b] != (float)(int64_t)target[b])
                return PR_EINVAL;
    const float scale = B > 0 ? 1.0f / (float)B : 0.0f;
    double total = 0.0;
    for (int64_t b = 0; b < B; b++) {
        const float *x = inp + b * D;
        float *g = dinp ? dinp + b * D : NULL;
        if (kind == PR_LOSS_MSE) {
            /* loss_b = mean_j (x_j - y_j)^2; grad = 2 (x - y) / (D B) */
            const float *y = target + b * D;
            double acc = 0.0;
            for (int64_t j = 0; j < D; j++) {
                float d = x[j] - y[j];
                acc += (double)d * d;
                if (g) g[j] = 2.0f * d / (float)D * scale;
            }
            total += acc / (double)D;
        } else if (from_logits) {
            total += xent_logits_row(g, x, sparse ? NULL : target + b * D,
                                     sparse ? (int)target[b] : -1, D, scale);
        } else if (sparse) {
            total += sparse_xent_probs_row(g, x, (int)target[b], D, scale);
        } else {
            total += xent_probs_row(g, x, target + b * D, D, scale);
        }
    }
    *loss_sum = total;
    if (correct) *correct = pr_count_correct(inp, target, sparse, B, D);
    return PR_OK;
}
