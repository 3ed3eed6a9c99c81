/* data.c: building a float32 batch from the user's array, any dtype, without
 * converting the whole data set. */
#include "internal.h"

#include <string.h>

/* out (rows, D) = (float) src[idx[r], :] */
int pr_gather_rows(float *out, const void *src, int dtype, int64_t src_rows,
                   const int64_t *idx, int64_t rows, int64_t D)
{
    int64_t n;
    if (!out || !src || !idx || rows < 0 || D < 0 || src_rows < 0 || !pr_mul_ok(rows, D, &n))
        return PR_EINVAL;
    if (dtype < PR_DT_F32 || dtype > PR_DT_I64) return PR_EINVAL;
    for (int64_t r = 0; r < rows; r++)
        if (idx[r] < 0 || idx[r] >= src_rows) return PR_EINVAL;
    PR_PARALLEL_FOR(n)
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * D;
        int64_t s = idx[r];
        switch (dtype) {
        case PR_DT_F32: memcpy(o, (const float *)src + s * D, (size_t)D * sizeof(float)); break;
        case PR_DT_F64: { const double *p = (const double *)src + s * D; for (int64_t j = 0; j < D; j++) o[j] = (float)p[j]; } break;
        case PR_DT_U8: { const uint8_t *p = (const uint8_t *)src + s * D; for (int64_t j = 0; j < D; j++) o[j] = (float)p[j]; } break;
        case PR_DT_I32: { const int32_t *p = (const int32_t *)src + s * D; for (int64_t j = 0; j < D; j++) o[j] = (float)p[j]; } break;
        case PR_DT_I64: { const int64_t *p = (const int64_t *)src + s * D; for (int64_t j = 0; j < D; j++) o[j] = (float)p[j]; } break;
        default: break;
        }
    }
    return PR_OK;
}
