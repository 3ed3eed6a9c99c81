/* test_implicit.c: the GEMM extensions the layers use (internal.h):
 *   - implicit convolution GEMMs (op(A) = patch matrix P or P^T, packed
 *     straight from the input) against pr_sgemm on an explicit im2col of the
 *     same input: bitwise equal, on every ISA path, with 1 and 2 threads, over
 *     awkward shapes (padding, strides, odd sizes, k blocks that split a
 *     kernel tap, partial register tiles), and against the oracle;
 *   - the bias + ReLU epilogue against what it replaces: bitwise equal, NaN
 *     and -0 kept as TensorFlow's relu does;
 *   - pr_conv2d_forward's fused ReLU, on both its implicit and its im2col
 *     (few channels) paths.
 * Prints "N passed, M failed"; exit code 1 on any failure. */
#include "internal.h"
#include "gemm_internal.h"
#define CHECK_SEED 0x2545F4914F6CDD1Dull
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The patch matrix, written out naively from its definition in internal.h. */
static float *naive_im2col(const float *inp, const pr_conv2d_shape *s)
{
    int64_t kdim = s->KH * s->KW * s->C, rows = s->N * s->OH * s->OW;
    float *P = malloc((size_t)(rows * kdim) * sizeof(float));
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t i = 0; i < s->OH; i++)
            for (int64_t j = 0; j < s->OW; j++)
                for (int64_t di = 0; di < s->KH; di++)
                    for (int64_t dj = 0; dj < s->KW; dj++)
                        for (int64_t c = 0; c < s->C; c++) {
                            int64_t h = i * s->SH + di - s->pad_top;
                            int64_t w = j * s->SW + dj - s->pad_left;
                            int64_t q = (n * s->OH + i) * s->OW + j;
                            int64_t k = (di * s->KW + dj) * s->C + c;
                            P[q * kdim + k] = h < 0 || h >= s->H || w < 0 || w >= s->W
                                                  ? 0.0f
                                                  : inp[((n * s->H + h) * s->W + w) * s->C + c];
                        }
    return P;
}

static int same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* Worst |x - ref| / (sum_k |a b| + 1e-30) over C, against the oracle. */
static double rel_err_ref(int ta, int64_t M, int64_t N, int64_t K, const float *A,
                          const float *B, const float *C)
{
    double worst = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0, mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)(ta ? A[k * M + i] : A[i * K + k]) * B[k * N + j];
                acc += p;
                mag += fabs(p);
            }
            double e = fabs(C[i * N + j] - acc) / (mag + 1e-30);
            if (e > worst) worst = e;
        }
    return worst;
}

typedef struct { int64_t N, H, W, C, KH, KW, SH, SW, F; int same; } conv_case;

/* Implicit forward (op(A) = P, all rows and all but a few) and kernel
 * gradient (op(A) = P^T) against pr_sgemm on the explicit P. */
static void test_conv_case(const conv_case *cc)
{
    pr_conv2d_shape s = {cc->N, cc->H, cc->W, cc->C, cc->KH, cc->KW, cc->F, cc->SH, cc->SW, 0, 0, 0, 0};
    CHECK(pr_conv2d_shape_init(&s, cc->same) == PR_OK, "shape init");
    const int64_t kdim = s.KH * s.KW * s.C, rows = s.N * s.OH * s.OW, F = s.F;
    float *inp = rand_buf(s.N * s.H * s.W * s.C), *ker = rand_buf(kdim * F);
    float *dout = rand_buf(rows * F), *P = naive_im2col(inp, &s);
    float *c0 = malloc((size_t)(rows * F) * sizeof(float)), *c1 = malloc((size_t)(rows * F) * sizeof(float));
    float *w0 = malloc((size_t)(kdim * F) * sizeof(float)), *w1 = malloc((size_t)(kdim * F) * sizeof(float));
    pr_patches pt = {inp, &s};
    pr_gemm_ext ext = {&pt, NULL, 0};
    int fwd_same = 1, dk_same = 1, part_same = 1;
    for (int nt = 1; nt <= 2; nt++) {
        pr_set_num_threads(nt);
        pr_sgemm(0, 0, rows, F, kdim, 1.0f, P, kdim, ker, F, 0.0f, c0, F);
        CHECK(pr_sgemm_ext(0, 0, rows, F, kdim, 1.0f, NULL, 0, ker, F, 0.0f, c1, F, &ext) == PR_OK,
              "implicit forward status");
        fwd_same &= same_bits(c0, c1, rows * F);
        int64_t m = rows > 5 ? rows - 5 : rows; /* leading rows only: partial tiles */
        pr_sgemm(0, 0, m, F, kdim, 1.0f, P, kdim, ker, F, 0.0f, c0, F);
        pr_sgemm_ext(0, 0, m, F, kdim, 1.0f, NULL, 0, ker, F, 0.0f, c1, F, &ext);
        part_same &= same_bits(c0, c1, m * F);
        pr_sgemm(1, 0, kdim, F, rows, 1.0f, P, kdim, dout, F, 0.0f, w0, F);
        CHECK(pr_sgemm_ext(1, 0, kdim, F, rows, 1.0f, NULL, 0, dout, F, 0.0f, w1, F, &ext) == PR_OK,
              "implicit kernel gradient status");
        dk_same &= same_bits(w0, w1, kdim * F);
    }
    pr_set_num_threads(0);
    const char *isa = pr_get_isa();
    CHECK(fwd_same, "isa=%s P @ kernel implicit == explicit, N%lld H%lld W%lld C%lld k%lldx%lld s%lldx%lld F%lld same=%d",
          isa, (long long)s.N, (long long)s.H, (long long)s.W, (long long)s.C, (long long)s.KH,
          (long long)s.KW, (long long)s.SH, (long long)s.SW, (long long)F, cc->same);
    CHECK(part_same, "isa=%s leading rows of P implicit == explicit (C%lld)", isa, (long long)s.C);
    CHECK(dk_same, "isa=%s P^T @ dout implicit == explicit, C%lld k%lldx%lld F%lld", isa,
          (long long)s.C, (long long)s.KH, (long long)s.KW, (long long)F);
    if (rows * kdim * F <= 20000000) { /* the oracle, where it is quick */
        pr_sgemm_ext(0, 0, rows, F, kdim, 1.0f, NULL, 0, ker, F, 0.0f, c1, F, &ext);
        double e1 = rel_err_ref(0, rows, F, kdim, P, ker, c1);
        pr_sgemm_ext(1, 0, kdim, F, rows, 1.0f, NULL, 0, dout, F, 0.0f, w1, F, &ext);
        double e2 = rel_err_ref(1, kdim, F, rows, P, dout, w1);
        CHECK(e1 < 1e-5 && e2 < 1e-5, "isa=%s implicit vs oracle: %g %g", isa, e1, e2);
    }
    free(inp); free(ker); free(dout); free(P); free(c0); free(c1); free(w0); free(w1);
}

static void test_conv(void)
{
    static const conv_case cases[] = {
        /* N  H   W   C  KH KW SH SW  F same */
        {2, 9, 11, 16, 3, 3, 1, 1, 16, 0},
        {3, 8, 8, 64, 3, 3, 2, 2, 24, 1},  /* kdim 576: k blocks split a tap */
        {1, 7, 5, 17, 5, 3, 1, 2, 7, 1},   /* odd channel count, kernel past the image */
        {2, 10, 10, 128, 3, 3, 1, 1, 33, 0},
        {4, 6, 6, 48, 2, 4, 3, 1, 5, 1},
        {1, 1, 1, 32, 3, 3, 1, 1, 3, 1},   /* all padding but the centre */
        {5, 4, 9, 40, 1, 3, 1, 2, 50, 0},
        {2, 12, 12, 3, 3, 3, 1, 1, 9, 0},  /* few channels: runs of 3 floats */
        {3, 7, 9, 5, 3, 3, 2, 2, 6, 1},    /* runs of 5, strided, padded */
        {2, 9, 8, 15, 6, 6, 1, 2, 4, 1},   /* k blocks split a tap */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_conv_case(&cases[i]);
}

/* The epilogue against what it replaces: bias: C preset to the bias, then
 * pr_sgemm with beta = 1 (alpha = 1, as the layers use it); ReLU: a separate
 * pass after pr_sgemm (any alpha, beta). Bitwise. */
static void test_epilogue(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 19, 33}, {13, 16, 400}, {150, 37, 900}};
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {2.0f, -0.5f}};
    int all = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t v = 0; v < sizeof ab / sizeof ab[0]; v++)
            for (int mode = 1; mode < 4; mode++) { /* bias, relu, both */
                int use_bias = mode & 1, relu = mode & 2;
                if (use_bias && v > 0) continue; /* bias: alpha 1, beta 0 */
                int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                float *A = rand_buf(M * K), *B = rand_buf(K * N), *bias = rand_buf(N);
                float *c0 = rand_buf(M * N), *c1 = malloc((size_t)(M * N) * sizeof(float));
                memcpy(c1, c0, (size_t)(M * N) * sizeof(float));
                pr_gemm_ext ext = {NULL, use_bias ? bias : NULL, relu};
                if (use_bias)
                    for (int64_t i = 0; i < M * N; i++) c0[i] = bias[i % N];
                pr_sgemm(0, 0, M, N, K, ab[v][0], A, K, B, N, use_bias ? 1.0f : ab[v][1], c0, N);
                if (relu)
                    for (int64_t i = 0; i < M * N; i++) c0[i] = c0[i] < 0.0f ? 0.0f : c0[i];
                pr_sgemm_ext(0, 0, M, N, K, ab[v][0], A, K, B, N, ab[v][1], c1, N, &ext);
                all &= same_bits(c0, c1, M * N);
                free(A); free(B); free(bias); free(c0); free(c1);
            }
    CHECK(all, "isa=%s bias/relu epilogue == what it replaces", pr_get_isa());

    /* ReLU keeps NaN and -0 and makes negatives +0 (TensorFlow's relu); K == 0
     * leaves C = beta*C (beta = 1: C as it was) before the epilogue. */
    float C[4] = {NAN, -0.0f, -2.0f, 3.0f};
    pr_gemm_ext relu = {NULL, NULL, 1};
    CHECK(pr_sgemm_ext(0, 0, 1, 4, 0, 1.0f, NULL, 0, NULL, 0, 1.0f, C, 4, &relu) == PR_OK &&
          isnan(C[0]) && C[1] == 0.0f && signbit(C[1]) && C[2] == 0.0f && !signbit(C[2]) && C[3] == 3.0f,
          "relu epilogue keeps NaN and -0: %g %g %g %g", C[0], C[1], C[2], C[3]);
    float bias[2] = {1.0f, -3.0f}, D[4] = {7, 7, 7, 7};
    pr_gemm_ext both = {NULL, bias, 1};
    CHECK(pr_sgemm_ext(0, 0, 2, 2, 0, 1.0f, NULL, 0, NULL, 0, 0.0f, D, 2, &both) == PR_OK &&
          D[0] == 1.0f && D[1] == 0.0f && D[2] == 1.0f && D[3] == 0.0f,
          "K=0 epilogue: %g %g %g %g", D[0], D[1], D[2], D[3]);
    CHECK(pr_sgemm_ext(0, 0, 2, 2, 0, 1.0f, NULL, 0, NULL, 0, 1.0f, D, 2, &both) == PR_EINVAL,
          "bias with beta != 0 refused");
}

/* Patch matrices that do not fit the product are refused. */
static void test_validation(void)
{
    float inp[2 * 4 * 4 * 16] = {0}, B[64 * 8] = {0}, C[64 * 8];
    pr_conv2d_shape s = {2, 4, 4, 16, 2, 2, 8, 1, 1, 0, 0, 0, 0};
    pr_conv2d_shape_init(&s, 0); /* OH = OW = 3: 18 rows, kdim 64 */
    pr_patches pt = {inp, &s}, nul = {NULL, &s};
    pr_gemm_ext ext = {&pt, NULL, 0}, bad = {&nul, NULL, 0};
    CHECK(pr_sgemm_ext(0, 0, 18, 8, 64, 1.0f, NULL, 0, B, 8, 0.0f, C, 8, &ext) == PR_OK, "fits");
    CHECK(pr_sgemm_ext(0, 0, 19, 8, 64, 1.0f, NULL, 0, B, 8, 0.0f, C, 8, &ext) == PR_EINVAL, "rows > N*OH*OW");
    CHECK(pr_sgemm_ext(0, 0, 18, 8, 63, 1.0f, NULL, 0, B, 8, 0.0f, C, 8, &ext) == PR_EINVAL, "K != kdim");
    CHECK(pr_sgemm_ext(1, 0, 63, 8, 18, 1.0f, NULL, 0, B, 8, 0.0f, C, 8, &ext) == PR_EINVAL, "M != kdim (P^T)");
    CHECK(pr_sgemm_ext(0, 0, 18, 8, 64, 1.0f, NULL, 0, B, 8, 0.0f, C, 8, &bad) == PR_EINVAL, "NULL input");
}

/* pr_conv2d_forward(relu = 1) == ReLU after pr_conv2d_forward(relu = 0),
 * on the implicit path (C >= 16) and the im2col one (C = 3). */
static void test_conv_forward_relu(void)
{
    static const int64_t chans[] = {3, 32};
    for (size_t ci = 0; ci < 2; ci++) {
        pr_conv2d_shape s = {3, 9, 7, chans[ci], 3, 3, 20, 1, 1, 0, 0, 0, 0};
        pr_conv2d_shape_init(&s, 1);
        int64_t n_out = s.N * s.OH * s.OW * s.F;
        float *inp = rand_buf(s.N * s.H * s.W * s.C), *ker = rand_buf(9 * s.C * s.F), *b = rand_buf(s.F);
        float *y0 = malloc((size_t)n_out * sizeof(float)), *y1 = malloc((size_t)n_out * sizeof(float));
        CHECK(pr_conv2d_forward(y0, inp, ker, b, &s, 0) == PR_OK, "conv forward");
        CHECK(pr_conv2d_forward(y1, inp, ker, b, &s, 1) == PR_OK, "conv forward relu");
        int64_t neg = 0;
        for (int64_t i = 0; i < n_out; i++) {
            neg += y0[i] < 0.0f;
            y0[i] = y0[i] < 0.0f ? 0.0f : y0[i];
        }
        CHECK(neg > 0 && same_bits(y0, y1, n_out), "conv forward fused relu (C=%lld, %lld negatives)",
              (long long)s.C, (long long)neg);
        free(inp); free(ker); free(b); free(y0); free(y1);
    }
}

int main(void)
{
    static const char *isas[] = {"generic", "avx2", "avx512"};
    test_validation();
    for (int i = 0; i < 3; i++) {
        if (!pr_isa_supported(isas[i])) {
            printf("isa %-7s not supported by this CPU: skipped\n", isas[i]);
            continue;
        }
        pr_set_isa(isas[i]);
        test_conv();
        test_epilogue();
        test_conv_forward_relu();
    }
    printf("test_implicit: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
