/* optim.c: tf-keras legacy optimizer updates, each one pass over a parameter
 * buffer fused with its regularizer: the penalty of the pre-update weights,
 * its gradient added to g, and the update, in one memory-bound loop.
 * NB: this is L1/L2 regularization as Keras does it (a penalty in the loss),
 * not decoupled weight decay (AdamW), which would shrink w outside Adam.
 *
 * The buffer is cut into fixed chunks (PR_REDUCE_CHUNK) run in parallel; each
 * chunk sums its penalty in 8 double lanes (lane = index mod 8), and chunk sums
 * are added in order: the same bits whatever the thread count. The per-element
 * work is an always-inline function specialised on constant flags, so each
 * variant compiles to its own vectorised loop. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#define LANES 8
#define PR_INLINE static inline __attribute__((always_inline))

typedef struct {
    float alpha, omb1, omb2, eps, alpha_l1; /* Adam */
    float lr, momentum;                     /* SGD */
    float l1, two_l2;
} step_consts;

PR_INLINE float signf_(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

/* One Adam element. reg: add the regularizer's gradient; prox: L1 by
 * soft-thresholding (m without it, v with it); ams: AMSGrad. */
PR_INLINE void adam_element(float *restrict w, float *restrict g, float *restrict m, float *restrict v,
                            float *restrict vhat, int64_t i, const step_consts *k, const int reg,
                            const int prox, const int ams)
{
    const float wi = w[i];
    float gm = g[i], gv;
    if (reg && prox) {
        gm = gm + k->two_l2 * wi;
        gv = gm + k->l1 * signf_(wi);
    } else if (reg) {
        gm = gm + (k->l1 * signf_(wi) + k->two_l2 * wi);
        gv = gm;
    } else {
        gv = gm;
    }
    if (reg) g[i] = gv;
    const float mi = m[i] + (gm - m[i]) * k->omb1;
    float vi = v[i] + (gv * gv - v[i]) * k->omb2;
    m[i] = mi;
    v[i] = vi;
    if (ams) {
        vi = vhat[i] > vi ? vhat[i] : vi;
        vhat[i] = vi;
    }
    const float denom = sqrtf(vi) + k->eps;
    float wn = wi - (mi * k->alpha) / denom;
    if (reg && prox) { /* soft-threshold by alpha * l1 / (sqrt(v) + eps) */
        const float r = fabsf(wn) - k->alpha_l1 / denom;
        wn = r > 0.0f ? copysignf(r, wn) : 0.0f;
    }
    w[i] = wn;
}

/* One SGD element (ResourceApplyGradientDescent / ResourceApplyKerasMomentum). */
PR_INLINE void sgd_element(float *restrict w, float *restrict g, float *restrict buf, int64_t i,
                           const step_consts *k, const int reg, const int mom, const int nesterov)
{
    const float wi = w[i];
    float gi = g[i];
    if (reg) {
        gi = gi + (k->l1 * signf_(wi) + k->two_l2 * wi);
        g[i] = gi;
    }
    if (!mom) {
        w[i] = wi - k->lr * gi;
    } else {
        const float b = buf[i] * k->momentum - gi * k->lr;
        buf[i] = b;
        w[i] = nesterov ? wi + (b * k->momentum - gi * k->lr) : wi + b;
    }
}

/* The penalty lanes of one block of LANES elements (pre-update weights). */
PR_INLINE void penalty_lanes(double *restrict a1, double *restrict a2, const float *restrict w)
{
    for (int j = 0; j < LANES; j++) {
        const double x = w[j];
        a1[j] += fabs(x);
        a2[j] += x * x;
    }
}

PR_INLINE double lanes_total(const double *a1, const double *a2, const step_consts *k, double l2)
{
    double s1 = 0.0, s2 = 0.0;
    for (int j = 0; j < LANES; j++) {
        s1 += a1[j];
        s2 += a2[j];
    }
    return (double)k->l1 * s1 + l2 * s2;
}

/* Chunk c of an Adam update: returns its penalty (0 unless reg). */
PR_INLINE double adam_chunk(float *w, float *g, float *m, float *v, float *vhat, int64_t i0, int64_t i1,
                            const step_consts *k, double l2, const int reg, const int prox, const int ams)
{
    double a1[LANES] = {0}, a2[LANES] = {0};
    int64_t i = i0;
    for (; i + LANES <= i1; i += LANES) {
        if (reg) penalty_lanes(a1, a2, w + i);
        for (int j = 0; j < LANES; j++) adam_element(w, g, m, v, vhat, i + j, k, reg, prox, ams);
    }
    for (; i < i1; i++) {
        if (reg) {
            a1[i & (LANES - 1)] += fabs((double)w[i]);
            a2[i & (LANES - 1)] += (double)w[i] * w[i];
        }
        adam_element(w, g, m, v, vhat, i, k, reg, prox, ams);
    }
    return reg ? lanes_total(a1, a2, k, l2) : 0.0;
}

PR_INLINE double sgd_chunk(float *w, float *g, float *buf, int64_t i0, int64_t i1, const step_consts *k,
                           double l2, const int reg, const int mom, const int nesterov)
{
    double a1[LANES] = {0}, a2[LANES] = {0};
    int64_t i = i0;
    for (; i + LANES <= i1; i += LANES) {
        if (reg) penalty_lanes(a1, a2, w + i);
        for (int j = 0; j < LANES; j++) sgd_element(w, g, buf, i + j, k, reg, mom, nesterov);
    }
    for (; i < i1; i++) {
        if (reg) {
            a1[i & (LANES - 1)] += fabs((double)w[i]);
            a2[i & (LANES - 1)] += (double)w[i] * w[i];
        }
        sgd_element(w, g, buf, i, k, reg, mom, nesterov);
    }
    return reg ? lanes_total(a1, a2, k, l2) : 0.0;
}

/* Adds the chunk penalties in chunk order. */
static double sum_parts(const double *part, int64_t nchunks)
{
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    return total;
}

int pr_adam_update(float *w, float *g, float *m, float *v, float *vhat,
                   int64_t n, const pr_adam_hyper *h, float l1, float l2,
                   double *penalty)
{
    if (!w || !g || !m || !v || !h || n < 0 || h->t < 1) return PR_EINVAL;
    if (h->amsgrad && !vhat) return PR_EINVAL;
    if (!(l1 >= 0.0f) || !(l2 >= 0.0f)) return PR_EINVAL;
    const int reg = l1 != 0.0f || l2 != 0.0f;
    const int prox = h->prox_l1 && l1 != 0.0f, ams = h->amsgrad != 0;
    /* ResourceApplyAdam's scalars, in float32 as TensorFlow */
    const float b1p = powf(h->beta_1, (float)h->t), b2p = powf(h->beta_2, (float)h->t);
    step_consts k = {0};
    k.alpha = h->lr * sqrtf(1.0f - b2p) / (1.0f - b1p);
    k.omb1 = 1.0f - h->beta_1;
    k.omb2 = 1.0f - h->beta_2;
    k.eps = h->epsilon;
    /* the L1 term bypasses the first moment, so it gets no 1/(1-b1^t) bias
     * correction: lr * sqrt(1-b2^t) * l1 / (sqrt(v)+eps), the subgradient's step */
    k.alpha_l1 = h->lr * sqrtf(1.0f - b2p) * l1;
    k.l1 = l1;
    k.two_l2 = 2.0f * l2;
    const int64_t nchunks = (n + PR_REDUCE_CHUNK - 1) / PR_REDUCE_CHUNK;
    double *part = (double *)calloc((size_t)(nchunks ? nchunks : 1), sizeof(double));
    if (!part) return PR_ENOMEM;
    PR_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t i0 = c * PR_REDUCE_CHUNK, i1 = n - i0 < PR_REDUCE_CHUNK ? n : i0 + PR_REDUCE_CHUNK;
        double p;
        if (!reg)
            p = ams ? adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 0, 0, 1)
                    : adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 0, 0, 0);
        else if (prox)
            p = ams ? adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 1, 1, 1)
                    : adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 1, 1, 0);
        else
            p = ams ? adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 1, 0, 1)
                    : adam_chunk(w, g, m, v, vhat, i0, i1, &k, l2, 1, 0, 0);
        part[c] = p;
    }
    if (penalty && reg) *penalty += sum_parts(part, nchunks);
    free(part);
    return PR_OK;
}

int pr_sgd_update(float *w, float *g, float *buf, int64_t n, float lr,
                  float momentum, int nesterov, float l1, float l2,
                  double *penalty)
{
    if (!w || !g || n < 0 || (momentum != 0.0f && !buf)) return PR_EINVAL;
    if (!(l1 >= 0.0f) || !(l2 >= 0.0f)) return PR_EINVAL;
    const int reg = l1 != 0.0f || l2 != 0.0f, mom = momentum != 0.0f, nest = nesterov != 0;
    step_consts k = {0};
    k.lr = lr;
    k.momentum = momentum;
    k.l1 = l1;
    k.two_l2 = 2.0f * l2;
    const int64_t nchunks = (n + PR_REDUCE_CHUNK - 1) / PR_REDUCE_CHUNK;
    double *part = (double *)calloc((size_t)(nchunks ? nchunks : 1), sizeof(double));
    if (!part) return PR_ENOMEM;
    PR_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t i0 = c * PR_REDUCE_CHUNK, i1 = n - i0 < PR_REDUCE_CHUNK ? n : i0 + PR_REDUCE_CHUNK;
        double p;
        if (!mom)
            p = reg ? sgd_chunk(w, g, buf, i0, i1, &k, l2, 1, 0, 0) : sgd_chunk(w, g, buf, i0, i1, &k, l2, 0, 0, 0);
        else if (!nest)
            p = reg ? sgd_chunk(w, g, buf, i0, i1, &k, l2, 1, 1, 0) : sgd_chunk(w, g, buf, i0, i1, &k, l2, 0, 1, 0);
        else
            p = reg ? sgd_chunk(w, g, buf, i0, i1, &k, l2, 1, 1, 1) : sgd_chunk(w, g, buf, i0, i1, &k, l2, 0, 1, 1);
        part[c] = p;
    }
    if (penalty && reg) *penalty += sum_parts(part, nchunks);
    free(part);
    return PR_OK;
}
