/*
 * TI DSPLib, or a bit-exact emulation of the few functions aidi calls.
 *
 * On the MSP430 hardware target with AIDI_HAVE_DSPLIB the real library is
 * used (it drives the LEA). Everywhere else aidi_dsplib_emu.c provides
 * msp_mac_q15 with DSPLib's documented semantics, so the LEA backend's
 * control flow, buffer layout and exactness guard run (and are tested) on
 * the host.
 */
#ifndef AIDI_DSPLIB_H
#define AIDI_DSPLIB_H

#if defined(AIDI_TARGET_MSP430_HW) && defined(AIDI_HAVE_DSPLIB)
#include <DSPLib.h>
#else
#include <stdint.h>

typedef int16_t _q15;
typedef int32_t _iq31;
typedef enum {
    MSP_SUCCESS = 0,
    MSP_SIZE_ERROR = 1
} msp_status;

typedef struct {
    uint16_t length; /* must be a multiple of two */
} msp_mac_q15_params;

/* *result = 2 * sum srcA[i] * srcB[i] (Q31), saturated to the Q31 range. */
msp_status msp_mac_q15(const msp_mac_q15_params *params, const _q15 *srcA, const _q15 *srcB, _iq31 *result);

#if defined(AIDI_TARGET_HOST)
/* calls whose exact result did not fit in Q31 (the LEA backend never makes one) */
extern uint32_t aidi_dsplib_emu_saturations;
#endif
#endif

#endif /* AIDI_DSPLIB_H */
