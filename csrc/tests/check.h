/* check.h: what the C test programs share: CHECK, which counts passes and
 * failures and prints each failure with its place, and a seeded xorshift
 * generator of floats in [-1, 1). A program may #define CHECK_SEED before
 * including this to draw its own stream. */
#ifndef PYREG_TESTS_CHECK_H
#define PYREG_TESTS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef CHECK_SEED
#define CHECK_SEED 0x9E3779B97F4A7C15ull
#endif

static int n_pass, n_fail;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) n_pass++;                                           \
        else { n_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__);  \
               printf(__VA_ARGS__); printf("\n"); }                   \
    } while (0)

static uint64_t rng_state = CHECK_SEED;
static float frand(void) /* uniform in [-1, 1), exact multiples of 2^-23 */
{
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rand_buf(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

#endif
