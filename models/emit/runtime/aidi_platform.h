/*
 * aidi platform layer: what differs between the host, mspdebug's simulator and
 * a real MSP430FR5994.
 *
 * Exactly one target macro is defined by the Makefile:
 *   AIDI_TARGET_HOST        gcc on the build machine; NVM is plain memory that
 *                           host_main.c snapshots, wipes and fails on purpose
 *   AIDI_TARGET_MSP430_SIM  clang --target=msp430 + ld.lld, own start code and
 *                           compiler helpers, runs on `mspdebug sim`
 *   AIDI_TARGET_MSP430_HW   msp430-elf-gcc (or TI cl430) with the TI device
 *                           headers, linker script and (optionally) DSPLib/LEA
 *
 * Memory classes:
 *   AIDI_PERSISTENT(name)  prefix of a definition that must live in FRAM and
 *                          keep its value across power failures (and is
 *                          initialised when the device is programmed, never at
 *                          boot). Always give such variables an initialiser.
 *   AIDI_SRAM_BUFFERS      attribute of the SRAM arena (LEA RAM with LEA, when
 *                          the plan runs a layer on it).
 *
 * Every write to FRAM that matters for resuming goes through aidi_nvm_w16 /
 * aidi_nvm_wu16 so the host build can count writes and cut the power after
 * any of them.
 */
#ifndef AIDI_PLATFORM_H
#define AIDI_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#if !defined(AIDI_TARGET_HOST) && !defined(AIDI_TARGET_MSP430_SIM) && !defined(AIDI_TARGET_MSP430_HW)
#error "define one of AIDI_TARGET_HOST, AIDI_TARGET_MSP430_SIM, AIDI_TARGET_MSP430_HW"
#endif

#define AIDI_STRINGIFY_(x) #x
#define AIDI_PRAGMA_(x) _Pragma(AIDI_STRINGIFY_(x))

/* C99 has no _Static_assert: a negative array size stops the build instead. */
#define AIDI_STATIC_ASSERT(cond, tag) typedef char aidi_static_assert_##tag[(cond) ? 1 : -1]

#if defined(AIDI_TARGET_HOST)
#define AIDI_PERSISTENT(name)
#elif defined(__TI_COMPILER_VERSION__)
#define AIDI_PERSISTENT(name) AIDI_PRAGMA_(PERSISTENT(name))
#else
#define AIDI_PERSISTENT(name) __attribute__((section(".persistent")))
#endif

#if defined(AIDI_BACKEND_LEA) && defined(AIDI_TARGET_MSP430_HW) && AIDI_ARENA_IN_LEA_RAM
/* DSPLib's convention: LEA operands live in the LEA RAM (0x2C00-0x3AC7), 4-byte aligned. The plan keeps
   the arena within it when a layer runs on the LEA (AIDI_ARENA_IN_LEA_RAM, aidi_model.h). */
#define AIDI_SRAM_BUFFERS __attribute__((section(".leaRAM"), aligned(4)))
#elif defined(__GNUC__)
#define AIDI_SRAM_BUFFERS __attribute__((aligned(4)))
#else
#define AIDI_SRAM_BUFFERS
#endif

#if defined(__GNUC__)
#define AIDI_NOINLINE __attribute__((noinline, used))
#else
#define AIDI_NOINLINE
#endif

/* ---- NVM (FRAM) writes ------------------------------------------------- */
#if defined(AIDI_TARGET_HOST)
/* Counts the write; may simulate a power failure right after it (longjmp). */
void aidi_host_nvm_wrote(void);
static inline void aidi_nvm_w16(int16_t *p, int16_t v) { *p = v; aidi_host_nvm_wrote(); }
static inline void aidi_nvm_wu16(uint16_t *p, uint16_t v) { *p = v; aidi_host_nvm_wrote(); }
#else
/* volatile keeps the program order of FRAM writes: data before the commit. */
static inline void aidi_nvm_w16(int16_t *p, int16_t v) { *(volatile int16_t *)p = v; }
static inline void aidi_nvm_wu16(uint16_t *p, uint16_t v) { *(volatile uint16_t *)p = v; }
#endif

/* ---- 16x16 -> 32 bit signed multiply ---------------------------------- */
#if defined(AIDI_TARGET_MSP430_SIM)
/* No hardware multiplier assumed: shift-and-add in aidi_mspabi.c, or the
 * classic MPY peripheral (mspdebug's `simio add hwmult`, base 0x0130) when
 * built with AIDI_SIM_HWMULT=1. */
int32_t aidi_mul16(int16_t a, int16_t b);
#else
/* host: native; MSP430 hardware: the compiler uses MPY32 (-mhwmult=f5series). */
static inline int32_t aidi_mul16(int16_t a, int16_t b) { return (int32_t)a * (int32_t)b; }
#endif

/* ---- supply voltage (energy_aware dispatch) ----------------------------- */
/* aidi_vcc_mv: the storage capacitor's voltage in mV, rounded down.
 * aidi_vcc_wait_mv: returns once it is at least `mv` (sleeping meanwhile).
 *   host            the harness's simulated capacitor (host_main.c, --capacitor)
 *                   or, without it, 65535 mV (never waits)
 *   MSP430 sim      the FRAM word aidi_sim_vcc_mv, which the test harness writes
 *                   (mspdebug `mw aidi_sim_vcc_mv LO HI`); programmed as
 *                   AIDI_SIM_VCC_MV_INIT; the wait polls it (the comparator's stand-in)
 *   MSP430FR5994    ADC12_B on the internal AVCC/2 channel against REF_A 2.5 V, and
 *                   LPM3 until COMP_E's interrupt (platform_msp430.c) */
uint16_t aidi_vcc_mv(void);
void aidi_vcc_wait_mv(uint16_t mv);

#if defined(AIDI_TARGET_HOST)
void aidi_host_unit(uint32_t g); /* the harness's capacitor: unit g starts now */
#define AIDI_UNIT_HOOK(g) aidi_host_unit(g)
#else
#define AIDI_UNIT_HOOK(g) ((void)0)
#endif

/* ---- hooks ------------------------------------------------------------- */
void aidi_platform_init(void);      /* every boot, before anything else (watchdog, GPIO lock) */
void aidi_layer_mark(uint16_t layer); /* entered when layer `layer` starts from its first unit
                                         (and with AIDI_N_LAYERS before aidi_done): a breakpoint
                                         target for cycle measurements */
void aidi_done(void);                /* entered when the inference is complete */

#endif /* AIDI_PLATFORM_H */
