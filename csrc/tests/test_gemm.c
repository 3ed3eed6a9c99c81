/* test_gemm.c: pr_sgemm against the oracle pr_sgemm_ref, on every ISA path
 * this CPU supports; argument validation; bitwise equality across thread
 * counts. Prints "N passed, M failed"; exit code 1 on any failure. */
#include "pyreg.h"
#include "gemm_internal.h" /* the packing routines, tested directly */
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One case: op(A) (M,K), op(B) (K,N), C (M,N), each with `pad` extra columns
 * of row stride. beta == 0 cases fill C with NaN (it must not be read). The
 * padding of C must stay untouched. Returns 1 if it passed. */
static int run_case(int ta, int tb, int64_t M, int64_t N, int64_t K,
                    float alpha, float beta, int64_t pad)
{
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = rand_buf(ar * lda), *B = rand_buf(br * ldb);
    float *C = rand_buf(M * ldc), *R = malloc((size_t)(M * ldc + 1) * sizeof(float));
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++) C[i * ldc + j] = 12345.0f; /* sentinel */
    memcpy(R, C, (size_t)(M * ldc) * sizeof(float));
    float *C0 = malloc((size_t)(M * ldc + 1) * sizeof(float));
    memcpy(C0, C, (size_t)(M * ldc) * sizeof(float));

    int rc = pr_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int rr = pr_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    int ok = rc == PR_OK && rr == PR_OK;
    double worst = 0.0;
    for (int64_t i = 0; i < M && ok; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= N) { /* padding untouched */
                if (C[i * ldc + j] != 12345.0f) { ok = 0; break; }
                continue;
            }
            double mag = 0.0; /* sum_k |a_ik b_kj| */
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                mag += fabs((double)a * b);
            }
            double cbeta = beta == 0.0f ? 0.0 : fabs((double)beta * C0[i * ldc + j]);
            double tol = 1e-5 * (fabs(alpha) * mag + cbeta) + 1e-30;
            double err = fabs((double)C[i * ldc + j] - R[i * ldc + j]);
            if (!(err <= tol)) { ok = 0; worst = err; break; }
        }
    }
    CHECK(ok, "isa=%s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%lld "
          "rc=%d err=%g", pr_get_isa(), ta, tb, (long long)M, (long long)N,
          (long long)K, alpha, beta, (long long)pad, rc, worst);
    free(A); free(B); free(C); free(R); free(C0);
    return ok;
}

/* Every transpose combination over awkward shapes and alpha/beta/stride
 * variants, on the ISA path now in force. */
static void test_shapes(void)
{
    static const int64_t shapes[][3] = {
        {1, 1, 1}, {1, 1, 7}, {7, 13, 1}, {13, 7, 97}, {6, 16, 64}, {12, 32, 256},
        {97, 257, 13}, {257, 97, 300}, {3, 5, 5000}, {5, 3, 5000},
        {65, 33, 520}, {145, 17, 257}, {31, 4100, 9}, {289, 40, 11},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 2.0f}, {2.0f, 0.0f}};
    int fails_before = n_fail;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (size_t v = 0; v < sizeof ab / sizeof ab[0]; v++)
                run_case(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2],
                         ab[v][0], ab[v][1], (int64_t)((s + v) % 3) * 5);
    /* Several jc, pc and ic blocks at once, with padding. */
    run_case(0, 0, 300, 4200, 40, 1.0f, 0.5f, 3);
    run_case(1, 1, 301, 50, 1100, 1.0f, 0.0f, 1);
    run_case(0, 1, 150, 170, 600, -1.0f, 1.0f, 0);
    run_case(1, 0, 150, 170, 600, 1.5f, 0.0f, 2);
    printf("isa %-7s shapes: %s\n", pr_get_isa(), n_fail == fails_before ? "ok" : "FAILED");
}

/* K == 0 and alpha == 0: C = beta*C, A and B not read (may be NULL). */
static void test_degenerate(void)
{
    float C[6], nanv = NAN;
    for (int i = 0; i < 6; i++) C[i] = nanv;
    CHECK(pr_sgemm(0, 0, 2, 3, 0, 1.0f, NULL, 0, NULL, 0, 0.0f, C, 3) == PR_OK, "K=0 rc");
    int zero = 1;
    for (int i = 0; i < 6; i++) zero &= C[i] == 0.0f;
    CHECK(zero, "K=0 beta=0 must zero C (holding NaN)");
    for (int i = 0; i < 6; i++) C[i] = (float)i;
    CHECK(pr_sgemm(1, 1, 2, 3, 0, 1.0f, NULL, 0, NULL, 0, 2.0f, C, 3) == PR_OK, "K=0 rc");
    int scaled = 1;
    for (int i = 0; i < 6; i++) scaled &= C[i] == 2.0f * i;
    CHECK(scaled, "K=0 beta=2 must scale C");
    float A[4] = {1, 2, 3, 4}, B[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++) C[i] = (float)i;
    CHECK(pr_sgemm(0, 0, 2, 3, 2, 0.0f, A, 2, B, 3, 1.0f, C, 3) == PR_OK, "alpha=0 rc");
    scaled = 1;
    for (int i = 0; i < 6; i++) scaled &= C[i] == (float)i;
    CHECK(scaled, "alpha=0 beta=1 must leave C");
    /* M or N == 0: nothing to do, even with NULL pointers. */
    CHECK(pr_sgemm(0, 0, 0, 3, 2, 1.0f, NULL, 2, NULL, 3, 0.0f, NULL, 3) == PR_OK, "M=0");
    CHECK(pr_sgemm(0, 0, 2, 0, 2, 1.0f, NULL, 2, NULL, 3, 0.0f, NULL, 3) == PR_OK, "N=0");
}

static void test_validation(void)
{
    float A[64] = {0}, B[64] = {0}, C[64] = {0};
    CHECK(pr_sgemm(0, 0, -1, 2, 2, 1, A, 2, B, 2, 0, C, 2) == PR_EINVAL, "M<0");
    CHECK(pr_sgemm(0, 0, 2, -1, 2, 1, A, 2, B, 2, 0, C, 2) == PR_EINVAL, "N<0");
    CHECK(pr_sgemm(0, 0, 2, 2, -1, 1, A, 2, B, 2, 0, C, 2) == PR_EINVAL, "K<0");
    CHECK(pr_sgemm(0, 0, 2, 2, 2, 1, NULL, 2, B, 2, 0, C, 2) == PR_EINVAL, "A NULL");
    CHECK(pr_sgemm(0, 0, 2, 2, 2, 1, A, 2, NULL, 2, 0, C, 2) == PR_EINVAL, "B NULL");
    CHECK(pr_sgemm(0, 0, 2, 2, 2, 1, A, 2, B, 2, 0, NULL, 2) == PR_EINVAL, "C NULL");
    CHECK(pr_sgemm(0, 0, 2, 2, 0, 1, A, 2, B, 2, 0, NULL, 2) == PR_EINVAL, "C NULL, K=0");
    CHECK(pr_sgemm(0, 0, 2, 3, 4, 1, A, 3, B, 3, 0, C, 3) == PR_EINVAL, "lda < K");
    CHECK(pr_sgemm(1, 0, 5, 3, 4, 1, A, 4, B, 3, 0, C, 3) == PR_EINVAL, "lda < M (ta)");
    CHECK(pr_sgemm(0, 0, 2, 3, 4, 1, A, 4, B, 2, 0, C, 3) == PR_EINVAL, "ldb < N");
    CHECK(pr_sgemm(0, 1, 2, 3, 4, 1, A, 4, B, 3, 0, C, 3) == PR_EINVAL, "ldb < K (tb)");
    CHECK(pr_sgemm(0, 0, 2, 3, 4, 1, A, 4, B, 3, 0, C, 2) == PR_EINVAL, "ldc < N");
    CHECK(pr_sgemm(0, 0, 2, 3, 4, 1, A, 4, B, 3, 0, C, 3) == PR_OK, "minimal strides ok");
    CHECK(pr_sgemm(1, 1, 3, 2, 4, 1, A, 3, B, 4, 0, C, 2) == PR_OK, "minimal strides ok (t)");
    int64_t huge = INT64_MAX / 2;
    CHECK(pr_sgemm(0, 0, huge, 2, 2, 1, A, 2, B, 2, 0, C, huge) == PR_EOVERFLOW,
          "size overflow");
}

static void test_isa_api(void)
{
    CHECK(pr_isa_supported("generic") == 1, "generic always supported");
    CHECK(pr_isa_supported("sse9") == 0 && pr_isa_supported(NULL) == 0, "unknown isa");
    CHECK(pr_set_isa("sse9") == PR_EINVAL, "set unknown isa");
    CHECK(pr_set_isa(NULL) == PR_EINVAL, "set NULL isa");
#if defined(__x86_64__) && !defined(PR_GEMM_PORTABLE)
    __builtin_cpu_init();
    CHECK(pr_isa_supported("avx512") == (__builtin_cpu_supports("avx512f") != 0),
          "avx512 support matches the CPU");
    CHECK(pr_isa_supported("avx2") ==
          (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")),
          "avx2 support matches the CPU");
#endif
    if (!pr_isa_supported("avx512"))
        CHECK(pr_set_isa("avx512") == PR_EINVAL, "set unsupported isa");
}

/* Bitwise identical results with 1, 2 and 3 threads, and run to run. */
static void test_threads(void)
{
    static const int64_t shapes[][5] = { /* M, N, K, ta, tb */
        {128, 1024, 3000, 0, 0}, {1152, 128, 2000, 1, 0}, {1500, 128, 1152, 0, 0},
        {1000, 1152, 128, 0, 1}, {97, 257, 1300, 1, 1}, {7, 4300, 300, 0, 0},
        {20000, 40, 300, 0, 0}, /* dynamic blocks taken several at a time */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int ta = (int)shapes[s][3], tb = (int)shapes[s][4];
        float *A = rand_buf(M * K), *B = rand_buf(K * N), *C0 = rand_buf(M * N);
        float *ref = NULL;
        int same = 1;
        for (int t = 1; t <= 4; t++) {
            int nt = t == 4 ? 2 : t; /* 1, 2, 3, then 2 again (run to run) */
            float *C = malloc((size_t)(M * N) * sizeof(float));
            memcpy(C, C0, (size_t)(M * N) * sizeof(float));
            pr_set_num_threads(nt);
            pr_sgemm(ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C, N);
            if (!ref) ref = C;
            else { same &= memcmp(ref, C, (size_t)(M * N) * sizeof(float)) == 0; free(C); }
        }
        CHECK(same, "isa=%s threads 1/2/3 bitwise M=%lld N=%lld K=%lld", pr_get_isa(),
              (long long)M, (long long)N, (long long)K);
        free(A); free(B); free(C0); free(ref);
    }
    pr_set_num_threads(0);
}

/* A column's bits do not depend on how many columns there are: narrow
 * products (whose slivers run the half kernel, where there is one) against
 * the same columns of a wide one, for every transpose combination. */
static void test_narrow(void)
{
    static const int64_t Ms[] = {1, 6, 7, 13, 50};
    static const int64_t Ks[] = {1, 9, 100, 900};
    const int64_t WIDE = 40;
    int same = 1;
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
                int64_t M = Ms[mi], K = Ks[ki];
                float *A = rand_buf(M * K), *B = rand_buf(K * WIDE);
                float *Cw = malloc((size_t)(M * WIDE) * sizeof(float));
                float *Cn = malloc((size_t)(M * WIDE) * sizeof(float));
                /* B as (K, WIDE) or, transposed, (WIDE, K): the first n
                 * columns of op(B) are the same numbers for any n. */
                pr_sgemm(ta, tb, M, WIDE, K, 1.0f, A, ta ? M : K, B, tb ? K : WIDE, 0.0f, Cw, WIDE);
                for (int64_t n = 1; n <= 19; n++) {
                    pr_sgemm(ta, tb, M, n, K, 1.0f, A, ta ? M : K, B, tb ? K : WIDE, 0.0f, Cn, n);
                    for (int64_t i = 0; i < M; i++)
                        same &= memcmp(Cw + i * WIDE, Cn + i * n, (size_t)n * sizeof(float)) == 0;
                }
                free(A); free(B); free(Cw); free(Cn);
            }
    }
    CHECK(same, "isa=%s narrow N: each column's bits as in a wide product", pr_get_isa());
}

/* The SIMD transposing pack against the portable one, for every register
 * tile width (including avx512's 12 and 32, whose kernel cannot run here). */
static void test_pack(void)
{
    static const int widths[] = {4, 6, 8, 12, 16, 32};
    static const int64_t kcs[] = {1, 7, 8, 9, 64, 67};
    float *src = rand_buf(40 * 80);
    float *d0 = malloc(32 * 80 * sizeof(float)), *d1 = malloc(32 * 80 * sizeof(float));
    for (int isa = 1; isa < PR_ISA_COUNT; isa++) {
        if (!pr_isa_supported(pr_gemm_kernels[isa].name)) continue;
        int same = 1;
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
            for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++)
                for (int64_t n = 0; n <= widths[wi]; n++) {
                    int w = widths[wi];
                    int64_t kc = kcs[ki];
                    memset(d0, 0xff, 32 * 80 * sizeof(float));
                    memset(d1, 0xff, 32 * 80 * sizeof(float));
                    const float *rows[32];
                    for (int r = 0; r < w; r++) /* every third row missing after n */
                        rows[r] = r < n || r % 3 ? src + 3 + (r % 40) * 80 : NULL;
                    pr_gemm_kernels[PR_ISA_GENERIC].pack_t(d0, rows, kc, w);
                    pr_gemm_kernels[isa].pack_t(d1, rows, kc, w);
                    same &= memcmp(d0, d1, 32 * 80 * sizeof(float)) == 0;
                }
        CHECK(same, "pack_t of %s matches the portable one", pr_gemm_kernels[isa].name);
    }
    free(src); free(d0); free(d1);
}

int main(void)
{
    static const char *isas[] = {"generic", "avx2", "avx512"};
    printf("default isa: %s, threads: %d\n", pr_get_isa(), pr_get_num_threads());
    test_isa_api();
    test_validation();
    test_degenerate();
    test_pack();
    for (int i = 0; i < 3; i++) {
        if (!pr_isa_supported(isas[i])) {
            printf("isa %-7s not supported by this CPU: skipped\n", isas[i]);
            continue;
        }
        CHECK(pr_set_isa(isas[i]) == PR_OK, "set isa %s", isas[i]);
        CHECK(strcmp(pr_get_isa(), isas[i]) == 0, "get isa %s", isas[i]);
        test_shapes();
        test_degenerate();
        test_threads();
        test_narrow();
    }
    printf("test_gemm: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
