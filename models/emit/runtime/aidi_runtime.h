/*
 * aidi runtime: intermittent-safe tiled execution of a Q15 network.
 *
 * Execution model
 * ---------------
 * Layer l is cut into tiles (Tm output channels x Tr rows x Tc columns from
 * Tn input channels) enumerated in the order of its loop nest. S consecutive
 * tiles form one *unit*; units are numbered globally over the network, and
 * after every unit the index of the next unit is committed to FRAM. A boot
 * resumes at the first uncommitted unit; whatever that unit had written
 * before the power failed is simply written again.
 *
 * Why re-executing a unit is harmless (idempotence)
 * -------------------------------------------------
 * - activations: every tensor has its place in FRAM (aidi_act, laid out
 *   by the planner from the tensors' lifetimes); a layer's output never
 *   overlaps an input it reads (the planner refuses such a plan), and a
 *   unit rewrites exactly the outputs it owns (a concat's producer: its
 *   channel slice of the shared tensor);
 * - partial sums (layers with input-channel tiling): every output block has
 *   two int32 slots in FRAM. With k = the number of earlier units that
 *   touched the block, its committed value is in slot k % 2 and the unit
 *   writes slot (k + 1) % 2 only. k is a pure function of the tile and unit
 *   indices (aidi_block_version), so a re-executed unit reads the
 *   same committed slot and recomputes the same values; a torn 32-bit write
 *   only ever hits the slot nobody has committed;
 * - progress: two records {g_lo, g_hi, ~g_lo, ~g_hi}; g_hi's top two bits
 *   are an epoch e (one inference = one epoch), the other 30 bits the
 *   progress g of that inference. A commit rewrites the record that does
 *   not hold the newest state, complement words last. A record is valid iff
 *   the complements match; a torn record is either invalid or already holds
 *   the new state. The newest valid record wins: of two records of one epoch
 *   the larger g, else the epoch that is one ahead (mod 4) of the other.
 *   None valid (a freshly programmed device): epoch 0, g = 0.
 *
 * The library call (aidi_infer) and power failures
 * ------------------------------------------------
 * g in [0, AIDI_TOTAL_UNITS) : an inference is running, unit g is next;
 * g == AIDI_TOTAL_UNITS       : it is complete, the output not yet delivered;
 * g == AIDI_TOTAL_UNITS + 1   : delivered (copied to the caller's buffer).
 * aidi_infer(input, output) resumes a running or complete inference and
 * returns its output; called in the delivered state it starts a new one
 * (epoch + 1, g = 0). An application that loses power inside aidi_infer
 * calls it again after the reboot with the same input (which must stay
 * unchanged, e.g. in FRAM, until the call returns) and gets the same output
 * as without the failure. Losing power after the delivery commit but before
 * the return only costs a recomputation of the same output.
 *
 * Energy-aware dispatch (AIDI_DISPATCH_ENERGY_AWARE, aidi_model.h)
 * ---------------------------------------------------------------
 * Before each unit (after a boot or a commit) the runtime needs V at the
 * unit's start threshold aidi_v_start_mv[g]: the simulator's
 * V_start = sqrt(V_off^2 + 2 E_need / C) (aidi.sim.workload.start_thresholds),
 * rounded up to whole millivolts, so a started unit completes with no
 * harvest. It keeps in SRAM a lower bound K on V^2 (mV^2; 0, unknown, at
 * every aidi_infer call; aidi_v_boot_mv2 at an aidi_infer_at_boot call, the
 * boot path's: V_on^2 - 2 E_boot_need / C rounded down, as the simulator's
 * aidi.sim.workload.boot_known, since the device boots only once the
 * capacitor reaches V_on and the boot takes at most E_boot_need, its energy
 * through the converter plus leakage at V_max). If K >= V_start^2 the unit
 * starts at once; otherwise the runtime reads the supply voltage
 * (aidi_vcc_mv) and, below the threshold, sleeps until it is reached
 * (aidi_vcc_wait_mv). K is then the reading squared (or V_start^2 after a
 * wait) less aidi_v_drop_mv2[g] = 2 E_need / C rounded up
 * (aidi.sim.workload.known_drops): what the unit can take out of the
 * capacitor whatever the source gives, so K stays below the real V^2.
 * Correctness never depends on any of it: a unit cut anyway is re-executed
 * as above.
 */
#ifndef AIDI_RUNTIME_H
#define AIDI_RUNTIME_H

/* generated: sizes and counts of this network (AIDI_N_LAYERS, AIDI_TOTAL_UNITS,
   AIDI_OUTPUT_LEN, AIDI_PSUM_LEN, ...) and its SRAM arena (aidi_arena_t, AIDI_ARENA_BYTES,
   AIDI_SRAM_BYTES, ...); first, since the platform layer places the arena by it */
#include "aidi_model.h"
#include "aidi_platform.h"

enum {
    AIDI_OP_CONV = 0,    /* conv, pwconv (1x1) and fc (1x1 over the flattened input) */
    AIDI_OP_DWCONV = 1,
    AIDI_OP_MAXPOOL = 2,
    AIDI_OP_AVGPOOL = 3, /* avgpool and gap (a window over the whole input) */
    AIDI_OP_RELU = 4,
    AIDI_OP_ADD = 5      /* residual add of two tensors (aidi.models.ops) */
};

/* tile dimensions, the index into aidi_layer_t.tile / .count / .nest */
enum { AIDI_DIM_R = 0, AIDI_DIM_C = 1, AIDI_DIM_M = 2, AIDI_DIM_N = 3 };

typedef struct {
    uint8_t op;          /* AIDI_OP_* */
    uint8_t relu;        /* fused ReLU */
    uint8_t shift;       /* rounding right shift of the accumulator */
    uint8_t stride_h, stride_w; /* strides along rows and columns */
    uint8_t pad_t, pad_l; /* zero padding above and left (below and right follow from the shapes) */
    uint8_t kh, kw;      /* kernel / pooling window */
    uint8_t align_a, align_b; /* add: left shifts aligning its two inputs' formats (<= 15) */
    int16_t act_max;     /* upper clamp of the output (relu6: 6.0 in the output's format; else INT16_MAX) */
    uint8_t nest[4];     /* loop nest over AIDI_DIM_*, outermost first */
    uint16_t in_c, in_h, in_w;    /* input as the kernels see it (fc: C*H*W, 1, 1) */
    uint16_t out_c, out_h, out_w;
    uint16_t tile[4];    /* tile sizes Tr, Tc, Tm, Tn (clipped to the layer) */
    uint16_t count[4];   /* tiles along each dimension */
    uint16_t S;          /* tiles per unit (hyper-tile) */
    uint16_t w_stride;   /* int16 per output channel in the weight tile (even) */
    uint32_t stride_n;   /* distance between consecutive input-channel tiles of a block */
    uint32_t n_tiles;
    uint32_t n_units;
    uint32_t unit_base;  /* global index of the layer's first unit */
    const int16_t *weight; /* [out_c][in_c][kh][kw]; dwconv [out_c][1][kh][kw] */
    const int32_t *bias;   /* [out_c] */
    const int16_t *in;     /* FRAM input activation, CHW (0: aidi_infer's input) */
    const int16_t *in2;    /* add: the second input (0: aidi_infer's input; unused otherwise) */
    int16_t *out;          /* FRAM output activation, CHW (a concat's producer: its channel slice) */
    /* the layer's rows of the SRAM arena (aidi_arena.l<i>, aidi_model.h; 0: no such row). int32 rows
       first and rows 4-byte aligned: LEA operands */
    int32_t *sram_acc;     /* accumulators of one output block [mn][rn][cn] */
    int32_t *sram_mac;     /* LEA layers: msp_mac_q15's result */
    uint32_t *sram_wabs;   /* LEA layers: sum |w| per output channel of the weight tile */
    int16_t *sram_vec;     /* LEA layers: one im2col input vector (a layer runs the LEA kernel iff set) */
    int16_t *sram_w;       /* weight tile [mn][w_stride] */
    int16_t *sram_in;      /* input tile [nn][tri][tci], zero padded */
} aidi_layer_t;

/* NVM regions (FRAM that the runtime writes), for the host harness. */
typedef struct {
    void *ptr;
    size_t bytes;
} aidi_region_t;

/* One tile: origin and extent in elements. */
typedef struct {
    uint16_t m0, mn;     /* output channels */
    uint16_t r0, rn;     /* output rows */
    uint16_t c0, cn;     /* output columns */
    uint16_t n0, nn;     /* input channels (= m0, mn for channel-tied ops) */
    uint16_t tri, tci;   /* rows / columns of the input tile */
} aidi_tile_t;

/* SRAM: one arena (AIDI_ARENA_BYTES, laid out per layer by the plan: aidi_arena_t in aidi_model.h;
 * in LEA RAM when a layer runs on the LEA), the runtime's fixed state (AIDI_SRAM_STATE_BYTES: the
 * fetch cache and the call's state, aidi_runtime.c) and the stack reserve (AIDI_STACK_BYTES): together
 * AIDI_SRAM_BYTES, the plan's one SRAM figure. Nothing else of the runtime lives in SRAM. */
extern aidi_arena_t aidi_arena;

/* generated tables and FRAM buffers */
extern const aidi_layer_t aidi_layers[AIDI_N_LAYERS];
extern uint16_t aidi_psum[2][AIDI_PSUM_LEN][2]; /* two int32 slots per element, as words */
extern int16_t aidi_output[AIDI_OUTPUT_LEN];
extern const aidi_region_t aidi_nvm_regions[];
extern const uint16_t aidi_n_nvm_regions;

/* ---- the library ------------------------------------------------------ */
/* Computes the network's output for `input` (AIDI_INPUT_LEN int16: Q15, CHW,
 * shape AIDI_INPUT_C x AIDI_INPUT_H x AIDI_INPUT_W) into `output`
 * (AIDI_OUTPUT_LEN int16), resuming an inference that a power failure cut
 * (see above). `input` must stay unchanged until the call returns; `output`
 * is written only at the end. No allocation, no I/O; the caller owns the MCU
 * (clocks, watchdog: aidi_platform_init does the minimum). */
void aidi_infer(const int16_t *input, int16_t *output);

/* aidi_infer for the boot path: call it only first thing after a reset (the
 * device booted at V_on and nothing but the boot has drawn from the capacitor
 * since, e.g. the resumed call after a power failure). Under energy_aware it
 * starts from what the boot leaves known of V (aidi_v_boot_mv2) instead of
 * measuring; otherwise it is aidi_infer. A second call in the same power
 * cycle must be aidi_infer (V is unknown again). */
void aidi_infer_at_boot(const int16_t *input, int16_t *output);

/* The committed progress of the current inference: the next unit, AIDI_TOTAL_UNITS
 * when complete, AIDI_TOTAL_UNITS + 1 once delivered. */
uint32_t aidi_progress_load(void);

/* ---- the sample application (host harness and simulator build only) --- */
/* Every boot: aidi_platform_init, aidi_infer_at_boot on the embedded sample input
 * (aidi_sample_input, src/aidi_sample.c) into aidi_sample_output, aidi_done. */
void aidi_boot(void);
#if defined(AIDI_MICROBENCH)
void aidi_microbench_commit(uint32_t g); /* one progress commit (the microbench times it) */
#endif
extern const int16_t aidi_sample_input[AIDI_INPUT_LEN];
extern int16_t aidi_sample_output[AIDI_OUTPUT_LEN];

#if AIDI_DISPATCH_ENERGY_AWARE
/* start threshold of every unit (mV, rounded up from the simulator's V_start) */
extern const uint16_t aidi_v_start_mv[AIDI_TOTAL_UNITS];
/* what each unit takes off the known lower bound on V^2 (mV^2, 2 E_need / C rounded up) */
extern const uint32_t aidi_v_drop_mv2[AIDI_TOTAL_UNITS];
/* what the runtime knows of V^2 right after a boot (mV^2, rounded down; see above) */
extern const uint32_t aidi_v_boot_mv2;
#endif

/* k: the number of units before unit u (of S tiles) that touched the output
 * block of tile t, whose input-channel tile index is ni; the block's tiles
 * are stride apart in the tile sequence. Mirrored by ir.block_version. */
uint32_t aidi_block_version(uint32_t t, uint16_t ni, uint32_t stride, uint32_t u, uint16_t S);

/* SRAM state, for the host harness (wiped on every simulated power failure):
 * the arena (i = 0) and the runtime's state (i = 1); NULL past the last. */
void *aidi_sram_state(int i, size_t *bytes);

/* FRAM progress records (part of the NVM image). */
extern uint16_t aidi_progress[2][4];

#endif /* AIDI_RUNTIME_H */
