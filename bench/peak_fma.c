/* peak_fma.c: the machine's reference numbers for bench/bench.py.
 *
 *   peak_fma fma THREADS SECONDS   peak fp32 FMA throughput (GFLOP/s, 1 FMA = 2 flops)
 *   peak_fma mem THREADS MIB       memory bandwidth (GB/s) of two streaming loops
 *
 * Each prints one line of JSON. Built by bench.py with `gcc -O2 -pthread`;
 * the FMA kernel is chosen at run time with __builtin_cpu_supports (AVX-512F,
 * else AVX2+FMA, else a portable loop without FMA), so one binary runs on any
 * x86-64 machine and needs no -march flag.
 *
 * FMA: each thread runs 12 independent accumulator chains (a = a*x + y) in
 * registers: enough to cover FMA latency x FMA ports on current cores (4 x 2),
 * so the loop is bound by FMA issue rate only. With x = 1 - 2^-20, y = 2^-20
 * every accumulator (started at a distinct value near 1, so that the compiler
 * cannot merge the chains) drifts towards 1.0: no overflow, no denormals. The result is
 * the sum over threads of each thread's own rate, best of 3 runs, where a
 * thread's rate is its flops over its own CPU time (CLOCK_THREAD_CPUTIME_ID):
 * the hardware's rate while the thread holds a core, so that other processes
 * competing for the cores do not lower the peak ("gflops_wall" divides by
 * wall time instead and does include that competition).
 *
 * Memory: "triad" a[i] = b[i] + s*c[i] (STREAM's triad, 12 bytes per element,
 * write-allocate traffic not counted, as STREAM) and "rmw4": four arrays read
 * and written in place, p[i] = p[i]*s + q[i] ..., 32 bytes per element: the
 * access pattern of an optimizer update over w, g, m, v. Best of 5 passes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define CHAINS 12
#define CHUNK_ITERS 20000L /* FMA loop iterations between checks of the stop flag */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

/* ------------------------------------------------------------------ FMA */

typedef float (*fma_fn)(long iters, float x, float y); /* returns a checksum */

#ifdef HAVE_X86
__attribute__((target("avx512f"))) static float fma_avx512(long iters, float xs, float ys)
{
    __m512 x = _mm512_set1_ps(xs), y = _mm512_set1_ps(ys);
    /* distinct start values, so that the compiler cannot merge the chains */
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = _mm512_set1_ps(1.001f), a2 = _mm512_set1_ps(1.002f);
    __m512 a3 = _mm512_set1_ps(1.003f), a4 = _mm512_set1_ps(1.004f), a5 = _mm512_set1_ps(1.005f);
    __m512 a6 = _mm512_set1_ps(1.006f), a7 = _mm512_set1_ps(1.007f), a8 = _mm512_set1_ps(1.008f);
    __m512 a9 = _mm512_set1_ps(1.009f), a10 = _mm512_set1_ps(1.010f), a11 = _mm512_set1_ps(1.011f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y);
        a2 = _mm512_fmadd_ps(a2, x, y); a3 = _mm512_fmadd_ps(a3, x, y);
        a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y);
        a8 = _mm512_fmadd_ps(a8, x, y); a9 = _mm512_fmadd_ps(a9, x, y);
        a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters, float xs, float ys)
{
    __m256 x = _mm256_set1_ps(xs), y = _mm256_set1_ps(ys);
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = _mm256_set1_ps(1.001f), a2 = _mm256_set1_ps(1.002f);
    __m256 a3 = _mm256_set1_ps(1.003f), a4 = _mm256_set1_ps(1.004f), a5 = _mm256_set1_ps(1.005f);
    __m256 a6 = _mm256_set1_ps(1.006f), a7 = _mm256_set1_ps(1.007f), a8 = _mm256_set1_ps(1.008f);
    __m256 a9 = _mm256_set1_ps(1.009f), a10 = _mm256_set1_ps(1.010f), a11 = _mm256_set1_ps(1.011f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y);
        a2 = _mm256_fmadd_ps(a2, x, y); a3 = _mm256_fmadd_ps(a3, x, y);
        a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y);
        a8 = _mm256_fmadd_ps(a8, x, y); a9 = _mm256_fmadd_ps(a9, x, y);
        a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

/* Portable fallback: multiply + add on 4-wide vectors (no FMA assumed). */
typedef float v4f __attribute__((vector_size(16)));
static float fma_generic(long iters, float xs, float ys)
{
    v4f x = {xs, xs, xs, xs}, y = {ys, ys, ys, ys};
    v4f a[CHAINS];
    for (int k = 0; k < CHAINS; k++) {
        float s0 = 1.0f + 0.001f * (float)k;
        a[k] = (v4f){s0, s0, s0, s0};
    }
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < CHAINS; k++) a[k] = a[k] * x + y;
    }
    float s = 0.0f;
    for (int k = 0; k < CHAINS; k++) s += a[k][0] + a[k][1] + a[k][2] + a[k][3];
    return s;
}

static fma_fn pick_fma(const char **isa, int *lanes)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) { *isa = "avx512f"; *lanes = 16; return fma_avx512; }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { *isa = "avx2+fma"; *lanes = 8; return fma_avx2; }
#endif
    *isa = "generic (mul+add, no FMA)";
    *lanes = 4;
    return fma_generic;
}

typedef struct {
    fma_fn fn;
    pthread_barrier_t *barrier;
    volatile int *stop;
    float x, y;
    long iters;   /* out */
    double secs;  /* out: wall time */
    double cpu;   /* out: this thread's CPU time */
    float check;  /* out */
} fma_task;

static void *fma_thread(void *arg)
{
    fma_task *t = (fma_task *)arg;
    float check = 0.0f;
    long iters = 0;
    t->fn(CHUNK_ITERS, t->x, t->y); /* warm up: wakes the core, fills caches */
    pthread_barrier_wait(t->barrier);
    double t0 = now(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    while (!*t->stop) {
        check += t->fn(CHUNK_ITERS, t->x, t->y);
        iters += CHUNK_ITERS;
    }
    t->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->secs = now() - t0;
    t->iters = iters;
    t->check = check;
    return NULL;
}

static int run_fma(int threads, double seconds)
{
    const char *isa;
    int lanes;
    fma_fn fn = pick_fma(&isa, &lanes);
    volatile float x = 1.0f - 1.0f / 1048576.0f, y = 1.0f / 1048576.0f;
    double best = 0.0, best_wall = 0.0, checksum = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        pthread_t tid[threads];
        fma_task task[threads];
        pthread_barrier_t barrier;
        volatile int stop = 0;
        pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
        for (int i = 0; i < threads; i++) {
            task[i] = (fma_task){fn, &barrier, &stop, x, y, 0, 0.0, 0.0, 0.0f};
            if (pthread_create(&tid[i], NULL, fma_thread, &task[i])) {
                fprintf(stderr, "peak_fma: pthread_create failed\n");
                return 1;
            }
        }
        pthread_barrier_wait(&barrier);
        struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
        nanosleep(&ts, NULL);
        stop = 1;
        double rate = 0.0, rate_wall = 0.0;
        for (int i = 0; i < threads; i++) {
            pthread_join(tid[i], NULL);
            double flops = 2.0 * CHAINS * lanes * (double)task[i].iters;
            if (task[i].cpu > 0) rate += flops / task[i].cpu;
            if (task[i].secs > 0) rate_wall += flops / task[i].secs;
            checksum += task[i].check;
        }
        pthread_barrier_destroy(&barrier);
        if (rate > best) best = rate;
        if (rate_wall > best_wall) best_wall = rate_wall;
    }
    printf("{\"kind\": \"fma\", \"isa\": \"%s\", \"threads\": %d, \"chains\": %d, \"lanes\": %d, "
           "\"gflops\": %.3f, \"gflops_wall\": %.3f, \"checksum\": %.1f}\n",
           isa, threads, CHAINS, lanes, best * 1e-9, best_wall * 1e-9, checksum);
    return 0;
}

/* --------------------------------------------------------------- memory */

typedef float v8f __attribute__((vector_size(32), aligned(32)));

typedef struct {
    v8f *a, *b, *c, *d;
    long n;                 /* vectors in this thread's slice */
    int kind;               /* 0 triad, 1 rmw4 */
    int passes;
    pthread_barrier_t *barrier;
    double t0[8], t1[8];    /* per pass; passes <= 8 */
} mem_task;

static void *mem_thread(void *arg)
{
    mem_task *t = (mem_task *)arg;
    v8f *a = t->a, *b = t->b, *c = t->c, *d = t->d;
    const long n = t->n;
    const v8f s = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const v8f h = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    for (long i = 0; i < n; i++) { /* first touch by the thread that streams it */
        a[i] = h; b[i] = h; c[i] = h;
        if (d) d[i] = h;
    }
    for (int p = 0; p < t->passes; p++) {
        pthread_barrier_wait(t->barrier);
        t->t0[p] = now();
        if (t->kind == 0) {
            for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        } else {
            for (long i = 0; i < n; i++) {
                v8f g = b[i], m = c[i] * s + g, v = d[i] * s + g * g;
                a[i] = a[i] - m * h;
                b[i] = g * s;
                c[i] = m;
                d[i] = v;
            }
        }
        t->t1[p] = now();
    }
    return NULL;
}

static int run_mem(int threads, long mib)
{
    const int passes = 5;
    const char *names[2] = {"triad", "rmw4"};
    const int arrays[2] = {3, 4};
    const double bytes_per_elem[2] = {12.0, 32.0};
    double gbs[2];
    for (int kind = 0; kind < 2; kind++) {
        /* mib is the total footprint of the arrays */
        long total_vec = (long)(((double)mib * 1048576.0) / (arrays[kind] * (double)sizeof(v8f)));
        long per = total_vec / threads;
        if (per < 1) per = 1;
        long nvec = per * threads;
        v8f *buf[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < arrays[kind]; k++) {
            if (posix_memalign((void **)&buf[k], 64, (size_t)nvec * sizeof(v8f))) {
                fprintf(stderr, "peak_fma: out of memory\n");
                return 1;
            }
        }
        pthread_t tid[threads];
        mem_task task[threads];
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, (unsigned)threads);
        for (int i = 0; i < threads; i++) {
            long off = per * i;
            task[i] = (mem_task){buf[0] + off, buf[1] + off, buf[2] + off, buf[3] ? buf[3] + off : NULL,
                                 per, kind, passes, &barrier, {0}, {0}};
            pthread_create(&tid[i], NULL, mem_thread, &task[i]);
        }
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
        double best = 1e300;
        for (int p = 0; p < passes; p++) {
            double t0 = 1e300, t1 = 0.0;
            for (int i = 0; i < threads; i++) {
                if (task[i].t0[p] < t0) t0 = task[i].t0[p];
                if (task[i].t1[p] > t1) t1 = task[i].t1[p];
            }
            if (t1 - t0 < best) best = t1 - t0;
        }
        gbs[kind] = bytes_per_elem[kind] * 8.0 * (double)nvec / best * 1e-9;
        pthread_barrier_destroy(&barrier);
        for (int k = 0; k < 4; k++) free(buf[k]);
    }
    printf("{\"kind\": \"mem\", \"threads\": %d, \"mib\": %ld, \"%s_gbs\": %.3f, \"%s_gbs\": %.3f}\n",
           threads, mib, names[0], gbs[0], names[1], gbs[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s fma THREADS SECONDS | mem THREADS MIB\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 1024) {
        fprintf(stderr, "peak_fma: bad thread count %s\n", argv[2]);
        return 2;
    }
    if (strcmp(argv[1], "fma") == 0) return run_fma(threads, atof(argv[3]));
    if (strcmp(argv[1], "mem") == 0) return run_mem(threads, atol(argv[3]));
    fprintf(stderr, "peak_fma: unknown mode %s\n", argv[1]);
    return 2;
}
