/*
 * LEA backend: conv/dwconv tiles as msp_mac_q15 dot products (TI DSPLib).
 *
 * DSPLib's msp_mac_q15(length, a, b, &r) returns r = 2 * sum a[i]*b[i] as a
 * Q31 number (Q15 x Q15 = Q30, shifted left once); its implementations
 * differ once the sum leaves the Q31 range (LEA and MPY32 saturate, the
 * plain C one wraps). Our accumulator semantics add every product to the
 * int32 accumulator with saturation. Both agree whenever no saturation can
 * happen, and that is the only time the LEA is used:
 *
 *   B = max|x| over the input tile * sum|w| over the filter < 2^30  and
 *   |acc| < 2^30
 *
 * implies every partial sum of the reference stays below 2^31 in magnitude
 * (no saturating add ever clips) and |2 * dot| < 2^31 (no Q31 saturation or
 * wrap), so acc + r / 2 is exact (r is even). Otherwise the element is
 * computed by the CPU kernel on the same gathered vector, in the canonical
 * order. aidi_lea_calls / aidi_lea_fallbacks count both paths (host build).
 * The layer's LEA rows of the arena (sram_vec, sram_wabs, sram_mac) hold the
 * gathered vector, sum|w| per filter and the Q31 result.
 */
#include "aidi_dsplib.h"
#include "aidi_kernels.h"

#if defined(AIDI_TARGET_HOST)
uint32_t aidi_lea_calls, aidi_lea_fallbacks;
#define AIDI_LEA_COUNT(n) (++(n))
#else
#define AIDI_LEA_COUNT(n) ((void)0)
#endif

#define AIDI_LEA_LIMIT (((uint32_t)1 << 30) - 1)

static int32_t mac_exact(int32_t acc, const int16_t *x, const int16_t *w, uint16_t len, uint32_t wabs,
                         uint32_t wabs_limit, int32_t *mac)
{
    msp_mac_q15_params p;
    if (wabs <= wabs_limit && acc < ((int32_t)1 << 30) && acc > -((int32_t)1 << 30)) {
        p.length = (uint16_t)(len + (len & 1u)); /* vectors carry a zero pad when len is odd */
        if (msp_mac_q15(&p, x, w, mac) == MSP_SUCCESS) {
            AIDI_LEA_COUNT(aidi_lea_calls);
            return acc + *mac / 2;
        }
    }
    AIDI_LEA_COUNT(aidi_lea_fallbacks);
    return aidi_dot_sat(acc, x, w, len);
}

void aidi_conv_tile_lea(const aidi_layer_t *L, const aidi_tile_t *T, int32_t *acc,
                        const int16_t *in, const int16_t *w)
{
    const int dw = L->op == AIDI_OP_DWCONV;
    const uint16_t n_cnt = dw ? 1 : T->nn;
    const uint16_t len = (uint16_t)(n_cnt * L->kh * L->kw);
    const size_t plane = (size_t)T->tri * T->tci;
    size_t e, n_in = (size_t)T->nn * plane;
    uint16_t maxabs = 0, m, r, c, n, i, j, k;
    uint32_t limit;
    int16_t *vec = L->sram_vec;

    for (e = 0; e < n_in; ++e) {
        uint16_t a = (uint16_t)(in[e] < 0 ? -(int32_t)in[e] : in[e]);
        if (a > maxabs) maxabs = a;
    }
    limit = maxabs ? AIDI_LEA_LIMIT / maxabs : AIDI_LEA_LIMIT;
    for (m = 0; m < T->mn; ++m) {
        const int16_t *wm = w + (size_t)m * L->w_stride;
        uint32_t s = 0;
        for (k = 0; k < len; ++k) s += (uint32_t)(wm[k] < 0 ? -(int32_t)wm[k] : wm[k]);
        L->sram_wabs[m] = s;
    }
    for (r = 0; r < T->rn; ++r) {
        for (c = 0; c < T->cn; ++c) {
            for (m = 0; m < T->mn; ++m) {
                if (dw || m == 0) { /* gather the window in canonical order [n][kh][kw] */
                    int16_t *v = vec;
                    const int16_t *base = in + (dw ? (size_t)m * plane : 0) +
                                          ((size_t)r * L->stride_h) * T->tci + (size_t)c * L->stride_w;
                    for (n = 0; n < n_cnt; ++n)
                        for (i = 0; i < L->kh; ++i)
                            for (j = 0; j < L->kw; ++j) *v++ = base[n * plane + (size_t)i * T->tci + j];
                    if (len & 1u) *v = 0;
                }
                e = ((size_t)m * T->rn + r) * T->cn + c;
                acc[e] = mac_exact(acc[e], vec, w + (size_t)m * L->w_stride, len, L->sram_wabs[m], limit,
                                   L->sram_mac);
            }
        }
    }
}
