/* optim.c: tf-keras legacy optimizer updates, each one pass over a parameter
 * buffer fused with its regularizer: the penalty of the pre-update weights,
 * its gradient added to g, and the update, in one memory-bound loop.
 * NB: this is L1/L2 regularization as Keras does it (a penalty in the loss),
 * not decoupled weight decay (AdamW), which would shrink w outside Adam. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* Runs body(i0, len) over fixed chunks in parallel; sums the chunk penalties
 * in chunk order into *penalty when wanted. */
#define PR_CHUNKED_LOOP(n, penalty, want_pen, BODY)                                   \
    do {                                                                              \
        int64_t nchunks_ = ((n) + PR_REDUCE_CHUNK - 1) / PR_REDUCE_CHUNK;             \
        double *part_ = (want_pen) ? (double *)calloc((size_t)nchunks_, sizeof(double)) : NULL; \
        if ((want_pen) && !part_) return PR_ENOMEM;                                   \
        PR_PARALLEL_FOR(n)                                                            \
        for (int64_t c_ = 0; c_ < nchunks_; c_++) {                                   \
            int64_t i0 = c_ * PR_REDUCE_CHUNK;                                        \
            int64_t i1 = (n) - i0 < PR_REDUCE_CHUNK ? (n) : i0 + PR_REDUCE_CHUNK;     \
            double a1 = 0.0, a2 = 0.0;                                                \
            BODY                                                                      \
            if (part_) part_[c_] = (double)l1 * a1 + (double)l2 * a2;                 \
        }                                                                             \
        if (part_) {                                                                  \
            double tot_ = 0.0;                                                        \
            for (int64_t c_ = 0; c_ < nchunks_; c_++) tot_ += part_[c_];              \
            if (penalty) *(penalty) += tot_;                                          \
            free(part_);                                                              \
        }                                                                             \
    } while (0)

/* g += l1*sign(w) + 2*l2*w for element i, accumulating the penalty */
#define PR_REG_ELEMENT(i)                                                            \
    if (reg) {                                                                        \
        float w_ = w[i];                                                              \
        double wd_ = w_;                                                              \
        a1 += wd_ < 0 ? -wd_ : wd_;                                                   \
        a2 += wd_ * wd_;                                                              \
        g[i] += l1 * (float)((w_ > 0.0f) - (w_ < 0.0f)) + two_l2 * w_;               \
    }

int pr_adam_update(float *w, float *g, float *m, float *v, float *vhat,
                   int64_t n, const pr_adam_hyper *h, float l1, float l2,
                   double *penalty)
{
    if (!w || !g || !m || !v || !h || n < 0 || h->t < 1) return PR_EINVAL;
    if (h->amsgrad && !vhat) return PR_EINVAL;
    if (!(l1 >= 0.0f) || !(l2 >= 0.0f)) return PR_EINVAL;
    const int reg = l1 != 0.0f || l2 != 0.0f;
    const float two_l2 = 2.0f * l2;
    const float b1 = h->beta_1, b2 = h->beta_2, eps = h->epsilon;
    /* ResourceApplyAdam, in float32 as TensorFlow */
    const float b1p = powf(b1, (float)h->t), b2p = powf(b2, (float)h->t);
    const float alpha = h->lr * sqrtf(1.0f - b2p) / (1.0f - b1p);
    const float omb1 = 1.0f - b1, omb2 = 1.0f - b2;
    const int amsgrad = h->amsgrad, prox = h->prox_l1 && l1 != 0.0f;
    const float alpha_l1 = alpha * l1;
    PR_CHUNKED_LOOP(n, penalty, reg && penalty, {
        for (int64_t i = i0; i < i1; i++) {
            float gm;
            if (prox) { /* m without the L1 term; g becomes the full subgradient for v */
                float w_ = w[i];
                double wd_ = w_;
                a1 += wd_ < 0 ? -wd_ : wd_;
                a2 += wd_ * wd_;
                gm = g[i] + two_l2 * w_;
                g[i] = gm + l1 * (float)((w_ > 0.0f) - (w_ < 0.0f));
            } else {
                PR_REG_ELEMENT(i)
                gm = g[i];
            }
            float gi = g[i];
            float mi = m[i] + (gm - m[i]) * omb1;
            float vi = v[i] + (gi * gi - v[i]) * omb2;
            m[i] = mi;
            v[i] = vi;
            if (amsgrad) {
                float vh = vhat[i] > vi ? vhat[i] : vi;
                vhat[i] = vh;
                vi = vh;
            }
            float wn = w[i] - (mi * alpha) / (sqrtf(vi) + eps);
            if (prox) { /* soft-threshold by alpha * l1 / (sqrt(v) + eps) */
                float thr = alpha_l1 / (sqrtf(vi) + eps);
                float r = (wn < 0.0f ? -wn : wn) - thr;
                wn = r > 0.0f ? (wn < 0.0f ? -r : r) : 0.0f;
            }
            w[i] = wn;
        }
    });
    return PR_OK;
}

int pr_sgd_update(float *w, float *g, float *buf, int64_t n, float lr,
                  float momentum, int nesterov, float l1, float l2,
                  double *penalty)
{
    if (!w || !g || n < 0 || (momentum != 0.0f && !buf)) return PR_EINVAL;
    if (!(l1 >= 0.0f) || !(l2 >= 0.0f)) return PR_EINVAL;
    const int reg = l1 != 0.0f || l2 != 0.0f;
    const float two_l2 = 2.0f * l2;
    if (momentum == 0.0f) { /* ResourceApplyGradientDescent */
        PR_CHUNKED_LOOP(n, penalty, reg && penalty, {
            for (int64_t i = i0; i < i1; i++) {
                PR_REG_ELEMENT(i)
                w[i] -= lr * g[i];
            }
        });
    } else { /* ResourceApplyKerasMomentum */
        PR_CHUNKED_LOOP(n, penalty, reg && penalty, {
            for (int64_t i = i0; i < i1; i++) {
                PR_REG_ELEMENT(i)
                float b = buf[i] * momentum - g[i] * lr;
                buf[i] = b;
                if (nesterov) w[i] += b * momentum - g[i] * lr;
                else w[i] += b;
            }
        });
    }
    return PR_OK;
}
