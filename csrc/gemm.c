/* gemm.c: the runtime settings (threads, ISA path) and pr_sgemm, the one
 * high-performance SGEMM of pyreg.
 *
 * Algorithm (BLIS-style), C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta*C:
 *
 *   for jc over N in blocks of nc                      (B panel -> L3)
 *     for pc over K in blocks of kc, in order          (the only reduction)
 *       pack op(B)[pc:pc+kc, jc:jc+nc] into NR-wide slivers (kc x NR each)
 *       for ic over M in blocks of mc                  (A block -> L2)
 *         pack op(A)[ic:ic+mc, pc:pc+kc] into MR-tall slivers (kc x MR each)
 *         for jr over NR slivers, for ir over MR slivers:
 *           micro-kernel: C tile (MR x NR) = alpha*sum_k a*b + beta' * C tile
 *           (beta' = beta for the first pc block, 1 afterwards)
 *
 * The packing routines absorb trans_a / trans_b, so every transpose combination
 * runs the same kernel. Edges are zero-padded in the packed slivers; partial
 * C tiles go through a scratch tile.
 *
 * Threads (OpenMP): only output tiles are shared out, either the ic blocks
 * ("ic mode") or, when M has too few blocks, the jr slivers ("jr mode"). Each
 * thread packs what it needs into its own buffers (in ic mode every thread
 * packs the whole B panel, in jr mode every thread packs each A block; the
 * duplicate packing is small next to the compute), so threads never wait for
 * each other. kc depends only on K and the kernel, and each C element is
 * always accumulated by the same kernel in the same k order (mc, nc only group
 * whole tiles), so results are bitwise identical for any thread count.
 * Memory: per thread, one mc x kc A block and at most one kc x nc B panel. */
#include "pyreg.h"
#include "gemm_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- runtime */

static atomic_int g_threads = 0; /* 0: omp_get_max_threads() */
static atomic_int g_isa = -1;    /* -1: not chosen yet */

void pr_set_num_threads(int n) { atomic_store(&g_threads, n > 0 ? n : 0); }

int pr_get_num_threads(void)
{
#ifdef _OPENMP
    int n = atomic_load(&g_threads);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

static int isa_id(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < PR_ISA_COUNT; i++)
        if (strcmp(name, pr_gemm_kernels[i].name) == 0) return i;
    return -1;
}

static int isa_ok(int id)
{
    if (id == PR_ISA_GENERIC) return 1;
#ifdef PR_GEMM_X86
    __builtin_cpu_init();
    if (id == PR_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (id == PR_ISA_AVX512) /* its packing uses the AVX2 routine */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2");
#endif
    return 0;
}

/* The ISA in force: at first use the best supported one, or PYREG_ISA if it
 * names a supported path (an unknown or unsupported value is ignored). */
static int current_isa(void)
{
    int v = atomic_load(&g_isa);
    if (v >= 0) return v;
    int best = PR_ISA_GENERIC;
    for (int i = PR_ISA_COUNT - 1; i > 0; i--)
        if (isa_ok(i)) { best = i; break; }
    int env = isa_id(getenv("PYREG_ISA"));
    if (env >= 0 && isa_ok(env)) best = env;
    int expected = -1;
    atomic_compare_exchange_strong(&g_isa, &expected, best);
    return atomic_load(&g_isa);
}

int pr_set_isa(const char *name)
{
    int id = isa_id(name);
    if (id < 0 || !isa_ok(id)) return PR_EINVAL;
    atomic_store(&g_isa, id);
    return PR_OK;
}

const char *pr_get_isa(void) { return pr_gemm_kernels[current_isa()].name; }

int pr_isa_supported(const char *name)
{
    int id = isa_id(name);
    return id >= 0 && isa_ok(id);
}

/* ---------------------------------------------------------------- packing */

typedef struct {
    const pr_gemm_kernel *kd;
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    int64_t mc, kc, nc;  /* block sizes (kc thread-independent, see below) */
    int nt;              /* planned parts of the work (threads) */
    int ic_mode;         /* parts own ic blocks (else: own jr slivers) */
    float *abuf, *bbuf;  /* per thread: asz and bsz floats */
    int64_t asz, bsz;
} gemm_job;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Full slivers [s0, s1) of a non-transposing pack (see pack_copy), the sliver
 * width w a compile-time constant in each caller so the copies are inlined:
 * row by row, each row's w-float pieces go to consecutive slivers. */
static inline __attribute__((always_inline)) void
pack_copy_full(float *restrict dst, const float *restrict src, int64_t ld,
               int64_t kc, const int w, int64_t s0, int64_t s1)
{
    const int64_t sstride = w * kc;
    for (int64_t k = 0; k < kc; k++) {
        const float *r = src + k * ld + s0 * w;
        float *d = dst + k * w;
        for (int64_t s = s0; s < s1; s++, r += w, d += sstride)
            memcpy(d, r, (size_t)w * sizeof(float));
    }
}

/* Non-transposing pack of slivers [s0, s1) of a kc x n panel whose element
 * (k, c) is src[k*ld + c]: sliver s holds columns s*w .. s*w+w-1, zero past
 * column n, as dst[(s-s0)*w*kc + k*w + c - s*w]. Reads src row by row. */
static void pack_copy(float *dst, const float *src, int64_t ld, int64_t n,
                      int64_t kc, int w, int64_t s0, int64_t s1)
{
    int64_t full = min64(s1, n / w); /* slivers without a column past n */
    if (full > s0) {
        switch (w) {
        case 4: pack_copy_full(dst, src, ld, kc, 4, s0, full); break;
        case 6: pack_copy_full(dst, src, ld, kc, 6, s0, full); break;
        case 8: pack_copy_full(dst, src, ld, kc, 8, s0, full); break;
        case 12: pack_copy_full(dst, src, ld, kc, 12, s0, full); break;
        case 16: pack_copy_full(dst, src, ld, kc, 16, s0, full); break;
        case 32: pack_copy_full(dst, src, ld, kc, 32, s0, full); break;
        default: pack_copy_full(dst, src, ld, kc, w, s0, full);
        }
    }
    for (int64_t s = full > s0 ? full : s0; s < s1; s++) { /* partial sliver */
        int64_t cnt = n - s * w;
        for (int64_t k = 0; k < kc; k++) {
            float *d = dst + ((s - s0) * kc + k) * w;
            memcpy(d, src + k * ld + s * w, (size_t)cnt * sizeof(float));
            memset(d + cnt, 0, (size_t)(w - cnt) * sizeof(float));
        }
    }
}

/* The A block op(A)[ic:ic+m, pc:pc+kc] into ablk: sliver s (rows ic+s*mr ..)
 * at ablk + s*mr*kc, element (i, k) at [k*mr + i]. */
static void pack_a(const gemm_job *g, float *ablk, int64_t ic, int64_t m,
                   int64_t pc, int64_t kc)
{
    const int mr = g->kd->mr;
    if (g->ta) { /* A is (K, M): rows of A run along M */
        pack_copy(ablk, g->A + pc * g->lda + ic, g->lda, m, kc, mr, 0, cdiv(m, mr));
        return;
    }
    for (int64_t s = 0; s * mr < m; s++) /* A is (M, K): transpose MR rows */
        g->kd->pack_t(ablk + s * mr * kc, g->A + (ic + s * mr) * g->lda + pc,
                      g->lda, min64(m - s * mr, mr), kc, mr);
}

/* Slivers [s0, s1) of the B panel op(B)[pc:pc+kc, jc:jc+n] into bb: sliver s
 * (columns jc+s*nr ..) at bb + (s-s0)*nr*kc, element (k, j) at [k*nr + j]. */
static void pack_b(const gemm_job *g, float *bb, int64_t jc, int64_t n,
                   int64_t pc, int64_t kc, int64_t s0, int64_t s1)
{
    const int nr = g->kd->nr;
    if (!g->tb) { /* B is (K, N) */
        pack_copy(bb, g->B + pc * g->ldb + jc, g->ldb, n, kc, nr, s0, s1);
        return;
    }
    for (int64_t s = s0; s < s1; s++) /* B is (N, K): transpose NR rows */
        g->kd->pack_t(bb + (s - s0) * nr * kc, g->B + (jc + s * nr) * g->ldb + pc,
                      g->ldb, min64(n - s * nr, nr), kc, nr);
}

/* ----------------------------------------------------------------- driver */

/* Split `total` into equal blocks of at most `maxb`, rounded up to `mult`. */
static int64_t balanced(int64_t total, int64_t maxb, int64_t mult)
{
    int64_t nb = cdiv(total, maxb);
    return min64(cdiv(cdiv(total, nb), mult) * mult, maxb);
}

/* C tile (m x n at c) from one packed A sliver and one packed B sliver. */
static void tile(const gemm_job *g, int64_t kc, const float *a, const float *b,
                 float *c, int64_t m, int64_t n, float beta)
{
    const pr_gemm_kernel *kd = g->kd;
    if (m == kd->mr && n == kd->nr) {
        kd->kernel(kc, a, b, c, g->ldc, g->alpha, beta);
        return;
    }
    _Alignas(64) float t[PR_MAX_MR * PR_MAX_NR];
    kd->kernel(kc, a, b, t, kd->nr, 1.0f, 0.0f);
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * g->ldc;
        const float *ti = t + i * kd->nr;
        if (beta == 0.0f)
            for (int64_t j = 0; j < n; j++) ci[j] = g->alpha * ti[j];
        else
            for (int64_t j = 0; j < n; j++) ci[j] = g->alpha * ti[j] + beta * ci[j];
    }
}

/* Packed A block (rows ic.., m rows) x packed B slivers [js0, js1) (at bb) of
 * the panel at column jc: jr outer (the B sliver stays in L1), ir inner. */
static void macro(const gemm_job *g, const float *ablk, int64_t ic, int64_t m,
                  const float *bb, int64_t jc, int64_t js0, int64_t js1,
                  int64_t kc, float beta)
{
    const int mr = g->kd->mr, nr = g->kd->nr;
    for (int64_t js = js0; js < js1; js++) {
        int64_t j = jc + js * nr, n = min64(g->N - j, nr);
        const float *b = bb + (js - js0) * nr * kc;
        for (int64_t is = 0; is * mr < m; is++) {
            int64_t i = ic + is * mr;
            tile(g, kc, ablk + is * mr * kc, b, g->C + i * g->ldc + j,
                 min64(m - is * mr, mr), n, beta);
        }
    }
}

/* Contiguous share [lo, hi) of n items for part v of nt. */
static void share(int64_t n, int v, int nt, int64_t *lo, int64_t *hi)
{
    *lo = n * v / nt;
    *hi = n * (v + 1) / nt;
}

/* Part v of the work, with private buffers: in ic mode its share of the ic
 * blocks against the whole B panel, else its share of the B slivers against
 * every A block. Parts share no buffer, so they need no synchronisation. */
static void gemm_part(const gemm_job *g, int v, float *abuf, float *bbuf)
{
    const int nr = g->kd->nr;
    const int64_t n_ic = cdiv(g->M, g->mc);
    int64_t i0 = 0, i1 = n_ic;
    if (g->ic_mode) share(n_ic, v, g->nt, &i0, &i1);
    for (int64_t jc = 0; jc < g->N; jc += g->nc) {
        int64_t nc = min64(g->N - jc, g->nc), nsl = cdiv(nc, nr), b0 = 0, b1 = nsl;
        if (!g->ic_mode) share(nsl, v, g->nt, &b0, &b1);
        if (i0 >= i1 || b0 >= b1) continue;
        for (int64_t pc = 0; pc < g->K; pc += g->kc) {
            int64_t kc = min64(g->K - pc, g->kc);
            float beta = pc == 0 ? g->beta : 1.0f; /* earlier k blocks are in C */
            pack_b(g, bbuf, jc, nc, pc, kc, b0, b1);
            for (int64_t ib = i0; ib < i1; ib++) {
                int64_t ic = ib * g->mc, m = min64(g->M - ic, g->mc);
                pack_a(g, abuf, ic, m, pc, kc);
                macro(g, abuf, ic, m, bbuf, jc, b0, b1, kc, beta);
            }
        }
    }
}

/* Run by each thread of the team: the parts tid, tid + team size, ... (all
 * of them if the team is smaller than planned). */
static void gemm_thread(const gemm_job *g)
{
    int tid = 0, nth = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    nth = omp_get_num_threads();
#endif
    for (int v = tid; v < g->nt; v += nth)
        gemm_part(g, v, g->abuf + tid * g->asz, g->bbuf + tid * g->bsz);
}

/* C = beta * C (beta == 0: C set to 0 without being read). */
static void scale_c(float *C, int64_t ldc, int64_t M, int64_t N, float beta)
{
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < M; i++) {
        float *ci = C + i * ldc;
        if (beta == 0.0f) memset(ci, 0, (size_t)N * sizeof(float));
        else for (int64_t j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* 1 if the last element of a rows x cols matrix with row stride ld is
 * addressable as an int64 offset (rows, cols >= 1). */
static int extent_ok(int64_t rows, int64_t cols, int64_t ld)
{
    int64_t off;
    return !__builtin_mul_overflow(rows - 1, ld, &off) &&
           !__builtin_add_overflow(off, cols, &off) &&
           (uint64_t)off <= SIZE_MAX / sizeof(float);
}

static void *alloc64(int64_t nfloats)
{
    size_t bytes = ((size_t)nfloats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

int pr_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M < 0 || N < 0 || K < 0) return PR_EINVAL;
    if (M == 0 || N == 0) return PR_OK;
    if (!C || ldc < N) return PR_EINVAL;
    if (K > 0) {
        if (!A || !B) return PR_EINVAL;
        if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N)) return PR_EINVAL;
        if (!extent_ok(trans_a ? K : M, trans_a ? M : K, lda) ||
            !extent_ok(trans_b ? N : K, trans_b ? K : N, ldb))
            return PR_EOVERFLOW;
    }
    if (!extent_ok(M, N, ldc)) return PR_EOVERFLOW;
    /* As BLAS: alpha == 0 or K == 0 leaves C = beta*C (A, B not read). */
    if (K == 0 || alpha == 0.0f) {
        scale_c(C, ldc, M, N, beta);
        return PR_OK;
    }

    gemm_job g;
    memset(&g, 0, sizeof g);
    g.kd = &pr_gemm_kernels[current_isa()];
    g.ta = trans_a != 0; g.tb = trans_b != 0;
    g.M = M; g.N = N; g.K = K;
    g.alpha = alpha; g.beta = beta;
    g.A = A; g.B = B; g.C = C;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    const int mr = g.kd->mr, nr = g.kd->nr;
    /* kc fixes the k order: it depends on K and the kernel only. mc and nc
     * only group whole MR x NR tiles (mc % mr == 0, nc % nr == 0), so they
     * may follow the thread count without changing any result. */
    g.kc = balanced(K, g.kd->kc, 8);
    g.nc = balanced(N, g.kd->nc, nr);

    /* Threads: the requested count, fewer for small problems. */
    int nt = pr_get_num_threads();
    double work = (double)M * (double)N * (double)K;
    if (work < 128.0 * 128.0 * 128.0) nt = 1; /* ~50 us of work: a team costs more, worse when cores are shared */
    int64_t n_ic = cdiv(M, g.kd->mc), nsl = cdiv(g.nc, nr);
    int64_t units = n_ic > nsl ? n_ic : nsl;
    if (nt > units) nt = (int)units;
    if (nt < 1) nt = 1;
    /* Enough A blocks: give each thread the same number of them. */
    if (n_ic >= nt) n_ic = cdiv(n_ic, nt) * nt;
    g.mc = cdiv(cdiv(M, n_ic), mr) * mr;
    n_ic = cdiv(M, g.mc);
    g.nt = nt;
    g.ic_mode = n_ic >= nt && (n_ic % nt == 0 || n_ic >= 4 * nt);

    /* Private buffers: an A block, and the B panel (ic mode) or this part's
     * share of its slivers. 64-float rounding keeps each 64-byte aligned. */
    g.asz = cdiv(g.mc * g.kc, 64) * 64;
    g.bsz = cdiv(g.kc * nr * (g.ic_mode ? nsl : cdiv(nsl, nt)), 64) * 64;
    g.abuf = alloc64(nt * g.asz);
    g.bbuf = alloc64(nt * g.bsz);
    if (!g.abuf || !g.bbuf) {
        free(g.abuf);
        free(g.bbuf);
        return PR_ENOMEM;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    gemm_thread(&g);
    free(g.abuf);
    free(g.bbuf);
    return PR_OK;
}
