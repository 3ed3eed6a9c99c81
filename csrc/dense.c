/* dense.c: fully connected layer, forward and backward side by side. */
#include "internal.h"

#include <string.h>

static int dense_shape_ok(int64_t B, int64_t I, int64_t O)
{
    int64_t t;
    return B >= 0 && I >= 1 && O >= 1 && pr_mul_ok(B, I, &t) &&
           pr_mul_ok(B, O, &t) && pr_mul_ok(I, O, &t);
}

/* out (B,O) = inp (B,I) @ weight (I,O) + bias (O), then ReLU if asked (both in
 * the GEMM's epilogue) */
int pr_dense_forward(float *out, const float *inp, const float *weight,
                     const float *bias, int64_t B, int64_t I, int64_t O, int relu)
{
    if (!dense_shape_ok(B, I, O) || !out || !inp || !weight) return PR_EINVAL;
    if (B == 0) return PR_OK;
    pr_gemm_ext ext = {NULL, bias, relu};
    return pr_sgemm_ext(0, 0, B, O, I, 1.0f, inp, I, weight, O, 0.0f, out, O, &ext);
}

/* dinp (B,I) = dout @ weight^T; dweight (I,O) = inp^T @ dout; dbias (O) = sum_b dout */
int pr_dense_backward(float *dinp, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      int64_t B, int64_t I, int64_t O)
{
    if (!dense_shape_ok(B, I, O) || !dout) return PR_EINVAL;
    if ((dweight && !inp) || (dinp && !weight)) return PR_EINVAL;
    int st = PR_OK;
    if (dbias) {
        PR_PARALLEL_FOR(B * O)
        for (int64_t o = 0; o < O; o++) {
            double acc = 0.0;
            for (int64_t b = 0; b < B; b++) acc += dout[b * O + o];
            dbias[o] = (float)acc;
        }
    }
    if (dweight) {
        if (B == 0) memset(dweight, 0, (size_t)(I * O) * sizeof(float));
        else st = pr_sgemm(1, 0, I, O, B, 1.0f, inp, I, dout, O, 0.0f, dweight, O);
        if (st) return st;
    }
    if (dinp && B > 0)
        st = pr_sgemm(0, 1, B, I, O, 1.0f, dout, O, weight, O, 0.0f, dinp, I);
    return st;
}

/* dw_rows (r1-r0, n_out) = inp[:, r0:r1]^T @ dout: the same GEMM as the full
 * dweight restricted to rows r0..r1 (the same k order, so the same bits). */
int pr_dense_weight_grad_rows(float *dw_rows, const float *dout, const float *inp,
                              int64_t B, int64_t n_in, int64_t n_out, int64_t r0, int64_t r1)
{
    if (!dense_shape_ok(B, n_in, n_out) || !dw_rows || !dout || !inp || r0 < 0 || r1 > n_in || r0 >= r1)
        return PR_EINVAL;
    if (B == 0) {
        memset(dw_rows, 0, (size_t)((r1 - r0) * n_out) * sizeof(float));
        return PR_OK;
    }
    return pr_sgemm(1, 0, r1 - r0, n_out, B, 1.0f, inp + r0, n_in, dout, n_out, 0.0f, dw_rows, n_out);
}
