/* gemm_internal.h: private interface between the GEMM driver (gemm.c) and its
 * register-blocked micro-kernels (gemm_kernels.c). Not part of the public API.
 *
 * A micro-kernel computes one MR x NR tile of C from packed operands:
 *   a: packed sliver of op(A), kc steps of MR floats (a[k*MR + i] = op(A)[i,k]);
 *   b: packed sliver of op(B), kc steps of NR floats (b[k*NR + j] = op(B)[k,j]);
 *   acc[i,j] = sum_{k=0..kc-1} a[k*MR+i] * b[k*NR+j], in increasing k, one fused
 *   multiply-add per step (so the order is fixed, whatever thread runs it);
 *   then c[i*ldc+j] = alpha*acc + beta*c  (beta == 0: c is not read;
 *                                          beta == 1: c += alpha*acc).
 * The full MR x NR tile of c is written: the driver passes a scratch tile for
 * partial edge tiles. Both a and b are 64-byte aligned. */
#ifndef PYREG_GEMM_INTERNAL_H
#define PYREG_GEMM_INTERNAL_H

#include <stdint.h>

/* The SIMD paths exist on x86-64 only; -DPR_GEMM_PORTABLE builds the portable
 * kernel alone (as on other architectures), e.g. to test that build. */
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(PR_GEMM_PORTABLE)
#define PR_GEMM_X86 1
#endif

typedef void (*pr_ukernel_fn)(int64_t kc, const float *a, const float *b,
                              float *c, int64_t ldc, float alpha, float beta);

/* Transposing pack, shared by A (not transposed), B (transposed) and the
 * implicit patch matrix of a convolution: rows[r] (r < w), each kc floats
 * long, go to dst[k*w + r]; a NULL rows[r] gives zeros. */
typedef void (*pr_pack_t_fn)(float *dst, const float *const *rows, int64_t kc,
                             int w);

typedef struct {
    const char *name;  /* "generic", "avx2", "avx512" */
    int mr, nr;        /* register tile */
    int64_t mc, kc, nc; /* maximal cache blocks: mc % mr == 0, nc % nr == 0 */
    pr_ukernel_fn kernel;
    /* Optional: the same contract for the left nr/2 columns only (c is an
     * MR x NR/2 tile; b slivers still NR wide), used when a B sliver has at
     * most nr/2 live columns. Same bits as the full kernel's columns. */
    pr_ukernel_fn kernel_half;
    pr_pack_t_fn pack_t;
} pr_gemm_kernel;

enum { PR_ISA_GENERIC = 0, PR_ISA_AVX2 = 1, PR_ISA_AVX512 = 2, PR_ISA_COUNT = 3 };

/* Descriptor of each path; the avx2/avx512 ones exist only on x86-64 (their
 * kernel pointer is NULL elsewhere). */
extern const pr_gemm_kernel pr_gemm_kernels[PR_ISA_COUNT];

/* Largest register tile over all kernels (sizes the edge scratch tile). */
#define PR_MAX_MR 16
#define PR_MAX_NR 32

#endif /* PYREG_GEMM_INTERNAL_H */
