/* test_ops.c: the C core's ops against naive double-precision twins and
 * finite differences, from C alone (no Python). Prints "N passed, M failed". */
#include "pyreg.h"
#define CHECK_SEED 88172645463325252ull
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, int64_t n)
{
    double e = 0, m = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return e / m;
}

/* Naive conv2d twin: out, and the three gradients for upstream g. */
static void conv_twin(double *out, double *dinp, double *dk, double *db, const float *x, const float *k,
                      const float *bias, const float *g, const pr_conv2d_shape *s)
{
    memset(dinp, 0, sizeof(double) * (size_t)(s->N * s->H * s->W * s->C));
    memset(dk, 0, sizeof(double) * (size_t)(s->KH * s->KW * s->C * s->F));
    memset(db, 0, sizeof(double) * (size_t)s->F);
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t i = 0; i < s->OH; i++)
            for (int64_t j = 0; j < s->OW; j++)
                for (int64_t f = 0; f < s->F; f++) {
                    int64_t o = ((n * s->OH + i) * s->OW + j) * s->F + f;
                    double acc = bias[f];
                    for (int64_t di = 0; di < s->KH; di++)
                        for (int64_t dj = 0; dj < s->KW; dj++) {
                            int64_t h = i * s->SH + di - s->pad_top, w = j * s->SW + dj - s->pad_left;
                            if (h < 0 || h >= s->H || w < 0 || w >= s->W) continue;
                            for (int64_t c = 0; c < s->C; c++) {
                                int64_t xi = ((n * s->H + h) * s->W + w) * s->C + c;
                                int64_t ki = ((di * s->KW + dj) * s->C + c) * s->F + f;
                                acc += (double)x[xi] * k[ki];
                                dinp[xi] += (double)g[o] * k[ki];
                                dk[ki] += (double)g[o] * x[xi];
                            }
                        }
                    out[o] = acc;
                    db[f] += g[o];
                }
}

static void test_conv2d(int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW, int64_t F,
                        int64_t SH, int64_t SW, int same)
{
    pr_conv2d_shape s = {N, H, W, C, KH, KW, F, SH, SW, 0, 0, 0, 0};
    if (pr_conv2d_shape_init(&s, same) != PR_OK) {
        CHECK(!same && (KH > H || KW > W), "shape_init refused a valid shape");
        return;
    }
    int64_t nx = N * H * W * C, nk = KH * KW * C * F, no = N * s.OH * s.OW * F;
    float *x = rand_buf(nx), *k = rand_buf(nk), *b = rand_buf(F), *g = rand_buf(no);
    float *out = malloc(sizeof(float) * (size_t)no), *dx = malloc(sizeof(float) * (size_t)nx);
    float *dk = malloc(sizeof(float) * (size_t)nk), *db = malloc(sizeof(float) * (size_t)F);
    double *rout = malloc(sizeof(double) * (size_t)no), *rdx = malloc(sizeof(double) * (size_t)nx);
    double *rdk = malloc(sizeof(double) * (size_t)nk), *rdb = malloc(sizeof(double) * (size_t)F);
    conv_twin(rout, rdx, rdk, rdb, x, k, b, g, &s);
    CHECK(pr_conv2d_forward(out, x, k, b, &s, 0) == PR_OK, "forward status");
    CHECK(pr_conv2d_backward(dx, dk, db, g, x, k, &s) == PR_OK, "backward status");
    double e1 = rel_err(out, rout, no), e2 = rel_err(dx, rdx, nx), e3 = rel_err(dk, rdk, nk), e4 = rel_err(db, rdb, F);
    CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5,
          "conv N%lld H%lld W%lld C%lld K%lldx%lld F%lld S%lldx%lld %s: out %.2e dx %.2e dk %.2e db %.2e",
          (long long)N, (long long)H, (long long)W, (long long)C, (long long)KH, (long long)KW, (long long)F,
          (long long)SH, (long long)SW, same ? "same" : "valid", e1, e2, e3, e4);
    free(x); free(k); free(b); free(g); free(out); free(dx); free(dk); free(db);
    free(rout); free(rdx); free(rdk); free(rdb);
}

static void test_dense(int64_t B, int64_t I, int64_t O)
{
    float *x = rand_buf(B * I), *w = rand_buf(I * O), *b = rand_buf(O), *g = rand_buf(B * O);
    float *out = malloc(sizeof(float) * (size_t)(B * O)), *dx = malloc(sizeof(float) * (size_t)(B * I));
    float *dw = malloc(sizeof(float) * (size_t)(I * O)), *db = malloc(sizeof(float) * (size_t)O);
    double *r = calloc((size_t)(B * O + B * I + I * O + O), sizeof(double));
    double *rout = r, *rdx = r + B * O, *rdw = rdx + B * I, *rdb = rdw + I * O;
    for (int64_t n = 0; n < B; n++)
        for (int64_t o = 0; o < O; o++) {
            double acc = b[o];
            for (int64_t i = 0; i < I; i++) {
                acc += (double)x[n * I + i] * w[i * O + o];
                rdx[n * I + i] += (double)g[n * O + o] * w[i * O + o];
                rdw[i * O + o] += (double)g[n * O + o] * x[n * I + i];
            }
            rout[n * O + o] = acc;
            rdb[o] += g[n * O + o];
        }
    CHECK(pr_dense_forward(out, x, w, b, B, I, O, 0) == PR_OK, "dense forward");
    CHECK(pr_dense_backward(dx, dw, db, g, x, w, B, I, O) == PR_OK, "dense backward");
    double e = fmax(fmax(rel_err(out, rout, B * O), rel_err(dx, rdx, B * I)),
                    fmax(rel_err(dw, rdw, I * O), rel_err(db, rdb, O)));
    CHECK(e < 1e-5, "dense B%lld I%lld O%lld: rel err %.2e", (long long)B, (long long)I, (long long)O, e);
    free(x); free(w); free(b); free(g); free(out); free(dx); free(dw); free(db); free(r);
}

/* Loss gradients against central differences of the loss (in double via the C loss). */
static void test_loss_grad(int kind, int from_logits)
{
    const int64_t B = 5, D = 7;
    float x[35], t[35], g[35];
    for (int i = 0; i < B * D; i++) x[i] = from_logits || kind == PR_LOSS_MSE ? 2 * frand() : 0.2f + 0.1f * frand();
    for (int i = 0; i < B * D; i++) t[i] = 0;
    for (int b = 0; b < B; b++) {
        int c = (b * 3) % D;
        if (kind == PR_LOSS_SPARSE_CATEGORICAL_CE) t[b] = (float)c;
        else if (kind == PR_LOSS_MSE) for (int j = 0; j < D; j++) t[b * D + j] = frand();
        else t[b * D + c] = 1;
    }
    double L;
    int64_t correct;
    CHECK(pr_loss_forward_backward(&L, &correct, g, x, t, kind, from_logits, B, D) == PR_OK, "loss status");
    double worst = 0;
    for (int i = 0; i < B * D; i++) {
        const float h = 1e-2f * fmaxf(fabsf(x[i]), 0.1f);
        float save = x[i];
        double lp, lm;
        x[i] = save + h;
        pr_loss_forward_backward(&lp, NULL, NULL, x, t, kind, from_logits, B, D);
        x[i] = save - h;
        pr_loss_forward_backward(&lm, NULL, NULL, x, t, kind, from_logits, B, D);
        x[i] = save;
        /* the C loss returns a sum over the batch; its gradient is of the mean */
        double fd = (lp - lm) / B / ((double)(save + h) - (double)(save - h));
        worst = fmax(worst, fabs(fd - g[i]) / fmax(fabs(fd), 1e-3));
    }
    CHECK(worst < 2e-3, "loss kind %d logits %d: FD rel err %.2e", kind, from_logits, worst);
}

static void test_penalty_and_threads(void)
{
    const int64_t n = 300007;
    float *w = rand_buf(n);
    w[5] = 0.0f;
    double ref1 = 0, ref2 = 0;
    for (int64_t i = 0; i < n; i++) {
        ref1 += fabs((double)w[i]);
        ref2 += (double)w[i] * w[i];
    }
    double p = pr_reg_penalty(w, n, 0.01f, 0.02f), want = (double)0.01f * ref1 + (double)0.02f * ref2;
    CHECK(fabs(p - want) <= 1e-12 * want, "penalty %.17g vs %.17g", p, want);
    float *g = calloc((size_t)n, sizeof(float));
    pr_reg_backward(g, w, n, 0.01f, 0.0f);
    CHECK(g[5] == 0.0f && g[0] == (w[0] > 0 ? 0.01f : -0.01f), "L1 gradient: sign(0) = 0");
    /* fused Adam + L1: bitwise equal with 1 and 2 threads, penalty equal to pr_reg_penalty's */
    float *w1 = malloc(sizeof(float) * (size_t)n), *w2 = malloc(sizeof(float) * (size_t)n);
    float *st = calloc((size_t)(6 * n), sizeof(float));
    memcpy(w1, w, sizeof(float) * (size_t)n);
    memcpy(w2, w, sizeof(float) * (size_t)n);
    float *g1 = st, *m1 = st + n, *v1 = st + 2 * n, *g2 = st + 3 * n, *m2 = st + 4 * n, *v2 = st + 5 * n;
    for (int64_t i = 0; i < n; i++) g1[i] = g2[i] = 0.1f * w[i];
    pr_adam_hyper h = {1e-3f, 0.9f, 0.999f, 1e-7f, 1, 0, 0};
    double p1 = 0, p2 = 0;
    pr_set_num_threads(1);
    pr_adam_update(w1, g1, m1, v1, NULL, n, &h, 0.01f, 0.02f, &p1);
    pr_set_num_threads(2);
    pr_adam_update(w2, g2, m2, v2, NULL, n, &h, 0.01f, 0.02f, &p2);
    pr_set_num_threads(0);
    CHECK(memcmp(w1, w2, sizeof(float) * (size_t)n) == 0 && p1 == p2, "adam: 1 vs 2 threads differ");
    CHECK(p1 == p, "fused penalty %.17g differs from pr_reg_penalty %.17g", p1, p);
    /* proximal L1 gives exact zeros where the data gradient is 0 */
    float wz[4] = {0.003f, -0.002f, 0.001f, 0.5f}, gz[4], mz[4] = {0}, vz[4] = {0};
    pr_adam_hyper hp = {1e-3f, 0.9f, 0.999f, 1e-7f, 1, 0, 1};
    for (int step = 1; step <= 200; step++) {
        memset(gz, 0, sizeof gz);
        hp.t = step;
        pr_adam_update(wz, gz, mz, vz, NULL, 4, &hp, 0.01f, 0.0f, NULL);
    }
    CHECK(wz[0] == 0.0f && wz[1] == 0.0f && wz[2] == 0.0f && wz[3] > 0.0f, "proximal L1: %g %g %g %g",
          wz[0], wz[1], wz[2], wz[3]);
    free(w); free(g); free(w1); free(w2); free(st);
}

static void test_invalid(void)
{
    pr_conv2d_shape s = {1, 2, 2, 1, 3, 3, 1, 1, 1, 0, 0, 0, 0};
    CHECK(pr_conv2d_shape_init(&s, 0) == PR_EINVAL, "kernel larger than input accepted");
    float a = 0;
    CHECK(pr_dense_forward(NULL, &a, &a, NULL, 1, 1, 1, 0) == PR_EINVAL, "NULL output accepted");
    CHECK(pr_dense_forward(&a, &a, &a, NULL, INT64_MAX, 2, 2, 0) == PR_EINVAL, "overflowing size accepted");
    float t = 3.0f;
    double L;
    CHECK(pr_loss_forward_backward(&L, NULL, NULL, &a, &t, PR_LOSS_SPARSE_CATEGORICAL_CE, 1, 1, 1) == PR_EINVAL,
          "out-of-range label accepted");
    int64_t idx = 5;
    CHECK(pr_gather_rows(&a, &a, PR_DT_F32, 1, &idx, 1, 1) == PR_EINVAL, "out-of-range index accepted");
}

int main(void)
{
    for (int same = 0; same <= 1; same++) {
        test_conv2d(2, 5, 6, 3, 3, 3, 4, 1, 1, same);
        test_conv2d(1, 7, 7, 2, 2, 3, 5, 2, 1, same);
        test_conv2d(3, 8, 9, 1, 5, 5, 2, 2, 2, same);
        test_conv2d(2, 4, 4, 6, 1, 1, 3, 1, 1, same);
        test_conv2d(1, 3, 3, 1, 4, 4, 1, 1, 1, same);
        test_conv2d(2, 30, 30, 3, 3, 3, 16, 1, 1, same);
    }
    test_dense(1, 1, 1);
    test_dense(7, 13, 5);
    test_dense(32, 300, 17);
    for (int kind = 0; kind <= 2; kind++)
        for (int fl = 0; fl <= 1; fl++)
            if (!(kind == PR_LOSS_MSE && fl)) test_loss_grad(kind, fl);
    test_penalty_and_threads();
    test_invalid();
    printf("test_ops: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
