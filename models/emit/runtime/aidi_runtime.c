/*
 * aidi runtime: the unit scheduler, tile fetches, partial sums and the
 * progress commit. See aidi_runtime.h for the protocol and its argument.
 */
#include "aidi_runtime.h"

#include "aidi_kernels.h"
#include "aidi_q15.h"

/* ---- SRAM: the arena (tile buffers, laid out per layer by the plan; lost at every power failure) */
aidi_arena_t aidi_arena AIDI_SRAM_BUFFERS;

/* ---- SRAM: the runtime's state (lost at every power failure; set up again by every aidi_infer) ---- */
typedef struct {
    /* fetch cache: which tile the arena holds (reset at boot) */
    const aidi_layer_t *in_layer, *w_layer, *co_layer;
    uint16_t in_n0, in_r0, in_c0, w_m0, w_n0;
    uint16_t co[4];        /* coordinates of tile co_t of co_layer */
    uint32_t co_t;
    /* the call */
    const int16_t *input;  /* the caller's input: what layer 0 reads */
    uint32_t g;            /* progress of the current inference */
    uint16_t epoch;        /* its epoch (0..3) */
    uint16_t slot;         /* the progress record holding it (2: none valid) */
    uint32_t known_mv2;    /* energy_aware: a lower bound on V^2 (mV^2) the MCU knows; 0: unknown */
    uint16_t pad;          /* a multiple of 4 bytes: no gap next to the arena */
} aidi_state_t;
static aidi_state_t aidi_state;
#if defined(__MSP430__) && !defined(__MSP430X_LARGE__)
/* the plan counts these bytes (aidi.models.schedule.memory.RUNTIME_STATE_BYTES; small memory model) */
AIDI_STATIC_ASSERT(sizeof(aidi_state_t) == AIDI_SRAM_STATE_BYTES, runtime_state_bytes);
#endif

void *aidi_sram_state(int i, size_t *bytes)
{
    if (i == 0) {
        *bytes = sizeof aidi_arena;
        return &aidi_arena;
    }
    if (i == 1) {
        *bytes = sizeof aidi_state;
        return &aidi_state;
    }
    *bytes = 0;
    return 0;
}

/* ---- FRAM: progress records ------------------------------------------- */
/* All zero (both invalid) is the programmed state: epoch 0, unit 0. */
AIDI_PERSISTENT(aidi_progress)
uint16_t aidi_progress[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};

#define AIDI_G_MASK 0x3FFFFFFFUL /* g: 30 bits; the epoch is in the top two bits of g_hi */

static int progress_valid(const uint16_t *rec)
{
    return (uint16_t)(rec[0] ^ rec[2]) == 0xFFFFu && (uint16_t)(rec[1] ^ rec[3]) == 0xFFFFu;
}

static uint32_t progress_value(const uint16_t *rec)
{
    return (((uint32_t)rec[1] << 16) | rec[0]) & AIDI_G_MASK;
}

static uint16_t progress_epoch(const uint16_t *rec)
{
    return (uint16_t)(rec[1] >> 14);
}

/* the newest valid record into aidi_state (g, epoch, slot) */
static void progress_find(void)
{
    const uint16_t *a = aidi_progress[0], *b = aidi_progress[1];
    uint16_t s;
    if (progress_valid(a) && progress_valid(b)) {
        const uint16_t ea = progress_epoch(a), eb = progress_epoch(b);
        if (ea == eb) s = progress_value(b) > progress_value(a) ? 1u : 0u;
        else s = ((eb - ea) & 3u) == 1u ? 1u : 0u; /* b's epoch one ahead of a's */
    } else if (progress_valid(a)) {
        s = 0;
    } else if (progress_valid(b)) {
        s = 1;
    } else {
        aidi_state.g = 0;
        aidi_state.epoch = 0;
        aidi_state.slot = 2;
        return;
    }
    aidi_state.g = progress_value(aidi_progress[s]);
    aidi_state.epoch = progress_epoch(aidi_progress[s]);
    aidi_state.slot = s;
}

uint32_t aidi_progress_load(void)
{
    progress_find();
    return aidi_state.g;
}

/* commit (epoch, g) into the record that does not hold the newest state */
static void progress_commit(uint16_t epoch, uint32_t g)
{
    const uint16_t s = aidi_state.slot == 0 ? 1u : 0u;
    uint16_t *rec = aidi_progress[s];
    uint16_t lo = (uint16_t)(g & 0xFFFFu), hi = (uint16_t)((g >> 16) | ((uint32_t)epoch << 14));
    aidi_nvm_wu16(&rec[0], lo);
    aidi_nvm_wu16(&rec[1], hi);
    aidi_nvm_wu16(&rec[2], (uint16_t)~lo);
    aidi_nvm_wu16(&rec[3], (uint16_t)~hi);
    aidi_state.g = g;
    aidi_state.epoch = epoch;
    aidi_state.slot = s;
}

#if defined(AIDI_MICROBENCH)
/* one progress commit as the scheduler makes it, for the microbench (aidi_microbench.c) */
void aidi_microbench_commit(uint32_t g)
{
    progress_commit(aidi_state.epoch, g);
}
#endif

/* ---- partial sums: slot s of element e is aidi_psum[s][e], as two words --- */
static int32_t psum_read(uint16_t slot, size_t e)
{
    const uint16_t *p = aidi_psum[slot][e];
    return (int32_t)(((uint32_t)p[1] << 16) | p[0]);
}

static void psum_write(uint16_t slot, size_t e, int32_t v)
{
    uint16_t *p = aidi_psum[slot][e];
    uint32_t u = (uint32_t)v;
    aidi_nvm_wu16(&p[0], (uint16_t)(u & 0xFFFFu)); /* a failure here tears the value: */
    aidi_nvm_wu16(&p[1], (uint16_t)(u >> 16));     /* harmless, nobody committed this slot */
}

uint32_t aidi_block_version(uint32_t t, uint16_t ni, uint32_t stride, uint32_t u, uint16_t S)
{
    /* The block's tiles are t0 + j * stride (j = input-channel tile), t0 = t - ni * stride. */
    if (ni == 0) return 0;
    /* stride >= S: every touch in a unit of its own, all ni earlier ones before u */
    if (stride >= S) return ni;
    /* stride < S: consecutive touches are at most one unit apart, so the units
       before u that touched the block are exactly unit(t0) .. u - 1 */
    return u - (t - (uint32_t)ni * stride) / S;
}

/* ---- tile enumeration ------------------------------------------------- */
static void tile_decode(const aidi_layer_t *L, uint32_t t, uint16_t co[4])
{
    int16_t i;
    for (i = 3; i >= 0; --i) {
        uint16_t d = L->nest[i];
        co[d] = (uint16_t)(t % L->count[d]);
        t /= L->count[d];
    }
}

static void tile_advance(const aidi_layer_t *L, uint16_t co[4])
{
    int16_t i;
    for (i = 3; i >= 0; --i) {
        uint16_t d = L->nest[i];
        if (++co[d] < L->count[d]) return;
        co[d] = 0;
    }
}

static uint16_t extent(uint16_t origin, uint16_t size, uint16_t total)
{
    return (uint16_t)(total - origin < size ? total - origin : size);
}

static void tile_geometry(const aidi_layer_t *L, const uint16_t co[4], aidi_tile_t *T)
{
    T->r0 = (uint16_t)(co[AIDI_DIM_R] * L->tile[AIDI_DIM_R]);
    T->c0 = (uint16_t)(co[AIDI_DIM_C] * L->tile[AIDI_DIM_C]);
    T->m0 = (uint16_t)(co[AIDI_DIM_M] * L->tile[AIDI_DIM_M]);
    T->rn = extent(T->r0, L->tile[AIDI_DIM_R], L->out_h);
    T->cn = extent(T->c0, L->tile[AIDI_DIM_C], L->out_w);
    T->mn = extent(T->m0, L->tile[AIDI_DIM_M], L->out_c);
    if (L->op == AIDI_OP_CONV) {
        T->n0 = (uint16_t)(co[AIDI_DIM_N] * L->tile[AIDI_DIM_N]);
        T->nn = extent(T->n0, L->tile[AIDI_DIM_N], L->in_c);
    } else {
        T->n0 = T->m0;
        T->nn = T->mn;
    }
    T->tri = (uint16_t)((T->rn - 1) * L->stride_h + L->kh);
    T->tci = (uint16_t)((T->cn - 1) * L->stride_w + L->kw);
}

/* ---- fetches FRAM -> SRAM (skipped when the tile is already there) ----- */
static void fetch_input(const aidi_layer_t *L, const aidi_tile_t *T)
{
    uint16_t n, i, j, k;
    int16_t *dst = L->sram_in;
    const int16_t y0 = (int16_t)(T->r0 * L->stride_h) - L->pad_t; /* padded coordinates */
    const int16_t x0 = (int16_t)(T->c0 * L->stride_w) - L->pad_l;
    const size_t plane = (size_t)L->in_h * L->in_w;
    if (aidi_state.in_layer == L && aidi_state.in_n0 == T->n0 && aidi_state.in_r0 == T->r0 &&
        aidi_state.in_c0 == T->c0)
        return;
    for (k = 0; k < (L->op == AIDI_OP_ADD ? 2u : 1u); ++k) { /* an add's two tiles, one after the other */
    const int16_t *src = k ? L->in2 : L->in;
    const int16_t *src_n = (src ? src : aidi_state.input) + (size_t)T->n0 * plane; /* 0: the caller's input */
    for (n = 0; n < T->nn; ++n, src_n += plane) {
        int16_t y = y0;
        for (i = 0; i < T->tri; ++i, ++y) {
            if (y < 0 || y >= (int16_t)L->in_h) {
                for (j = 0; j < T->tci; ++j) *dst++ = 0;
            } else {
                const int16_t *row = src_n + (size_t)y * L->in_w;
                int16_t x = x0;
                for (j = 0; j < T->tci; ++j, ++x) *dst++ = (x < 0 || x >= (int16_t)L->in_w) ? 0 : row[x];
            }
        }
    }
    }
    aidi_state.in_layer = L;
    aidi_state.in_n0 = T->n0;
    aidi_state.in_r0 = T->r0;
    aidi_state.in_c0 = T->c0;
}

static void fetch_weights(const aidi_layer_t *L, const aidi_tile_t *T)
{
    uint16_t m, k;
    const int dw = L->op == AIDI_OP_DWCONV;
    const size_t per_n = (size_t)L->kh * L->kw;
    const uint16_t len = (uint16_t)((dw ? 1 : T->nn) * per_n);
    const size_t src_step = dw ? per_n : L->in_c * per_n; /* one filter */
    const int16_t *src = L->weight + (size_t)T->m0 * src_step + (dw ? 0 : T->n0 * per_n);
    int16_t *dst = L->sram_w;
    if (aidi_state.w_layer == L && aidi_state.w_m0 == T->m0 && aidi_state.w_n0 == T->n0) return;
    for (m = 0; m < T->mn; ++m, src += src_step, dst += L->w_stride) {
        for (k = 0; k < len; ++k) dst[k] = src[k]; /* [n][kh][kw] of one filter is contiguous */
        if (len & 1u) dst[len] = 0;
    }
    aidi_state.w_layer = L;
    aidi_state.w_m0 = T->m0;
    aidi_state.w_n0 = T->n0;
}

/* ---- one tile of a weighted layer -------------------------------------- */
static void weighted_tile(const aidi_layer_t *L, const aidi_tile_t *T, const uint16_t co[4],
                          uint32_t t, uint32_t u, uint32_t first, uint32_t end)
{
    int32_t *acc = L->sram_acc;
    const uint16_t ni = co[AIDI_DIM_N], last_n = (uint16_t)(L->count[AIDI_DIM_N] - 1);
    /* consecutive tiles of one block (stride_n == 1) keep the sum in SRAM within a unit */
    const int same_prev = L->stride_n == 1 && ni > 0 && t > first;
    const int same_next = L->stride_n == 1 && ni < last_n && t + 1 < end;
    /* partial-sum slots: committed k % 2, written (k + 1) % 2 */
    const uint32_t k = aidi_block_version(t, ni, L->stride_n, u, L->S);
    const uint16_t wslot = (uint16_t)((k + 1) & 1u);
    const size_t plane = (size_t)L->out_h * L->out_w;
    const size_t e0 = (size_t)T->m0 * plane + (size_t)T->r0 * L->out_w + T->c0;
    uint16_t m, r, c;

    fetch_input(L, T);
    fetch_weights(L, T);
    if (!same_prev) {
        /* the block's first touch in this unit reads the committed slot, a later
           (non-adjacent) one the slot this unit has been writing */
        const uint16_t rslot = (uint16_t)((t < first + L->stride_n ? k : k + 1) & 1u);
        int32_t *a = acc;
        for (m = 0; m < T->mn; ++m) {
            size_t e = e0 + m * plane;
            for (r = 0; r < T->rn; ++r, e += L->out_w)
                for (c = 0; c < T->cn; ++c) *a++ = ni == 0 ? L->bias[T->m0 + m] : psum_read(rslot, e + c);
        }
    }
    aidi_conv_tile(L, T, acc, L->sram_in, L->sram_w);
    if (same_next) return;
    for (m = 0; m < T->mn; ++m) {
        size_t e = e0 + m * plane;
        for (r = 0; r < T->rn; ++r, e += L->out_w) {
            for (c = 0; c < T->cn; ++c, ++acc) {
                if (ni == last_n)
                    aidi_nvm_w16(&L->out[e + c], aidi_clamp_hi(aidi_finalize(*acc, L->shift, L->relu), L->act_max));
                else
                    psum_write(wslot, e + c, *acc);
            }
        }
    }
}

static void run_unit(const aidi_layer_t *L, uint32_t u)
{
    uint32_t first = u * L->S, t;
    uint32_t end = first + L->S < L->n_tiles ? first + L->S : L->n_tiles;
    aidi_tile_t T;
    /* tile coordinates carry over from the previous unit of this boot */
    if (aidi_state.co_layer != L || aidi_state.co_t != first) tile_decode(L, first, aidi_state.co);
    for (t = first; t < end; ++t) {
        tile_geometry(L, aidi_state.co, &T);
        if (L->op == AIDI_OP_CONV || L->op == AIDI_OP_DWCONV) {
            weighted_tile(L, &T, aidi_state.co, t, u, first, end);
        } else {
            fetch_input(L, &T);
            if (L->op == AIDI_OP_ADD) aidi_add_tile(L, &T, L->sram_in);
            else aidi_pool_tile(L, &T, L->sram_in);
        }
        tile_advance(L, aidi_state.co);
    }
    aidi_state.co_layer = L;
    aidi_state.co_t = end;
}

/* energy_aware: unit g starts at once if the known lower bound on V^2 is at its start threshold; else
   measure V and sleep until it reaches the threshold. The bound then drops by what unit g can take
   (aidi_v_drop_mv2[g], rounded up), from the measurement (rounded down) or the threshold waited for. */
static void dispatch(uint32_t g)
{
#if AIDI_DISPATCH_ENERGY_AWARE
    const uint16_t v_start = aidi_v_start_mv[g];
    const uint32_t start2 = (uint32_t)v_start * v_start, drop = aidi_v_drop_mv2[g];
    uint32_t ref = aidi_state.known_mv2;
    if (ref < start2) {
        const uint16_t v = aidi_vcc_mv();
        if (v < v_start) {
            aidi_vcc_wait_mv(v_start);
            ref = start2;
        } else {
            ref = (uint32_t)v * v;
        }
    }
    aidi_state.known_mv2 = ref > drop ? ref - drop : 0; /* holds once unit g completes; a failure forgets it */
#else
    (void)g;
#endif
}

/* aidi_infer from a known lower bound on V^2 (mV^2; 0: unknown) */
static void infer(const int16_t *input, int16_t *output, uint32_t known_mv2)
{
    uint16_t l = 0;
    /* SRAM holds junk after a power failure: forget every cached tile */
    aidi_state.in_layer = 0;
    aidi_state.w_layer = 0;
    aidi_state.co_layer = 0;
    aidi_state.known_mv2 = known_mv2;
    aidi_state.input = input;
    progress_find();
    if (aidi_state.g > AIDI_TOTAL_UNITS) progress_commit((uint16_t)((aidi_state.epoch + 1u) & 3u), 0); /* a new inference */
    while (aidi_state.g < AIDI_TOTAL_UNITS) {
        const uint32_t g = aidi_state.g;
        const aidi_layer_t *L;
        while (g >= aidi_layers[l].unit_base + aidi_layers[l].n_units) ++l;
        L = &aidi_layers[l];
        if (g == L->unit_base) aidi_layer_mark(l);
        dispatch(g);
        AIDI_UNIT_HOOK(g);
        run_unit(L, g - L->unit_base);
        progress_commit(aidi_state.epoch, g + 1);
    }
    /* complete (now, or before a power failure cut the delivery) */
    aidi_layer_mark(AIDI_N_LAYERS);
    if (output != aidi_output) {
        uint16_t i;
        for (i = 0; i < AIDI_OUTPUT_LEN; ++i) output[i] = aidi_output[i];
    }
    progress_commit(aidi_state.epoch, AIDI_TOTAL_UNITS + 1); /* delivered */
}

void aidi_infer(const int16_t *input, int16_t *output)
{
    infer(input, output, 0); /* the supply voltage is not known yet */
}

void aidi_infer_at_boot(const int16_t *input, int16_t *output)
{
#if AIDI_DISPATCH_ENERGY_AWARE
    infer(input, output, aidi_v_boot_mv2); /* booted at V_on, less what the boot drew */
#else
    infer(input, output, 0);
#endif
}
