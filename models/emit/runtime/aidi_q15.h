/*
 * Q15 arithmetic shared by every kernel (see models/emit/ir.py for the
 * definition). Written without undefined or implementation-defined
 * behaviour on signed values: no signed overflow, no right shift of a
 * negative number.
 */
#ifndef AIDI_Q15_H
#define AIDI_Q15_H

#include <stdint.h>

/* a + b, saturated to [INT32_MIN, INT32_MAX] */
static inline int32_t aidi_sat_add32(int32_t a, int32_t b)
{
    const uint32_t ua = (uint32_t)a, s = ua + (uint32_t)b; /* modulo 2^32 */
    /* overflow iff a and b have the same sign and the sum's sign differs */
    if ((~(ua ^ (uint32_t)b) & (ua ^ s)) & 0x80000000u) return a < 0 ? INT32_MIN : INT32_MAX;
    return s <= (uint32_t)INT32_MAX ? (int32_t)s : -(int32_t)~s - 1; /* two's complement value of s */
}

/* arithmetic shift right, 0 <= k <= 31: floor(a / 2^k) */
static inline int32_t aidi_asr32(int32_t a, uint16_t k)
{
    if (a >= 0) return (int32_t)((uint32_t)a >> k);
    return -(int32_t)(~(uint32_t)a >> k) - 1;
}

/*
 * rshift_round(a, k) = a if k == 0 else ((a >> (k-1)) + 1) >> 1.
 * Computed as b = a >> (k-1); (b >> 1) + (b & 1), equal for every int32 a
 * and free of the overflow of b + 1 at b = INT32_MAX.
 */
static inline int32_t aidi_rshift_round(int32_t a, uint16_t k)
{
    int32_t b;
    if (k == 0) return a;
    b = aidi_asr32(a, (uint16_t)(k - 1));
    return aidi_asr32(b, 1) + (int32_t)((uint32_t)b & 1u);
}

static inline int16_t aidi_sat16(int32_t a)
{
    if (a > INT16_MAX) return INT16_MAX;
    if (a < INT16_MIN) return INT16_MIN;
    return (int16_t)a;
}

/* floor(n / d) for d > 0 (C99 division truncates toward zero) */
static inline int32_t aidi_floor_div32(int32_t n, int32_t d)
{
    int32_t q = n / d;
    if (n % d != 0 && n < 0) q -= 1;
    return q;
}

/* the output step of a weighted layer: round-shift, saturate, optional ReLU */
static inline int16_t aidi_finalize(int32_t acc, uint16_t shift, uint16_t relu)
{
    int16_t y = aidi_sat16(aidi_rshift_round(acc, shift));
    return (relu && y < 0) ? 0 : y;
}

/* the relu6 clamp (hi = 6.0 in the output's format; INT16_MAX without relu6) */
static inline int16_t aidi_clamp_hi(int16_t y, int16_t hi)
{
    return y > hi ? hi : y;
}

#endif /* AIDI_Q15_H */
