/* conv2d.c: 2-D convolution (cross-correlation, NHWC, TensorFlow padding),
 * forward and backward side by side, as GEMMs on the patch matrix P
 * (rows: output pixels (n, i, j) in row-major order; columns: KH*KW*C):
 *   forward  out (rows, F)     = P @ kernel (KH*KW*C, F)
 *   kernel   dkernel (kdim, F) = P^T @ dout (rows, F)
 *   input    dP = dout @ kernel^T, then col2im
 * With C >= PR_IMPLICIT_MIN_C channels the first two are implicit GEMMs: P
 * is never stored, the GEMM packs its panels straight from the input
 * (pr_patches). With fewer channels (the first layer's 3 colours), P is built
 * by im2col in chunks of whole images. The input gradient needs dP itself,
 * also in chunks. A chunk buffer holds at most PR_CONV_CHUNK_BYTES (or one
 * image), never a whole batch's worth. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Upper bound on a chunk buffer (P or dP): big enough for efficient GEMM
 * panels. */
#define PR_CONV_CHUNK_BYTES ((int64_t)12 << 20)

int pr_conv2d_shape_init(pr_conv2d_shape *s, int same_padding)
{
    if (!s) return PR_EINVAL;
    if (s->N < 0 || s->H < 1 || s->W < 1 || s->C < 1 || s->KH < 1 || s->KW < 1 ||
        s->F < 1 || s->SH < 1 || s->SW < 1)
        return PR_EINVAL;
    if (!pr_window_axis(s->H, s->KH, s->SH, same_padding, &s->OH, &s->pad_top) ||
        !pr_window_axis(s->W, s->KW, s->SW, same_padding, &s->OW, &s->pad_left))
        return PR_EINVAL;
    return PR_OK;
}

static int shape_ok(const pr_conv2d_shape *s)
{
    if (!s || s->N < 0 || s->H < 1 || s->W < 1 || s->C < 1 || s->KH < 1 ||
        s->KW < 1 || s->F < 1 || s->SH < 1 || s->SW < 1 || s->OH < 1 ||
        s->OW < 1 || s->pad_top < 0 || s->pad_left < 0)
        return 0;
    int64_t t;
    return pr_mul_ok(s->N, s->H, &t) && pr_mul_ok(t, s->W, &t) &&
           pr_mul_ok(t, s->C, &t) && pr_mul_ok(s->N, s->OH, &t) &&
           pr_mul_ok(t, s->OW, &t) && pr_mul_ok(t, s->F, &t) &&
           pr_mul_ok(s->KH, s->KW, &t) && pr_mul_ok(t, s->C, &t) &&
           pr_mul_ok(t, s->F, &t);
}

/* Implicit GEMM from this many channels on: below it, the channel runs it
 * copies are too short to pay for finding them (the first layer, C = 3:
 * 27 ms against 17 ms for its kernel gradient on the tutorial's batch). */
#define PR_IMPLICIT_MIN_C 16

/* Images per chunk, and the chunk buffer (NULL when the input itself is the
 * patch matrix: 1x1 kernel, stride 1, no padding). */
typedef struct {
    int64_t kdim;      /* KH*KW*C */
    int64_t pix;       /* OH*OW output pixels per image */
    int64_t imgs;      /* images per chunk */
    float *buf;        /* (imgs*pix, kdim) or NULL */
} conv_plan;

static int is_pointwise(const pr_conv2d_shape *s)
{
    return s->KH == 1 && s->KW == 1 && s->SH == 1 && s->SW == 1 &&
           s->pad_top == 0 && s->pad_left == 0 && s->OH == s->H && s->OW == s->W;
}

static int is_implicit(const pr_conv2d_shape *s)
{
    return !is_pointwise(s) && s->C >= PR_IMPLICIT_MIN_C;
}

static int plan_init(conv_plan *p, const pr_conv2d_shape *s)
{
    p->kdim = s->KH * s->KW * s->C;
    p->pix = s->OH * s->OW;
    p->buf = NULL;
    int64_t per_img = p->pix * p->kdim * (int64_t)sizeof(float);
    p->imgs = per_img > 0 ? PR_CONV_CHUNK_BYTES / per_img : s->N;
    if (p->imgs < 1) p->imgs = 1;
    if (p->imgs > s->N) p->imgs = s->N;
    if (!is_pointwise(s) && s->N > 0) {
        size_t bytes = (size_t)(p->imgs * per_img);
        p->buf = (float *)malloc(bytes ? bytes : 1);
        if (!p->buf) return PR_ENOMEM;
    }
    return PR_OK;
}

/* n floats from src to d: an inline loop for the short runs of few-channel
 * inputs (a libc call per 9 floats would cost more than the copy). */
static inline void copy_run(float *restrict d, const float *restrict src, int64_t n)
{
    if (n >= 32) memcpy(d, src, (size_t)n * sizeof(float));
    else for (int64_t x = 0; x < n; x++) d[x] = src[x];
}

/* patches (nimg*OH*OW, KH*KW*C) from images n0..n0+nimg-1 of inp (N,H,W,C).
 * The KW taps of one kernel row read KW*C consecutive input floats, so each
 * kernel row is one copy (its part inside the image) between zeros. */
static void im2col(float *patches, const float *inp, const pr_conv2d_shape *s,
                   int64_t n0, int64_t nimg)
{
    const int64_t C = s->C, KW = s->KW, kdim = s->KH * KW * C;
    const int64_t rows = nimg * s->OH;
    PR_PARALLEL_FOR(rows * s->OW * kdim)
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = n0 + r / s->OH, i = r % s->OH;
        const float *img = inp + n * s->H * s->W * C;
        for (int64_t j = 0; j < s->OW; j++) {
            float *dst = patches + (r * s->OW + j) * kdim;
            int64_t w0 = j * s->SW - s->pad_left; /* input column of tap dj = 0 */
            int64_t lo = w0 < 0 ? -w0 : 0, hi = s->W - w0 < KW ? s->W - w0 : KW; /* taps inside */
            for (int64_t di = 0; di < s->KH; di++) {
                int64_t h = i * s->SH + di - s->pad_top;
                float *d = dst + di * KW * C;
                if (h < 0 || h >= s->H || lo >= hi) {
                    memset(d, 0, (size_t)(KW * C) * sizeof(float));
                    continue;
                }
                if (lo > 0) memset(d, 0, (size_t)(lo * C) * sizeof(float));
                copy_run(d + lo * C, img + (h * s->W + w0 + lo) * C, (hi - lo) * C);
                if (hi < KW) memset(d + hi * C, 0, (size_t)((KW - hi) * C) * sizeof(float));
            }
        }
    }
}

/* dinp for images n0..n0+nimg-1 gathered from dpatches (nimg*OH*OW, kdim):
 * every input element sums the patch entries that read it, in (di,dj) order,
 * so each is written by one thread in a fixed order (either path below gives
 * the same bits). */
static void col2im(float *dinp, const float *dpatches, const pr_conv2d_shape *s,
                   int64_t n0, int64_t nimg)
{
    const int64_t C = s->C, kdim = s->KH * s->KW * C;
    const int64_t rows = nimg * s->H;
    const int unit = s->SH == 1 && s->SW == 1;
    PR_PARALLEL_FOR(rows * s->W * C)
    for (int64_t r = 0; r < rows; r++) {
        int64_t nl = r / s->H, h = r % s->H;
        float *drow = dinp + ((n0 + nl) * s->H + h) * s->W * C;
        memset(drow, 0, (size_t)(s->W * C) * sizeof(float));
        for (int64_t di = 0; di < s->KH; di++) {
            int64_t ih = h + s->pad_top - di; /* = i * SH */
            if (ih < 0 || ih % s->SH) continue;
            int64_t i = ih / s->SH;
            if (i >= s->OH) continue;
            const float *prow = dpatches + (nl * s->OH + i) * s->OW * kdim;
            if (unit) {
                /* stride 1: tap (di,dj) reaches w for j = w + pl - dj in [0, OW);
                 * w runs over one interval, with no test inside. For each w
                 * the taps still arrive in (di, dj) order. */
                for (int64_t w = 0; w < s->W; w++) {
                    float *d = drow + w * C;
                    for (int64_t dj = 0; dj < s->KW; dj++) {
                        int64_t j = w + s->pad_left - dj;
                        if (j < 0 || j >= s->OW) continue;
                        const float *src = prow + j * kdim + (di * s->KW + dj) * C;
                        for (int64_t c = 0; c < C; c++) d[c] += src[c];
                    }
                }
                continue;
            }
            for (int64_t w = 0; w < s->W; w++) {
                float *d = drow + w * C;
                for (int64_t dj = 0; dj < s->KW; dj++) {
                    int64_t jw = w + s->pad_left - dj;
                    if (jw < 0 || jw % s->SW) continue;
                    int64_t j = jw / s->SW;
                    if (j >= s->OW) continue;
                    const float *src = prow + j * kdim + (di * s->KW + dj) * C;
                    for (int64_t c = 0; c < C; c++) d[c] += src[c];
                }
            }
        }
    }
}

/* out (N,OH,OW,F) = conv(inp (N,H,W,C), kernel (KH,KW,C,F)) + bias (F), then
 * ReLU if asked, the bias and ReLU applied to each output tile in the GEMM
 * while it is in cache. Implicit (or pointwise): one GEMM over the batch. */
int pr_conv2d_forward(float *out, const float *inp, const float *kernel,
                      const float *bias, const pr_conv2d_shape *s, int relu)
{
    if (!shape_ok(s) || !out || !inp || !kernel) return PR_EINVAL;
    if (s->N == 0) return PR_OK;
    const int64_t F = s->F, kdim = s->KH * s->KW * s->C;
    pr_patches pt = {inp, s};
    pr_gemm_ext ext = {NULL, bias, relu};
    if (is_implicit(s) || is_pointwise(s)) {
        ext.a = is_implicit(s) ? &pt : NULL;
        return pr_sgemm_ext(0, 0, s->N * s->OH * s->OW, F, kdim, 1.0f, inp, kdim,
                            kernel, F, 0.0f, out, F, &ext);
    }
    conv_plan p;
    int st = plan_init(&p, s);
    if (st) return st;
    for (int64_t n0 = 0; n0 < s->N && st == PR_OK; n0 += p.imgs) {
        int64_t nimg = s->N - n0 < p.imgs ? s->N - n0 : p.imgs;
        im2col(p.buf, inp, s, n0, nimg);
        st = pr_sgemm_ext(0, 0, nimg * p.pix, F, kdim, 1.0f, p.buf, kdim, kernel, F,
                          0.0f, out + n0 * p.pix * F, F, &ext);
    }
    free(p.buf);
    return st;
}

/* Column sums of x (rows, F) into out (F), accumulated in double: one pass
 * over x, in fixed blocks of rows (partial sums added in block order), so the
 * result does not depend on the thread count. */
#define PR_COLSUM_ROWS 2048
static int column_sums(float *out, const float *x, int64_t rows, int64_t F)
{
    const int64_t nb = (rows + PR_COLSUM_ROWS - 1) / PR_COLSUM_ROWS;
    double *part = (double *)calloc((size_t)(nb * F + F), sizeof(double));
    if (!part) return PR_ENOMEM;
    PR_PARALLEL_FOR(rows * F)
    for (int64_t b = 0; b < nb; b++) {
        double *acc = part + b * F;
        int64_t r1 = (b + 1) * PR_COLSUM_ROWS < rows ? (b + 1) * PR_COLSUM_ROWS : rows;
        for (int64_t r = b * PR_COLSUM_ROWS; r < r1; r++)
            for (int64_t f = 0; f < F; f++) acc[f] += x[r * F + f];
    }
    double *tot = part + nb * F;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t f = 0; f < F; f++) tot[f] += part[b * F + f];
    for (int64_t f = 0; f < F; f++) out[f] = (float)tot[f];
    free(part);
    return PR_OK;
}

int pr_conv2d_backward(float *dinp, float *dkernel, float *dbias,
                       const float *dout, const float *inp, const float *kernel,
                       const pr_conv2d_shape *s)
{
    if (!shape_ok(s) || !dout) return PR_EINVAL;
    if ((dkernel && !inp) || (dinp && !kernel)) return PR_EINVAL;
    const int64_t F = s->F;
    if (s->N == 0) {
        if (dkernel) memset(dkernel, 0, (size_t)(s->KH * s->KW * s->C * F) * sizeof(float));
        if (dbias) memset(dbias, 0, (size_t)F * sizeof(float));
        return PR_OK;
    }
    if (dbias) {
        int st = column_sums(dbias, dout, s->N * s->OH * s->OW, F);
        if (st) return st;
    }
    const int pointwise = is_pointwise(s), implicit = is_implicit(s);
    const int64_t kdim = s->KH * s->KW * s->C, all_rows = s->N * s->OH * s->OW;
    if (dkernel && (implicit || pointwise)) {
        /* dkernel (kdim,F) = P^T (kdim,rows) @ dout (rows,F): one GEMM over
         * the batch, its A panels packed straight from the input. */
        pr_patches pt = {inp, s};
        pr_gemm_ext ext = {implicit ? &pt : NULL, NULL, 0};
        int st = pr_sgemm_ext(1, 0, kdim, F, all_rows, 1.0f, inp, kdim, dout, F,
                              0.0f, dkernel, F, &ext);
        if (st) return st;
    }
    const int chunked_dk = dkernel && !implicit && !pointwise;
    if (!dinp && !chunked_dk) return PR_OK;
    if (pointwise) /* dinp (rows, C) is the patch gradient itself */
        return pr_sgemm(0, 1, all_rows, kdim, F, 1.0f, dout, F, kernel, F, 0.0f, dinp, kdim);
    conv_plan p;
    int st = plan_init(&p, s);
    if (st) return st;
    /* In chunks of whole images, one buffer for P (kernel gradient, few
     * channels) and then dP (input gradient). */
    for (int64_t n0 = 0; n0 < s->N && st == PR_OK; n0 += p.imgs) {
        int64_t nimg = s->N - n0 < p.imgs ? s->N - n0 : p.imgs, rows = nimg * p.pix;
        const float *d = dout + n0 * p.pix * F;
        if (chunked_dk) { /* dkernel (+)= P^T @ dout, over the chunks in order */
            im2col(p.buf, inp, s, n0, nimg);
            st = pr_sgemm(1, 0, kdim, F, rows, 1.0f, p.buf, kdim, d, F,
                          n0 == 0 ? 0.0f : 1.0f, dkernel, F);
            if (st) break;
        }
        if (dinp) { /* dP (rows,kdim) = dout (rows,F) @ kernel^T (F,kdim) */
            st = pr_sgemm(0, 1, rows, kdim, F, 1.0f, d, F, kernel, F, 0.0f, p.buf, kdim);
            if (st == PR_OK) col2im(dinp, p.buf, s, n0, nimg);
        }
    }
    free(p.buf);
    return st;
}
