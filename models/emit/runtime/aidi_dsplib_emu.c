/*
 * Emulation of DSPLib's msp_mac_q15 (DSPLib_vector.h): Q15 vectors in, Q31
 * result out, result = 2 * sum a[i] * b[i]. The exact sum is formed without
 * overflow and then saturated to Q31, as the LEA/MPY32 versions do with
 * their saturating accumulators when the final result overflows. (Where
 * intermediate sums overflow, DSPLib's variants differ; aidi only calls it
 * when no overflow is possible, and counts violations here.)
 * No 64-bit types: this file also builds for the 16-bit MSP430 simulator.
 */
#include "aidi_dsplib.h"

#if !(defined(AIDI_TARGET_MSP430_HW) && defined(AIDI_HAVE_DSPLIB))

#include "aidi_platform.h"

#if defined(AIDI_TARGET_HOST)
uint32_t aidi_dsplib_emu_saturations; /* host statistics only (no SRAM outside the plan on the MCU) */
#define AIDI_EMU_SATURATED() (++aidi_dsplib_emu_saturations)
#else
#define AIDI_EMU_SATURATED() ((void)0)
#endif

msp_status msp_mac_q15(const msp_mac_q15_params *params, const _q15 *srcA, const _q15 *srcB, _iq31 *result)
{
    /* exact sum = hi * 2^30 + lo with 0 <= lo < 2^30 (each |product| <= 2^30) */
    const int32_t unit = (int32_t)1 << 30;
    int32_t hi = 0, lo = 0;
    uint16_t i;
    if (params->length & 1u) return MSP_SIZE_ERROR;
    for (i = 0; i < params->length; ++i) {
        lo += aidi_mul16(srcA[i], srcB[i]); /* stays within [-2^30, 2^31) */
        if (lo >= unit) { lo -= unit; ++hi; }
        else if (lo < 0) { lo += unit; --hi; }
    }
    if (hi >= 1) {                 /* sum >= 2^30: 2 * sum >= 2^31 */
        AIDI_EMU_SATURATED();
        *result = INT32_MAX;
    } else if (hi < -1) {          /* sum < -2^30 */
        AIDI_EMU_SATURATED();
        *result = INT32_MIN;
    } else if (hi == -1) {         /* sum in [-2^30, 0) */
        *result = INT32_MIN + 2 * lo;
    } else {                       /* sum in [0, 2^30) */
        *result = 2 * lo;
    }
    return MSP_SUCCESS;
}

#endif
