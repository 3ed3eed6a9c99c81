/* gemm_kernels.c: the register-blocked SGEMM micro-kernels (see
 * gemm_internal.h for the contract) and their cache-block sizes.
 *
 *   generic  4 x 8   portable C (the compiler may vectorise it with SSE/NEON)
 *   avx2     6 x 16  12 ymm accumulators, 2 B loads + 6 A broadcasts per k
 *            (and 6 x 8, its left half, for slivers of at most 8 columns)
 *   avx512  12 x 32  24 zmm accumulators, 2 B loads + 12 A broadcasts per k
 *
 * The SIMD kernels are compiled through target attributes, so this file needs
 * no -mavx2/-march flag; the driver calls one only if the CPU supports it. */
#include "gemm_internal.h"

#include <stddef.h>

/* ------------------------------------------------------------- generic */

#define G_MR 4
#define G_NR 8

/* 4 x 8 tile in plain C: acc rows are small fixed arrays kept in registers. */
static void kern_generic(int64_t kc, const float *restrict a,
                         const float *restrict b, float *restrict c,
                         int64_t ldc, float alpha, float beta)
{
    float acc[G_MR][G_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        const float *bk = b + k * G_NR;
        const float *ak = a + k * G_MR;
        for (int i = 0; i < G_MR; i++) {
            float ai = ak[i];
            for (int j = 0; j < G_NR; j++) acc[i][j] += ai * bk[j];
        }
    }
    for (int i = 0; i < G_MR; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < G_NR; j++) ci[j] = alpha * acc[i][j];
        else if (beta == 1.0f)
            for (int j = 0; j < G_NR; j++) ci[j] += alpha * acc[i][j];
        else
            for (int j = 0; j < G_NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}

/* Transposing pack in plain C (contract in gemm_internal.h). */
static void pack_t_generic(float *restrict dst, const float *const *rows,
                           int64_t kc, int w)
{
    for (int r = 0; r < w; r++) {
        const float *row = rows[r];
        if (row)
            for (int64_t k = 0; k < kc; k++) dst[k * w + r] = row[k];
        else
            for (int64_t k = 0; k < kc; k++) dst[k * w + r] = 0.0f;
    }
}

#ifdef PR_GEMM_X86
#include <immintrin.h>

/* ------------------------------------------------- avx2 transposing pack */

/* In-register transpose of the 8 x 8 block (v0..v7 = rows): afterwards v_k
 * holds column k. */
#define TRANSPOSE8(v0, v1, v2, v3, v4, v5, v6, v7)                            \
    do {                                                                      \
        __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1); \
        __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3); \
        __m256 t4 = _mm256_unpacklo_ps(v4, v5), t5 = _mm256_unpackhi_ps(v4, v5); \
        __m256 t6 = _mm256_unpacklo_ps(v6, v7), t7 = _mm256_unpackhi_ps(v6, v7); \
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE); \
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE); \
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE); \
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE); \
        v0 = _mm256_permute2f128_ps(u0, u4, 0x20);                            \
        v1 = _mm256_permute2f128_ps(u1, u5, 0x20);                            \
        v2 = _mm256_permute2f128_ps(u2, u6, 0x20);                            \
        v3 = _mm256_permute2f128_ps(u3, u7, 0x20);                            \
        v4 = _mm256_permute2f128_ps(u0, u4, 0x31);                            \
        v5 = _mm256_permute2f128_ps(u1, u5, 0x31);                            \
        v6 = _mm256_permute2f128_ps(u2, u6, 0x31);                            \
        v7 = _mm256_permute2f128_ps(u3, u7, 0x31);                            \
    } while (0)

/* Store the first gw (8, 6 or 4) lanes of v at p. */
__attribute__((target("avx2,fma")))
static inline void store_lanes(float *p, __m256 v, int gw)
{
    if (gw == 8) {
        _mm256_storeu_ps(p, v);
    } else {
        __m128 lo = _mm256_castps256_ps128(v);
        _mm_storeu_ps(p, lo);
        if (gw == 6) _mm_storel_pi((__m64 *)(p + 4), _mm256_extractf128_ps(v, 1));
    }
}

/* Transposing pack (contract in gemm_internal.h) by 8 x 8 register blocks:
 * rows in groups of 8 (a last group of 6 or 4 for w = 6, 12), k in steps of 8.
 * Works for w a multiple of 8, or 8*q + 6 or 8*q + 4. */
__attribute__((target("avx2,fma")))
static void pack_t_avx2(float *restrict dst, const float *const *rows,
                        int64_t kc, int w)
{
    if (w % 8 != 0 && w % 8 != 6 && w % 8 != 4) {
        pack_t_generic(dst, rows, kc, w);
        return;
    }
    for (int r0 = 0; r0 < w; r0 += 8) {
        int gw = w - r0 < 8 ? w - r0 : 8;              /* lanes stored */
        const float *p[8];
        for (int r = 0; r < 8; r++) p[r] = r < gw ? rows[r0 + r] : NULL;
        float *d = dst + r0;
        int64_t k = 0;
        __m256 z = _mm256_setzero_ps();
        for (; k + 8 <= kc; k += 8, d += 8 * w) {
            __m256 v0 = p[0] ? _mm256_loadu_ps(p[0] + k) : z;
            __m256 v1 = p[1] ? _mm256_loadu_ps(p[1] + k) : z;
            __m256 v2 = p[2] ? _mm256_loadu_ps(p[2] + k) : z;
            __m256 v3 = p[3] ? _mm256_loadu_ps(p[3] + k) : z;
            __m256 v4 = p[4] ? _mm256_loadu_ps(p[4] + k) : z;
            __m256 v5 = p[5] ? _mm256_loadu_ps(p[5] + k) : z;
            __m256 v6 = p[6] ? _mm256_loadu_ps(p[6] + k) : z;
            __m256 v7 = p[7] ? _mm256_loadu_ps(p[7] + k) : z;
            TRANSPOSE8(v0, v1, v2, v3, v4, v5, v6, v7);
            store_lanes(d, v0, gw);
            store_lanes(d + w, v1, gw);
            store_lanes(d + 2 * w, v2, gw);
            store_lanes(d + 3 * w, v3, gw);
            store_lanes(d + 4 * w, v4, gw);
            store_lanes(d + 5 * w, v5, gw);
            store_lanes(d + 6 * w, v6, gw);
            store_lanes(d + 7 * w, v7, gw);
        }
        for (; k < kc; k++, d += w)
            for (int r = 0; r < gw; r++) d[r] = p[r] ? p[r][k] : 0.0f;
    }
}

/* ---------------------------------------------------------------- avx2 */

/* One row i of the 6 x 16 tile: acc (ci0, ci1) += broadcast(a[i]) * (b0, b1). */
#define A2_ROW(i)                                        \
    do {                                                 \
        __m256 ai = _mm256_broadcast_ss(a + (i));        \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);      \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);      \
    } while (0)

/* Write back row i: beta == 0 (no read), beta == 1, or general beta. */
#define A2_STORE(i)                                                          \
    do {                                                                     \
        float *ci = c + (i) * ldc;                                           \
        if (mode == 0) {                                                     \
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, c##i##0));                \
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, c##i##1));            \
        } else if (mode == 1) {                                              \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, c##i##0, _mm256_loadu_ps(ci))); \
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, c##i##1, _mm256_loadu_ps(ci + 8))); \
        } else {                                                             \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, c##i##0,                \
                             _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));       \
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, c##i##1,            \
                             _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));   \
        }                                                                    \
    } while (0)

__attribute__((target("avx2,fma")))
static void kern_avx2(int64_t kc, const float *restrict a,
                      const float *restrict b, float *restrict c, int64_t ldc,
                      float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    int mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    for (int i = 0; i < 6; i++) { /* C tile: needed at the end, fetch now */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    /* k loop unrolled by 2; the accumulation order is still k = 0, 1, 2, ... */
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        A2_ROW(0); A2_ROW(1); A2_ROW(2); A2_ROW(3); A2_ROW(4); A2_ROW(5);
        b0 = _mm256_load_ps(b + 16); b1 = _mm256_load_ps(b + 24);
        a += 6;
        A2_ROW(0); A2_ROW(1); A2_ROW(2); A2_ROW(3); A2_ROW(4); A2_ROW(5);
        a += 6;
        b += 32;
    }
    if (k < kc) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        A2_ROW(0); A2_ROW(1); A2_ROW(2); A2_ROW(3); A2_ROW(4); A2_ROW(5);
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    A2_STORE(0); A2_STORE(1); A2_STORE(2); A2_STORE(3); A2_STORE(4); A2_STORE(5);
}

/* The left half of the 6 x 16 tile (6 x 8), for B slivers with at most 8
 * live columns (a narrow N, e.g. a Conv2D with 8 filters): half the FMAs of
 * the full kernel. It reads the same packed slivers (b advances 16 per k)
 * and does the same FMAs in the same k order for those columns, so they get
 * the same bits as from the full kernel. */
#define A2H_STORE(i)                                                         \
    do {                                                                     \
        float *ci = c + (i) * ldc;                                           \
        if (mode == 0)                                                       \
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, c##i##0));                \
        else if (mode == 1)                                                  \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, c##i##0, _mm256_loadu_ps(ci))); \
        else                                                                 \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, c##i##0,                \
                             _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));       \
    } while (0)

#define A2H_ROW(i)                                       \
    do {                                                 \
        __m256 ai = _mm256_broadcast_ss(a + (i));        \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);      \
    } while (0)

__attribute__((target("avx2,fma")))
static void kern_avx2_half(int64_t kc, const float *restrict a,
                           const float *restrict b, float *restrict c, int64_t ldc,
                           float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps();
    int mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b);
        A2H_ROW(0); A2H_ROW(1); A2H_ROW(2); A2H_ROW(3); A2H_ROW(4); A2H_ROW(5);
        a += 6;
        b += 16;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    A2H_STORE(0); A2H_STORE(1); A2H_STORE(2); A2H_STORE(3); A2H_STORE(4); A2H_STORE(5);
}

/* -------------------------------------------------------------- avx512 */

#define A5_ROW(i)                                        \
    do {                                                 \
        __m512 ai = _mm512_set1_ps(a[i]);                \
        c##i##_0 = _mm512_fmadd_ps(ai, b0, c##i##_0);    \
        c##i##_1 = _mm512_fmadd_ps(ai, b1, c##i##_1);    \
    } while (0)

#define A5_STORE(i)                                                          \
    do {                                                                     \
        float *ci = c + (i) * ldc;                                           \
        if (mode == 0) {                                                     \
            _mm512_storeu_ps(ci, _mm512_mul_ps(va, c##i##_0));               \
            _mm512_storeu_ps(ci + 16, _mm512_mul_ps(va, c##i##_1));          \
        } else if (mode == 1) {                                              \
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, c##i##_0, _mm512_loadu_ps(ci))); \
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, c##i##_1, _mm512_loadu_ps(ci + 16))); \
        } else {                                                             \
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, c##i##_0,               \
                             _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));       \
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, c##i##_1,          \
                             _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16))));  \
        }                                                                    \
    } while (0)

#define A5_DECL(i) __m512 c##i##_0 = _mm512_setzero_ps(), c##i##_1 = _mm512_setzero_ps()

/* 12 x 32 tile: 24 zmm accumulators + 2 B vectors + 1 broadcast = 27 of 32. */
__attribute__((target("avx512f")))
static void kern_avx512(int64_t kc, const float *restrict a,
                        const float *restrict b, float *restrict c, int64_t ldc,
                        float alpha, float beta)
{
    A5_DECL(0); A5_DECL(1); A5_DECL(2); A5_DECL(3); A5_DECL(4); A5_DECL(5);
    A5_DECL(6); A5_DECL(7); A5_DECL(8); A5_DECL(9); A5_DECL(10); A5_DECL(11);
    int mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    for (int i = 0; i < 12; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        A5_ROW(0); A5_ROW(1); A5_ROW(2); A5_ROW(3); A5_ROW(4); A5_ROW(5);
        A5_ROW(6); A5_ROW(7); A5_ROW(8); A5_ROW(9); A5_ROW(10); A5_ROW(11);
        a += 12;
        b += 32;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    A5_STORE(0); A5_STORE(1); A5_STORE(2); A5_STORE(3); A5_STORE(4); A5_STORE(5);
    A5_STORE(6); A5_STORE(7); A5_STORE(8); A5_STORE(9); A5_STORE(10); A5_STORE(11);
}

#define KERN_AVX2 kern_avx2
#define KERN_AVX2_HALF kern_avx2_half
#define KERN_AVX512 kern_avx512
#define PACK_AVX2 pack_t_avx2
#else
#define KERN_AVX2 NULL
#define KERN_AVX2_HALF NULL
#define KERN_AVX512 NULL
#define PACK_AVX2 pack_t_generic
#endif /* x86-64 */

/* Block sizes (floats). kc: the B sliver (kc x nr, 24 KiB for avx2) stays in
 * L1 while the A block (mc x kc) streams from L2; the B panel (kc x nc) lives
 * in L3. The avx2 sizes were tuned on AMD Zen 3 (32 KiB L1d, 512 KiB L2) over
 * pyreg's conv and dense shapes; the avx512 ones are set by the same rules for
 * a 32 KiB L1d and 1 MiB L2 (untuned: no AVX-512 machine was available). */
const pr_gemm_kernel pr_gemm_kernels[PR_ISA_COUNT] = {
    {"generic", G_MR, G_NR, 128, 256, 2048, kern_generic, NULL, pack_t_generic},
    {"avx2", 6, 16, 144, 384, 2048, KERN_AVX2, KERN_AVX2_HALF, PACK_AVX2},
    /* AVX-512 CPUs all have AVX2: the 8 x 8 transposing pack serves them.
     * No half kernel: it could not be run on the development machine. */
    {"avx512", 12, 32, 288, 192, 2048, KERN_AVX512, NULL, PACK_AVX2},
};
