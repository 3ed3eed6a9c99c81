/* bench_gemm.c: GFLOP/s of pr_sgemm on pyreg's real shapes (not run by make
 * test). Usage: bench_gemm [threads [reps]]; PYREG_ISA picks the path.
 * Output: one line per shape, best-of-reps time. */
#define _POSIX_C_SOURCE 199309L
#include "pyreg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *only = argc > 3 ? argv[3] : NULL;
    static const struct { const char *name; int ta, tb; int64_t M, N, K; } cases[] = {
        {"square 2048", 0, 0, 2048, 2048, 2048},
        {"conv fwd", 0, 0, 2048, 128, 1152},
        {"conv dW", 1, 0, 1152, 128, 2048},
        {"conv dX", 0, 1, 2048, 1152, 128},
        {"conv dW bigK", 1, 0, 1152, 128, 100000},
        {"dense fwd", 0, 0, 128, 1024, 86528},
        {"dense dW", 1, 0, 86528, 1024, 128},
        {"dense dX", 0, 1, 128, 86528, 1024},
    };
    pr_set_num_threads(threads);
    printf("isa %s, threads %d\n", pr_get_isa(), pr_get_num_threads());
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (only && !strstr(cases[c].name, only)) continue;
        int64_t M = cases[c].M, N = cases[c].N, K = cases[c].K;
        int ta = cases[c].ta, tb = cases[c].tb;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C = malloc(sizeof(float) * M * N);
        for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
        for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            pr_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("%-14s %c%c M=%-6lld N=%-6lld K=%-6lld %8.2f ms %7.1f GFLOP/s\n",
               cases[c].name, ta ? 'T' : 'N', tb ? 'T' : 'N', (long long)M,
               (long long)N, (long long)K, best * 1e3, 2.0 * M * N * K / best * 1e-9);
        free(A); free(B); free(C);
    }
    return 0;
}
