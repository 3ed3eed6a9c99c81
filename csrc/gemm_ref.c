/* gemm_ref.c: the naive GEMM, the oracle for the tuned one (gemm.c). */
#include "pyreg.h"

/* C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C, accumulated in double. */
int pr_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M < 0 || N < 0 || K < 0) return PR_EINVAL;
    if (M == 0 || N == 0) return PR_OK;
    if (!C || (K > 0 && (!A || !B))) return PR_EINVAL;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++) {
                float a = trans_a ? A[k * lda + i] : A[i * lda + k];
                float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * (double)b;
            }
            float r = alpha * (float)acc;
            if (beta != 0.0f) r += beta * C[i * ldc + j];
            C[i * ldc + j] = r;
        }
    }
    return PR_OK;
}
