/*
 * Kernel interface: compute one tile from SRAM buffers.
 *
 *   in   int16 [tile->nn][tile->tri][tile->tci]   the input tile, zero padded
 *   w    int16 [tile->mn][layer->w_stride]        per output channel, in the
 *        canonical order [n][kh][kw] (dwconv: [kh][kw]); if the length
 *        L = nn*kh*kw (dwconv kh*kw) is odd, w[m][L] is 0 (LEA vectors are even)
 *   acc  int32 [tile->mn][tile->rn][tile->cn]    accumulators, updated in place
 *
 * aidi_conv_tile adds, for every accumulator, the terms of this tile in the
 * canonical order (input channel, kernel row, kernel column) with a
 * saturating 32-bit add. Two implementations: the portable CPU one and the
 * LEA one (DSPLib msp_mac_q15, used only where it is provably exact, CPU
 * otherwise); AIDI_BACKEND_LEA selects the latter for the layers that the
 * plan runs on the LEA.
 */
#ifndef AIDI_KERNELS_H
#define AIDI_KERNELS_H

#include "aidi_runtime.h"

void aidi_conv_tile_cpu(const aidi_layer_t *L, const aidi_tile_t *T, int32_t *acc,
                        const int16_t *in, const int16_t *w);
#if defined(AIDI_BACKEND_LEA)
/* needs the layer's LEA rows of the arena (sram_vec, sram_wabs, sram_mac) */
void aidi_conv_tile_lea(const aidi_layer_t *L, const aidi_tile_t *T, int32_t *acc,
                        const int16_t *in, const int16_t *w);
/* the layers the plan runs on the LEA (those with LEA rows) take the LEA kernel, the others the CPU's */
#define aidi_conv_tile(L, T, acc, in, w) \
    ((L)->sram_vec ? aidi_conv_tile_lea(L, T, acc, in, w) : aidi_conv_tile_cpu(L, T, acc, in, w))
#if defined(AIDI_TARGET_HOST)
/* dot products done by msp_mac_q15 / by the CPU because LEA could not be exact (host statistics only:
   on the MCU they would be SRAM the plan does not count) */
extern uint32_t aidi_lea_calls, aidi_lea_fallbacks;
#endif
#else
#define aidi_conv_tile aidi_conv_tile_cpu
#endif

/* maxpool / avgpool / relu: reads the input tile, writes int16 outputs to FRAM. */
void aidi_pool_tile(const aidi_layer_t *L, const aidi_tile_t *T, const int16_t *in);

/* residual add: in holds the two input tiles ([nn][tri][tci] each, tri = rn, tci = cn); writes
 * finalize((a << align_a) + (b << align_b)) to FRAM (exact in int32: the shifts are <= 15). */
void aidi_add_tile(const aidi_layer_t *L, const aidi_tile_t *T, const int16_t *in);

/* Saturating dot product in canonical order: acc + sum x[i]*w[i], i < len. */
int32_t aidi_dot_sat(int32_t acc, const int16_t *x, const int16_t *w, uint16_t len);

#endif /* AIDI_KERNELS_H */
