/* pyreg.h: the C core of pyreg. Plain C11, no Python.
 *
 * Conventions (after llm.c):
 *   - every op is a pair <op>_forward / <op>_backward, declared side by side;
 *   - arguments: outputs first, then inputs, then shapes;
 *   - all tensors are float32, C-contiguous (row-major), NHWC for images;
 *   - backward kernels OVERWRITE their gradient outputs (no zero_grad pass
 *     over 88 M parameters is needed); pass NULL for a gradient you do not want;
 *   - functions return PR_OK (0) or a negative pr_status; they never abort.
 *
 * Determinism: work is split over outputs only, never across a reduction, and
 * every reduction has a fixed order independent of the thread count; so the
 * results are bitwise identical with 1 or N threads.
 */
#ifndef PYREG_H
#define PYREG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PR_OK = 0,
    PR_EINVAL = -1,    /* an argument is out of range or inconsistent */
    PR_ENOMEM = -2,    /* an allocation failed */
    PR_EOVERFLOW = -3, /* a size computation would overflow */
} pr_status;

const char *pr_strerror(int status);

/* ---------------------------------------------------------------- runtime */

/* Threads used by every kernel. Default: omp_get_max_threads() (honours
 * OMP_NUM_THREADS); 1 when built without OpenMP. */
void pr_set_num_threads(int n);
int pr_get_num_threads(void);

/* Instruction-set path of the GEMM micro-kernel: "generic", "avx2", "avx512".
 * Chosen at first use from the CPU (overridable by env PYREG_ISA). */
int pr_set_isa(const char *name); /* PR_EINVAL if unknown or unsupported */
const char *pr_get_isa(void);
int pr_isa_supported(const char *name); /* 1 if this CPU can run it */

/* ------------------------------------------------------------------- gemm */

/* C = alpha * op(A) @ op(B) + beta * C, row-major.
 * op(A) is (M,K): A is (M,K) with row stride lda, or (K,M) if trans_a.
 * op(B) is (K,N): B is (K,N) with row stride ldb, or (N,K) if trans_b.
 * C is (M,N) with row stride ldc. beta == 0 means C is not read (may hold NaN).
 * All heavy compute in pyreg goes through this one routine. */
int pr_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc);

/* The naive triple loop (double accumulator): fallback and test oracle. */
int pr_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc);

/* ----------------------------------------------------------------- conv2d */

typedef struct {
    int64_t N, H, W, C;        /* input (N,H,W,C) */
    int64_t KH, KW, F;         /* kernel (KH,KW,C,F), bias (F) */
    int64_t SH, SW;            /* strides */
    int64_t OH, OW;            /* output (N,OH,OW,F) */
    int64_t pad_top, pad_left; /* implicit zero padding before row/col 0 */
} pr_conv2d_shape;

/* Fills OH, OW, pad_top, pad_left from the rest, with TensorFlow's rules:
 * valid: OH = ceil((H-KH+1)/SH); same: OH = ceil(H/SH), pad_total =
 * max(0,(OH-1)*SH+KH-H), pad_top = pad_total/2 (the extra row at the bottom). */
int pr_conv2d_shape_init(pr_conv2d_shape *s, int same_padding);

/* out[n,i,j,f] = bias[f] + sum_{di,dj,c} inp[n,SH*i+di-pt,SW*j+dj-pl,c] * kernel[di,dj,c,f]
 * (cross-correlation, as tf.nn.conv2d). bias may be NULL. relu != 0: then
 * out = max(out, 0) (as a separate ReLU pass would, fused into the GEMM). */
int pr_conv2d_forward(float *out, const float *inp, const float *kernel,
                      const float *bias, const pr_conv2d_shape *s, int relu);
/* dinp (N,H,W,C), dkernel (KH,KW,C,F), dbias (F), each overwritten, each may
 * be NULL. */
int pr_conv2d_backward(float *dinp, float *dkernel, float *dbias,
                       const float *dout, const float *inp, const float *kernel,
                       const pr_conv2d_shape *s);

/* ------------------------------------------------------------------ dense */

/* out (B,n_out) = inp (B,n_in) @ weight (n_in,n_out) + bias (n_out); bias may be
 * NULL. relu != 0: then out = max(out, 0), fused as in pr_conv2d_forward. */
int pr_dense_forward(float *out, const float *inp, const float *weight,
                     const float *bias, int64_t B, int64_t n_in, int64_t n_out,
                     int relu);
/* dinp (B,n_in), dweight (n_in,n_out), dbias (n_out): overwritten; each may be NULL. */
int pr_dense_backward(float *dinp, float *dweight, float *dbias,
                      const float *dout, const float *inp, const float *weight,
                      int64_t B, int64_t n_in, int64_t n_out);
/* Rows [r0, r1) of dweight only: dw_rows (r1-r0, n_out) = inp[:, r0:r1]^T @ dout.
 * Bitwise equal to those rows of pr_dense_backward's dweight; lets a caller
 * update a large kernel block by block without holding its whole gradient. */
int pr_dense_weight_grad_rows(float *dw_rows, const float *dout, const float *inp,
                              int64_t B, int64_t n_in, int64_t n_out, int64_t r0, int64_t r1);

/* ---------------------------------------------------------------- pooling */

typedef struct {
    int64_t N, H, W, C;        /* input (N,H,W,C) */
    int64_t PH, PW;            /* window */
    int64_t SH, SW;            /* strides */
    int64_t OH, OW;            /* output (N,OH,OW,C) */
    int64_t pad_top, pad_left; /* padded positions never win */
} pr_pool2d_shape;

/* OH, OW and padding from the rest, with TensorFlow's valid/same rules. */
int pr_pool2d_shape_init(pr_pool2d_shape *s, int same_padding);
/* out[n,i,j,c] = max_{di<PH,dj<PW} inp[n, SH*i+di-pt, SW*j+dj-pl, c] */
int pr_maxpool2d_forward(float *out, const float *inp, const pr_pool2d_shape *s);
/* dinp (overwritten) = dout routed to each window's first maximum. */
int pr_maxpool2d_backward(float *dinp, const float *dout, const float *inp, const pr_pool2d_shape *s);

/* ------------------------------------------------------------ activations */

typedef enum {
    PR_ACT_LINEAR = 0, /* f(x) = x */
    PR_ACT_RELU = 1,   /* f(x) = max(0,x); f'(0) = 0 as TensorFlow */
    PR_ACT_SIGMOID = 2,/* f(x) = 1/(1+exp(-x)) */
    PR_ACT_TANH = 3,   /* f(x) = tanh(x) */
    PR_ACT_SOFTMAX = 4 /* f(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), over the last axis */
} pr_activation;

/* out = f(inp) over rows of length D (n = rows*D elements). out may be inp. */
int pr_activation_forward(float *out, const float *inp, int kind,
                          int64_t rows, int64_t D);
/* dinp = f'(.) * dout, expressed through the forward OUTPUT `out` (so the
 * pre-activation need not be kept). dinp may be dout. */
int pr_activation_backward(float *dinp, const float *dout, const float *out,
                           int kind, int64_t rows, int64_t D);

/* ----------------------------------------------------------------- losses */

typedef enum {
    PR_LOSS_CATEGORICAL_CE = 0,        /* target one-hot (B,D) */
    PR_LOSS_SPARSE_CATEGORICAL_CE = 1, /* target class index (B) as float */
    PR_LOSS_MSE = 2                    /* target (B,D) */
} pr_loss;

/* Every loss returns the per-sample losses summed in double in *loss_sum (the
 * caller divides by B, as Keras's SUM_OVER_BATCH_SIZE), and writes the gradient
 * of the BATCH MEAN with respect to its input into dinp (may be NULL).
 * *correct (may be NULL) receives the count of samples whose argmax (first on
 * ties) matches the target's (binary (pred > 0.5) == target when D == 1), as
 * Keras picks the 'accuracy' metric by shape.
 *
 * from_logits == 1 with the cross-entropies: input holds logits z, the loss is
 * logsumexp(z) - z[y] and the gradient (softmax(z) - y)/B, as TensorFlow's
 * fused path for a softmax output layer. from_logits == 0: input holds
 * probabilities, renormalised over the row and clipped to [1e-7, 1-1e-7]
 * (gradient 0 where clipped), as tf-keras's backend. */
int pr_loss_forward_backward(double *loss_sum, int64_t *correct, float *dinp,
                             const float *inp, const float *target, int kind,
                             int from_logits, int64_t B, int64_t D);

/* Number of rows whose argmax over D matches target's (one-hot rows if
 * sparse == 0, else class indices as float). */
int64_t pr_count_correct(const float *pred, const float *target, int sparse,
                         int64_t B, int64_t D);

/* ----------------------------------------------------------- regularizers */

/* Keras's penalty: l1 * sum|w| + l2 * sum w^2 (no 1/2), summed in double,
 * fixed-order chunks: identical with any thread count. */
double pr_reg_penalty(const float *w, int64_t n, float l1, float l2);
/* grad += l1 * sign(w) + 2 * l2 * w, with sign(0) = 0 (TensorFlow's Abs grad). */
int pr_reg_backward(float *grad, const float *w, int64_t n, float l1, float l2);

/* ------------------------------------------------------------- optimizers */

/* tf-keras legacy Adam (ResourceApplyAdam), one step, over n parameters:
 *   t = iterations + 1, lr_t = lr / (1 + decay * iterations)   (caller)
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  (vhat = max(vhat, v))
 *   w -= lr_t*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v or vhat) + eps)
 * Fused with the regularizer when l1 or l2 is nonzero: g is first replaced by
 * g + l1*sign(w) + 2*l2*w (pre-update w; g is updated in place), and the
 * penalty of the pre-update w is added into *penalty (may be NULL).
 * vhat may be NULL unless amsgrad.
 *
 * prox_l1 (beyond Keras): the L1 term leaves the first moment; m sees
 * g + 2*l2*w, v still sees the full subgradient g + l1*sign(w) + 2*l2*w (so
 * the step size matches the subgradient method's), and after the step
 *   w = sign(w) * max(|w| - lr*sqrt(1-b2^t) * l1 / (sqrt(v) + eps), 0),
 * the proximal step of the preconditioned problem: weights whose data gradient
 * cannot hold them reach exactly 0 and stay there, instead of oscillating
 * around 0 with amplitude ~alpha as with Keras's subgradient. */
typedef struct {
    float lr;     /* already decayed */
    float beta_1, beta_2, epsilon;
    int64_t t;    /* local step, iterations + 1 */
    int amsgrad;
    int prox_l1;  /* beyond Keras: L1 by soft-thresholding, see below */
} pr_adam_hyper;
int pr_adam_update(float *w, float *g, float *m, float *v, float *vhat,
                   int64_t n, const pr_adam_hyper *h, float l1, float l2,
                   double *penalty);

/* tf-keras legacy SGD (ResourceApplyKerasMomentum), lr already decayed:
 *   momentum == 0:  w -= lr*g
 *   else:           b = momentum*b - lr*g;  w += b                 (nesterov 0)
 *                   b = momentum*b - lr*g;  w += momentum*b - lr*g (nesterov 1)
 * Fused with the regularizer as pr_adam_update. buf may be NULL if momentum 0. */
int pr_sgd_update(float *w, float *g, float *buf, int64_t n, float lr,
                  float momentum, int nesterov, float l1, float l2,
                  double *penalty);

/* Proximal L1 (soft-threshold): w = sign(w) * max(|w| - thr, 0). Returns the
 * number of exact zeros in w afterwards in *zeros (may be NULL). */
int pr_soft_threshold(float *w, int64_t n, float thr, int64_t *zeros);

/* -------------------------------------------------------------- data path */

/* out[r, :] = (float) src[idx[r], :] for r < rows, row length D; src dtype is
 * one of PR_DT_*. Indices must be in [0, src_rows). */
enum { PR_DT_F32 = 0, PR_DT_F64 = 1, PR_DT_U8 = 2, PR_DT_I32 = 3, PR_DT_I64 = 4 };
int pr_gather_rows(float *out, const void *src, int dtype, int64_t src_rows,
                   const int64_t *idx, int64_t rows, int64_t D);

#ifdef __cplusplus
}
#endif
#endif /* PYREG_H */
