/* pool.c: 2-D max pooling (NHWC, TensorFlow's padding), forward and backward
 * side by side. Padded positions never win (as TensorFlow's -inf padding). */
#include "internal.h"

#include <string.h>

static int pool_shape_ok(const pr_pool2d_shape *s)
{
    int64_t t;
    return s && s->N >= 0 && s->H >= 1 && s->W >= 1 && s->C >= 1 && s->PH >= 1 && s->PW >= 1 &&
           s->SH >= 1 && s->SW >= 1 && s->OH >= 1 && s->OW >= 1 && s->pad_top >= 0 && s->pad_left >= 0 &&
           pr_mul_ok(s->N, s->H, &t) && pr_mul_ok(t, s->W, &t) && pr_mul_ok(t, s->C, &t) &&
           pr_mul_ok(s->N, s->OH, &t) && pr_mul_ok(t, s->OW, &t) && pr_mul_ok(t, s->C, &t);
}

int pr_pool2d_shape_init(pr_pool2d_shape *s, int same_padding)
{
    if (!s || s->N < 0 || s->H < 1 || s->W < 1 || s->C < 1 || s->PH < 1 || s->PW < 1 || s->SH < 1 || s->SW < 1)
        return PR_EINVAL;
    if (!pr_window_axis(s->H, s->PH, s->SH, same_padding, &s->OH, &s->pad_top) ||
        !pr_window_axis(s->W, s->PW, s->SW, same_padding, &s->OW, &s->pad_left))
        return PR_EINVAL;
    return PR_OK;
}

/* Index (h*W + w) of the first maximum of channel c in window (i, j) of one image. */
static int64_t window_argmax(const float *img, const pr_pool2d_shape *s, int64_t i, int64_t j, int64_t c)
{
    int64_t best = -1;
    float bv = 0.0f;
    for (int64_t di = 0; di < s->PH; di++) {
        int64_t h = i * s->SH + di - s->pad_top;
        if (h < 0 || h >= s->H) continue;
        for (int64_t dj = 0; dj < s->PW; dj++) {
            int64_t w = j * s->SW + dj - s->pad_left;
            if (w < 0 || w >= s->W) continue;
            float x = img[(h * s->W + w) * s->C + c];
            if (best < 0 || x > bv || (x != x && bv == bv)) { /* NaN propagates */
                best = h * s->W + w;
                bv = x;
            }
        }
    }
    return best;
}

/* out (N,OH,OW,C) = max over each PHxPW window of inp (N,H,W,C) */
int pr_maxpool2d_forward(float *out, const float *inp, const pr_pool2d_shape *s)
{
    if (!pool_shape_ok(s) || !out || !inp) return PR_EINVAL;
    const int64_t rows = s->N * s->OH;
    PR_PARALLEL_FOR(rows * s->OW * s->C * s->PH * s->PW)
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / s->OH, i = r % s->OH;
        const float *img = inp + n * s->H * s->W * s->C;
        for (int64_t j = 0; j < s->OW; j++)
            for (int64_t c = 0; c < s->C; c++) {
                int64_t a = window_argmax(img, s, i, j, c);
                out[((r * s->OW) + j) * s->C + c] = img[a * s->C + c];
            }
    }
    return PR_OK;
}

/* dinp (N,H,W,C): each output gradient goes to its window's first maximum.
 * Images are independent, so threads split images; inside one image the
 * windows are visited in a fixed order. */
int pr_maxpool2d_backward(float *dinp, const float *dout, const float *inp, const pr_pool2d_shape *s)
{
    if (!pool_shape_ok(s) || !dinp || !dout || !inp) return PR_EINVAL;
    const int64_t img_in = s->H * s->W * s->C, img_out = s->OH * s->OW * s->C;
    PR_PARALLEL_FOR(s->N * img_out * s->PH * s->PW)
    for (int64_t n = 0; n < s->N; n++) {
        const float *img = inp + n * img_in;
        float *d = dinp + n * img_in;
        memset(d, 0, (size_t)img_in * sizeof(float));
        for (int64_t i = 0; i < s->OH; i++)
            for (int64_t j = 0; j < s->OW; j++)
                for (int64_t c = 0; c < s->C; c++) {
                    int64_t a = window_argmax(img, s, i, j, c);
                    d[a * s->C + c] += dout[n * img_out + (i * s->OW + j) * s->C + c];
                }
    }
    return PR_OK;
}
