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
 * ("ic mode": statically, or one at a time from a counter when the whole B
 * panel is small, see gemm_dynamic) or, when M has too few blocks, the jr
 * slivers ("jr mode"). Each
 * thread packs what it needs into its own buffers (in ic mode every thread
 * packs the whole B panel, in jr mode every thread packs each A block; the
 * duplicate packing is small next to the compute), so threads never wait for
 * each other. kc depends only on K and the kernel, and each C element is
 * always accumulated by the same kernel in the same k order (mc, nc only group
 * whole tiles), so results are bitwise identical for any thread count.
 * Memory: per thread, one mc x kc A block and at most one kc x nc B panel
 * (in dynamic ic mode: a whole K x nc panel, at most 2 MiB). */
#include "internal.h"
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
    int dyn;             /* ic mode with dynamic blocks (see gemm_dynamic) */
    atomic_llong *next;  /* dyn: next ic block, one counter per jc panel */
    int64_t grain;       /* dyn: consecutive ic blocks taken at a time */
    const pr_patches *pa; /* op(A) is a convolution's patch matrix (or NULL) */
    const float *bias;   /* epilogue (pr_sgemm_ext): N floats, or NULL */
    int relu;
} gemm_job;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#define PR_PACK_AHEAD 4 /* rows prefetched ahead by pack_copy_full */

/* Full slivers [s0, s1) of a non-transposing pack (see pack_copy), the sliver
 * width w a compile-time constant in each caller so the copies are inlined:
 * row by row, each row's w-float pieces go to consecutive slivers. */
static inline __attribute__((always_inline)) void
pack_copy_full(float *restrict dst, const float *restrict src, int64_t ld,
               int64_t kc, const int w, int64_t s0, int64_t s1, int prefetch)
{
    const int64_t sstride = w * kc, bytes = (s1 - s0) * w * (int64_t)sizeof(float);
    for (int64_t k = 0; k < kc; k++) {
        const float *r = src + k * ld + s0 * w;
        float *d = dst + k * w;
        /* rows PR_PACK_AHEAD further on: each row is a new page, where the
         * hardware prefetcher starts over (+1-7% on Dense(86528 -> 1024)) */
        if (prefetch && k + PR_PACK_AHEAD < kc)
            for (int64_t off = 0; off < bytes; off += 64)
                __builtin_prefetch((const char *)(r + PR_PACK_AHEAD * ld) + off, 0, 3);
        for (int64_t s = s0; s < s1; s++, r += w, d += sstride)
            memcpy(d, r, (size_t)w * sizeof(float));
    }
}

/* Non-transposing pack of slivers [s0, s1) of a kc x n panel whose element
 * (k, c) is src[k*ld + c]: sliver s holds columns s*w .. s*w+w-1, zero past
 * column n, as dst[(s-s0)*w*kc + k*w + c - s*w]. Reads src row by row,
 * prefetching rows ahead if asked (B panels, streamed from memory). */
static void pack_copy(float *dst, const float *src, int64_t ld, int64_t n,
                      int64_t kc, int w, int64_t s0, int64_t s1, int pf)
{
    int64_t full = min64(s1, n / w); /* slivers without a column past n */
    if (full > s0) {
        switch (w) {
        case 4: pack_copy_full(dst, src, ld, kc, 4, s0, full, pf); break;
        case 6: pack_copy_full(dst, src, ld, kc, 6, s0, full, pf); break;
        case 8: pack_copy_full(dst, src, ld, kc, 8, s0, full, pf); break;
        case 12: pack_copy_full(dst, src, ld, kc, 12, s0, full, pf); break;
        case 16: pack_copy_full(dst, src, ld, kc, 16, s0, full, pf); break;
        case 32: pack_copy_full(dst, src, ld, kc, 32, s0, full, pf); break;
        default: pack_copy_full(dst, src, ld, kc, w, s0, full, pf);
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

/* Transposing pack of n <= w rows of a matrix with row stride ld (rows n..w-1
 * zero), through the kernel's row-pointer pack. */
static void pack_t_strided(const pr_gemm_kernel *kd, float *dst, const float *src,
                           int64_t ld, int64_t n, int64_t kc, int w)
{
    const float *rows[PR_MAX_NR];
    for (int r = 0; r < w; r++) rows[r] = r < n ? src + r * ld : NULL;
    kd->pack_t(dst, rows, kc, w);
}

/* ------------------------------------------- implicit convolution patches */

/* Output pixel q (row of the patch matrix) as image n, row i, column j. */
typedef struct { int64_t n, i, j; } pixel;

static pixel pixel_of(const pr_conv2d_shape *s, int64_t q)
{
    pixel p;
    int64_t pix = s->OH * s->OW;
    p.n = q / pix;
    q -= p.n * pix;
    p.i = q / s->OW;
    p.j = q - p.i * s->OW;
    return p;
}

/* The C channels that pixel p reads through kernel tap t = di*KW + dj, or
 * NULL where the tap falls in the zero padding. */
static const float *tap_run(const pr_patches *pt, pixel p, int64_t t)
{
    const pr_conv2d_shape *s = pt->s;
    int64_t di = t / s->KW, dj = t - di * s->KW;
    int64_t h = p.i * s->SH + di - s->pad_top, w = p.j * s->SW + dj - s->pad_left;
    if (h < 0 || h >= s->H || w < 0 || w >= s->W) return NULL;
    return pt->inp + ((p.n * s->H + h) * s->W + w) * s->C;
}

/* A block of the patch matrix P itself (op(A) = P, M = pixels, K = KH*KW*C):
 * each MR-row sliver is packed tap by tap, every piece a transposing pack of
 * channel runs read straight from the input. The packed block is the one
 * pack_t would make from an im2col buffer, so the results are the same bits. */
static void pack_a_patches(const gemm_job *g, float *ablk, int64_t ic, int64_t m,
                           int64_t pc, int64_t kc)
{
    const pr_conv2d_shape *s = g->pa->s;
    const int mr = g->kd->mr;
    const int64_t C = s->C;
    for (int64_t sl = 0; sl * mr < m; sl++) {
        int64_t nrow = min64(m - sl * mr, mr);
        pixel px[PR_MAX_NR];
        for (int64_t r = 0; r < nrow; r++) px[r] = pixel_of(s, ic + sl * mr + r);
        for (int64_t k = pc; k < pc + kc;) {
            int64_t t = k / C, c0 = k - t * C, len = min64(C - c0, pc + kc - k);
            const float *rows[PR_MAX_NR];
            for (int r = 0; r < mr; r++) {
                const float *run = r < nrow ? tap_run(g->pa, px[r], t) : NULL;
                rows[r] = run ? run + c0 : NULL;
            }
            g->kd->pack_t(ablk + sl * mr * kc + (k - pc) * mr, rows, len, mr);
            k += len;
        }
    }
}

/* A block of P's transpose (op(A) = P^T, M = KH*KW*C, K = pixels), as
 * pack_copy would make it from an im2col buffer: for each pixel (k), the
 * columns ic..ic+m-1 of its patch row are scattered into the MR-wide slivers,
 * one channel run (one kernel tap) after another. Taps, and the position in
 * the slivers, are stepped incrementally (no division per run): with few
 * channels (the first layer's 3) the runs are short and many. */
static void pack_a_patches_t(const gemm_job *g, float *ablk, int64_t ic, int64_t m,
                             int64_t pc, int64_t kc)
{
    const pr_conv2d_shape *s = g->pa->s;
    const int mr = g->kd->mr;
    const int64_t C = s->C, sstride = mr * kc;
    const int64_t t0 = ic / s->C, di0 = t0 / s->KW, dj0 = t0 - di0 * s->KW;
    for (int64_t k = 0; k < kc; k++) {
        pixel p = pixel_of(s, pc + k);
        const float *img = g->pa->inp + p.n * s->H * s->W * C;
        const int64_t h0 = p.i * s->SH - s->pad_top, w0 = p.j * s->SW - s->pad_left;
        int64_t di = di0, dj = dj0, c0 = ic - t0 * C, left = m;
        float *d = ablk + k * mr;
        int64_t lane = 0;
        while (left > 0) {
            int64_t len = min64(C - c0, left), h = h0 + di, w = w0 + dj;
            const float *src = h >= 0 && h < s->H && w >= 0 && w < s->W
                                   ? img + (h * s->W + w) * C + c0 : NULL;
            left -= len;
            while (len > 0) {
                int64_t cnt = min64(mr - lane, len);
                float *dl = d + lane;
                if (src && cnt == 6) { /* avx2's whole sliver */
                    memcpy(dl, src, 6 * sizeof(float));
                } else if (src) {
                    for (int64_t u = 0; u < cnt; u++) dl[u] = src[u];
                } else {
                    for (int64_t u = 0; u < cnt; u++) dl[u] = 0.0f;
                }
                if (src) src += cnt;
                len -= cnt;
                lane += cnt;
                if (lane == mr) { lane = 0; d += sstride; }
            }
            c0 = 0;
            if (++dj == s->KW) { dj = 0; di++; }
        }
        for (; lane > 0 && lane < mr; lane++) d[lane] = 0.0f; /* rows past m */
    }
}

/* The A block op(A)[ic:ic+m, pc:pc+kc] into ablk: sliver s (rows ic+s*mr ..)
 * at ablk + s*mr*kc, element (i, k) at [k*mr + i]. */
static void pack_a(const gemm_job *g, float *ablk, int64_t ic, int64_t m,
                   int64_t pc, int64_t kc)
{
    const int mr = g->kd->mr;
    if (g->pa) {
        if (g->ta) pack_a_patches_t(g, ablk, ic, m, pc, kc);
        else pack_a_patches(g, ablk, ic, m, pc, kc);
        return;
    }
    if (g->ta) { /* A is (K, M): rows of A run along M */
        pack_copy(ablk, g->A + pc * g->lda + ic, g->lda, m, kc, mr, 0, cdiv(m, mr), 0);
        return;
    }
    for (int64_t s = 0; s * mr < m; s++) /* A is (M, K): transpose MR rows */
        pack_t_strided(g->kd, ablk + s * mr * kc, g->A + (ic + s * mr) * g->lda + pc,
                       g->lda, min64(m - s * mr, mr), kc, mr);
}

/* Slivers [s0, s1) of the B panel op(B)[pc:pc+kc, jc:jc+n] into bb: sliver s
 * (columns jc+s*nr ..) at bb + (s-s0)*nr*kc, element (k, j) at [k*nr + j]. */
static void pack_b(const gemm_job *g, float *bb, int64_t jc, int64_t n,
                   int64_t pc, int64_t kc, int64_t s0, int64_t s1)
{
    const int nr = g->kd->nr;
    if (!g->tb) { /* B is (K, N) */
        pack_copy(bb, g->B + pc * g->ldb + jc, g->ldb, n, kc, nr, s0, s1, 1);
        return;
    }
    for (int64_t s = s0; s < s1; s++) /* B is (N, K): transpose NR rows */
        pack_t_strided(g->kd, bb + (s - s0) * nr * kc, g->B + (jc + s * nr) * g->ldb + pc,
                       g->ldb, min64(n - s * nr, nr), kc, nr);
}

/* ----------------------------------------------------------------- driver */

/* Split `total` into equal blocks of at most `maxb`, rounded up to `mult`. */
static int64_t balanced(int64_t total, int64_t maxb, int64_t mult)
{
    int64_t nb = cdiv(total, maxb);
    return min64(cdiv(cdiv(total, nb), mult) * mult, maxb);
}

/* The epilogue of pr_sgemm_ext on an m x n tile of C at column j, while it
 * is in L1: bias after the first k block, ReLU after the last (as
 * TensorFlow's relu: max(x, 0), NaN kept). */
static void epilogue(const gemm_job *g, float *c, int64_t j, int64_t m, int64_t n,
                     int first, int last)
{
    if (first && g->bias) {
        const float *bj = g->bias + j;
        for (int64_t i = 0; i < m; i++) {
            float *ci = c + i * g->ldc;
            for (int64_t x = 0; x < n; x++) ci[x] += bj[x];
        }
    }
    if (last && g->relu)
        for (int64_t i = 0; i < m; i++) {
            float *ci = c + i * g->ldc;
            for (int64_t x = 0; x < n; x++) ci[x] = ci[x] < 0.0f ? 0.0f : ci[x];
        }
}

/* C tile (m x n at c, column j) from one packed A sliver and one packed B
 * sliver; first/last: this is the first/last k block (for the epilogue). */
static void tile(const gemm_job *g, int64_t kc, const float *a, const float *b,
                 float *c, int64_t j, int64_t m, int64_t n, float beta, int first,
                 int last)
{
    const pr_gemm_kernel *kd = g->kd;
    const int half = kd->kernel_half && 2 * n <= kd->nr; /* narrow sliver */
    if (m == kd->mr && (n == kd->nr || (half && 2 * n == kd->nr))) {
        (half ? kd->kernel_half : kd->kernel)(kc, a, b, c, g->ldc, g->alpha, beta);
        if ((first && g->bias) || (last && g->relu)) epilogue(g, c, j, m, n, first, last);
        return;
    }
    _Alignas(64) float t[PR_MAX_MR * PR_MAX_NR];
    (half ? kd->kernel_half : kd->kernel)(kc, a, b, t, kd->nr, 1.0f, 0.0f);
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * g->ldc;
        const float *ti = t + i * kd->nr;
        if (beta == 0.0f)
            for (int64_t x = 0; x < n; x++) ci[x] = g->alpha * ti[x];
        else
            for (int64_t x = 0; x < n; x++) ci[x] = g->alpha * ti[x] + beta * ci[x];
    }
    if ((first && g->bias) || (last && g->relu)) epilogue(g, c, j, m, n, first, last);
}

/* Packed A block (rows ic.., m rows) x packed B slivers [js0, js1) (at bb) of
 * the panel at column jc: jr outer (the B sliver stays in L1), ir inner. */
static void macro(const gemm_job *g, const float *ablk, int64_t ic, int64_t m,
                  const float *bb, int64_t jc, int64_t js0, int64_t js1,
                  int64_t pc, int64_t kc, float beta)
{
    const int first = pc == 0, last = pc + kc == g->K;
    const int mr = g->kd->mr, nr = g->kd->nr;
    for (int64_t js = js0; js < js1; js++) {
        int64_t j = jc + js * nr, n = min64(g->N - j, nr);
        const float *b = bb + (js - js0) * nr * kc;
        for (int64_t is = 0; is * mr < m; is++) {
            int64_t i = ic + is * mr;
            tile(g, kc, ablk + is * mr * kc, b, g->C + i * g->ldc + j, j,
                 min64(m - is * mr, mr), n, beta, first, last);
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
                macro(g, abuf, ic, m, bbuf, jc, b0, b1, pc, kc, beta);
            }
        }
    }
}

/* Dynamic ic mode, when a thread's copy of the whole B panel (every k block)
 * is small: each thread packs it once, then the threads take runs of `grain`
 * consecutive ic blocks from a shared counter, each block with all its k
 * blocks in order. A block is computed by one thread exactly as in the static split
 * (same packing, kernel and k order), so the bits are the same; but a thread
 * slowed by another process on its core takes fewer blocks instead of
 * holding the others up at the end. */
static void gemm_dynamic(const gemm_job *g, float *abuf, float *bbuf)
{
    const int nr = g->kd->nr;
    const int64_t n_ic = cdiv(g->M, g->mc);
    for (int64_t jc = 0, jb = 0; jc < g->N; jc += g->nc, jb++) {
        int64_t nc = min64(g->N - jc, g->nc), nsl = cdiv(nc, nr);
        /* k block pc at bbuf + pc*nsl*nr (kc is a multiple of 8: aligned) */
        for (int64_t pc = 0; pc < g->K; pc += g->kc)
            pack_b(g, bbuf + pc * nsl * nr, jc, nc, pc, min64(g->K - pc, g->kc), 0, nsl);
        for (;;) {
            int64_t i0 = atomic_fetch_add(&g->next[jb], g->grain);
            if (i0 >= n_ic) break;
            for (int64_t ib = i0; ib < min64(i0 + g->grain, n_ic); ib++) {
                int64_t ic = ib * g->mc, m = min64(g->M - ic, g->mc);
                for (int64_t pc = 0; pc < g->K; pc += g->kc) {
                    int64_t kc = min64(g->K - pc, g->kc);
                    pack_a(g, abuf, ic, m, pc, kc);
                    macro(g, abuf, ic, m, bbuf + pc * nsl * nr, jc, 0, nsl, pc, kc,
                          pc == 0 ? g->beta : 1.0f);
                }
            }
        }
    }
}

/* Run by each thread of the team: the parts tid, tid + team size, ... (all
 * of them if the team is smaller than planned); in dynamic mode, blocks
 * until none is left. */
static void gemm_thread(const gemm_job *g)
{
    int tid = 0, nth = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    nth = omp_get_num_threads();
#endif
    if (g->dyn) {
        gemm_dynamic(g, g->abuf + tid * g->asz, g->bbuf + tid * g->bsz);
        return;
    }
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

/* 1 if the patch matrix pt can be op(A) of an (M, K) product. */
static int patches_ok(const pr_patches *pt, int trans_a, int64_t M, int64_t K)
{
    const pr_conv2d_shape *s = pt->s;
    if (!pt->inp || !s || s->C < 1 || s->KH < 1 || s->KW < 1 || s->OH < 1 || s->OW < 1)
        return 0;
    int64_t kdim = s->KH * s->KW * s->C, rows = s->N * s->OH * s->OW;
    return trans_a ? M == kdim && K <= rows : K == kdim && M <= rows;
}

int pr_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc)
{
    return pr_sgemm_ext(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
                        C, ldc, NULL);
}

int pr_sgemm_ext(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc,
                 const pr_gemm_ext *ext)
{
    const pr_patches *pa = ext ? ext->a : NULL;
    if (M < 0 || N < 0 || K < 0) return PR_EINVAL;
    if (M == 0 || N == 0) return PR_OK;
    if (!C || ldc < N || (ext && ext->bias && beta != 0.0f)) return PR_EINVAL;
    if (K > 0) {
        if (pa ? !patches_ok(pa, trans_a, M, K) : !A) return PR_EINVAL;
        if (!B) return PR_EINVAL;
        if ((!pa && lda < (trans_a ? M : K)) || ldb < (trans_b ? K : N)) return PR_EINVAL;
        if ((!pa && !extent_ok(trans_a ? K : M, trans_a ? M : K, lda)) ||
            !extent_ok(trans_b ? N : K, trans_b ? K : N, ldb))
            return PR_EOVERFLOW;
    }
    if (!extent_ok(M, N, ldc)) return PR_EOVERFLOW;

    gemm_job g;
    memset(&g, 0, sizeof g);
    g.C = C; g.ldc = ldc; g.N = N; g.K = K;
    g.pa = pa;
    g.bias = ext ? ext->bias : NULL;
    g.relu = ext ? ext->relu : 0;
    /* As BLAS: alpha == 0 or K == 0 leaves C = beta*C (A, B not read). */
    if (K == 0 || alpha == 0.0f) {
        scale_c(C, ldc, M, N, beta);
        if (g.bias || g.relu) epilogue(&g, C, 0, M, N, 1, 1);
        return PR_OK;
    }

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
    /* Dynamic blocks when a whole B panel (all of K) is at most 2 MiB. */
    g.dyn = nt > 1 && g.ic_mode && K * nsl * nr <= ((int64_t)1 << 19);
    if (g.dyn) {
        /* runs of consecutive blocks (memory streams stay sequential), about
         * 8 per thread: fine enough to even out a slowed thread */
        g.grain = cdiv(n_ic, 8 * (int64_t)nt);
        g.bsz = cdiv(K * nsl * nr, 64) * 64;
        g.next = malloc((size_t)cdiv(N, g.nc) * sizeof *g.next);
        for (int64_t i = 0; g.next && i < cdiv(N, g.nc); i++) atomic_init(&g.next[i], 0);
    }
    g.abuf = alloc64(nt * g.asz);
    g.bbuf = alloc64(nt * g.bsz);
    if (!g.abuf || !g.bbuf || (g.dyn && !g.next)) {
        free(g.abuf);
        free(g.bbuf);
        free(g.next);
        return PR_ENOMEM;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    gemm_thread(&g);
    free(g.abuf);
    free(g.bbuf);
    free(g.next);
    return PR_OK;
}
