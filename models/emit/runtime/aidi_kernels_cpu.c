/*
 * Portable CPU kernels (the reference backend; also the LEA backend's
 * fallback and its pooling kernels).
 */
#include "aidi_kernels.h"

#include "aidi_q15.h"

int32_t aidi_dot_sat(int32_t acc, const int16_t *x, const int16_t *w, uint16_t len)
{
    uint16_t i;
    for (i = 0; i < len; ++i) acc = aidi_sat_add32(acc, aidi_mul16(x[i], w[i]));
    return acc;
}

void aidi_conv_tile_cpu(const aidi_layer_t *L, const aidi_tile_t *T, int32_t *acc,
                        const int16_t *in, const int16_t *w)
{
    const int dw = L->op == AIDI_OP_DWCONV;
    const uint16_t n_cnt = dw ? 1 : T->nn, kh = L->kh, kw = L->kw;
    const size_t plane = (size_t)T->tri * T->tci;
    const size_t row_step = (size_t)L->stride_h * T->tci; /* next output row */
    uint16_t m, r, c, n, i, j;
    for (m = 0; m < T->mn; ++m, w += L->w_stride) {
        /* dwconv: output channel m reads input channel m of the tile */
        const int16_t *in_r = dw ? in + m * plane : in;
        for (r = 0; r < T->rn; ++r, in_r += row_step) {
            const int16_t *in_c = in_r;
            for (c = 0; c < T->cn; ++c, in_c += L->stride_w) {
                int32_t a = *acc;
                const int16_t *wp = w, *in_n = in_c;
                for (n = 0; n < n_cnt; ++n, in_n += plane) {
                    const int16_t *xp = in_n;
                    for (i = 0; i < kh; ++i, xp += T->tci)
                        for (j = 0; j < kw; ++j) a = aidi_sat_add32(a, aidi_mul16(xp[j], *wp++));
                }
                *acc++ = a;
            }
        }
    }
}

void aidi_pool_tile(const aidi_layer_t *L, const aidi_tile_t *T, const int16_t *in)
{
    const size_t plane_in = (size_t)T->tri * T->tci, plane_out = (size_t)L->out_h * L->out_w;
    const size_t row_step = (size_t)L->stride_h * T->tci;
    const int32_t kk = (int32_t)L->kh * L->kw;
    int16_t *out_m = L->out + (size_t)T->m0 * plane_out + (size_t)T->r0 * L->out_w + T->c0;
    uint16_t m, r, c, i, j;
    for (m = 0; m < T->mn; ++m, in += plane_in, out_m += plane_out) {
        const int16_t *in_r = in;
        int16_t *out_r = out_m;
        for (r = 0; r < T->rn; ++r, in_r += row_step, out_r += L->out_w) {
            const int16_t *xp0 = in_r;
            for (c = 0; c < T->cn; ++c, xp0 += L->stride_w) {
                const int16_t *xp = xp0;
                int32_t v;
                if (L->op == AIDI_OP_MAXPOOL) {
                    v = INT16_MIN;
                    for (i = 0; i < L->kh; ++i, xp += T->tci)
                        for (j = 0; j < L->kw; ++j)
                            if (xp[j] > v) v = xp[j];
                } else if (L->op == AIDI_OP_AVGPOOL) {
                    int32_t s = 0;
                    for (i = 0; i < L->kh; ++i, xp += T->tci)
                        for (j = 0; j < L->kw; ++j) s += xp[j]; /* |s| <= 32768 * 65535: no overflow */
                    v = aidi_floor_div32(s + kk / 2, kk);
                } else { /* AIDI_OP_RELU */
                    v = xp[0] > 0 ? xp[0] : 0;
                }
                if (L->relu && v < 0) v = 0;
                aidi_nvm_w16(&out_r[c], aidi_clamp_hi((int16_t)v, L->act_max));
            }
        }
    }
}

/* v * 2^l, exact for l <= 15 (the shift of the two's-complement bits: no signed shift, no multiply) */
static int32_t align_q(int16_t v, uint8_t l)
{
    return l ? (int32_t)((uint32_t)(int32_t)v << l) : (int32_t)v;
}

void aidi_add_tile(const aidi_layer_t *L, const aidi_tile_t *T, const int16_t *in)
{
    const size_t plane_out = (size_t)L->out_h * L->out_w;
    const size_t n_tile = (size_t)T->mn * T->rn * T->cn;
    const int16_t *a = in, *b = in + n_tile;
    int16_t *out_m = L->out + (size_t)T->m0 * plane_out + (size_t)T->r0 * L->out_w + T->c0;
    uint16_t m, r, c;
    for (m = 0; m < T->mn; ++m, out_m += plane_out) {
        int16_t *out_r = out_m;
        for (r = 0; r < T->rn; ++r, out_r += L->out_w) {
            for (c = 0; c < T->cn; ++c, ++a, ++b) {
                const int32_t acc = align_q(*a, L->align_a) + align_q(*b, L->align_b);
                aidi_nvm_w16(&out_r[c], aidi_clamp_hi(aidi_finalize(acc, L->shift, L->relu), L->act_max));
            }
        }
    }
}
