/*
 * aidi microbench: times each primitive aidi's cost model uses, with Timer_A0
 * counting SMCLK = MCLK, and prints the counts as text (`aidi calibrate` reads
 * them; format below, aidi.analysis.calibrate parses it).
 *
 * Built by `make microbench-sim` (mspdebug's simulator: its `timer` device at
 * TA0's address, its `console` device at 0x00FF as the output) or
 * `make microbench-msp430` (a real MSP430FR5994 at 16 MHz: eUSCI_A0 UART on
 * P2.0/P2.1, the LaunchPad's back-channel UART, 115200 baud 8N1). It replaces
 * the sample application (aidi_app.c): it runs no inference.
 *
 * What each primitive times (one interval of Timer_A0, minus nothing: the
 * `timer` line is an empty interval, which `aidi calibrate` subtracts):
 *   lea_mac   N  msp_mac_q15 of length N (DSPLib on the LEA with AIDI_HAVE_DSPLIB,
 *                else the runtime's bit-exact C emulation, as the simulator build runs it)
 *   dma_read  N  N words FRAM -> SRAM (the DMA controller's block transfer on the MCU;
 *                mspdebug has no DMA: a CPU word copy there, as the runtime copies tiles)
 *   dma_write N  N words SRAM -> FRAM (likewise)
 *   commit    W  one progress commit of the runtime (W = its words written)
 *   cpu_add   N  N 16-bit adds, each of two loaded words stored back
 *   cpu_mul   N  N 16x16->32 products (aidi_mul16: MPY32 on the MCU, the MPY with SIM_HWMULT=1)
 *   cpu_div   N  N 32-bit signed divisions
 *   cpu_max   N  a running maximum over N words
 *   cpu_abs   N  N absolute values of words
 *   cpu_copy  N  N words copied SRAM -> SRAM by a CPU loop
 *   cpu_mac   N  aidi_dot_sat of length N (the portable kernel's saturating Q15 MAC)
 *   measure   1  one supply-voltage reading, aidi_vcc_mv (energy_aware dispatch's measurement)
 * Each count covers the loop around its N operations too: `aidi calibrate`
 * fits cycles = slope * N + offset and keeps the slope (per operation) or both
 * (lea_mac, dma_*).
 *
 * Output format, version 1 (lines end with \n; fields separated by one space):
 *   aidi-microbench 1                     format name and version
 *   mclk_hz <Hz>                          the MCLK the counts are in
 *   build <words...>                      target, compiler flags that matter
 *   <primitive> <N> <cycles>              one per measurement (cycles of Timer_A0)
 *   burst <primitive> <N> <repeats>       energy pass: the primitive at N run <repeats> times
 *                                         in a row, after an idle gap (LPM3 on the MCU); an
 *                                         EnergyTrace recording shows one burst per line
 *   end
 */
#include "aidi_runtime.h"
#include "aidi_dsplib.h"
#include "aidi_kernels.h"
#include "aidi_q15.h"

#ifndef AIDI_MB_MCLK_HZ
#define AIDI_MB_MCLK_HZ 16000000ul
#endif
#ifndef AIDI_MB_BURST_REPEATS
#if defined(AIDI_TARGET_MSP430_HW)
#define AIDI_MB_BURST_REPEATS 2000u /* ~0.1 s per burst at 16 MHz: many EnergyTrace samples (~270 us apart) */
#else
#define AIDI_MB_BURST_REPEATS 1u
#endif
#endif
#ifndef AIDI_MB_BUILD
#define AIDI_MB_BUILD "unknown"
#endif
#define AIDI_MB_MAX_N 128u
/* the words one progress commit writes (aidi_runtime.c: aidi_progress[2][4], one record) */
#define AIDI_COMMIT_WORDS 4u

/* Timer_A0: TA0CTL 0x0340, TA0R 0x0350 on the FR5994 (SLASE54 memory map); mspdebug's simulator maps
   peripherals only below 0x0200, so its `timer` device sits at the classic Timer_A address (TACTL 0x0160,
   TAR 0x0170; the FR5994's CS registers live there). TASSEL_2 (SMCLK) 0x0200, MC_2 (continuous) 0x0020,
   TACLR 0x0004 */
#if defined(AIDI_TARGET_MSP430_SIM)
#define MB_TA_BASE 0x0160u
#else
#define MB_TA_BASE 0x0340u
#endif
#define MB_TA0CTL (*(volatile uint16_t *)MB_TA_BASE)
#define MB_TA0R (*(volatile uint16_t *)(MB_TA_BASE + 0x10u))

static void mb_putc(char c);

#if defined(AIDI_TARGET_MSP430_SIM)
/* mspdebug `simio add console`: every byte written to 0x00FF is printed */
static void mb_putc(char c)
{
    *(volatile uint8_t *)0x00FFu = (uint8_t)c;
}

static void mb_clock_init(void)
{
}

static void mb_gap(void)
{
}
#elif defined(AIDI_TARGET_MSP430_HW)
#include <msp430.h>
/* 16 MHz: FRAM one wait state first (FRCTL0 = FRCTLPW | NWAITS_1), then DCO 16 MHz (DCORSEL | DCOFSEL_4),
   MCLK = SMCLK = DCO, ACLK = VLO, dividers 1 (SLAU367 CS and FRCTL chapters). */
static void mb_clock_init(void)
{
    *(volatile uint16_t *)0x0140u = 0xA510u;  /* FRCTL0 */
    *(volatile uint16_t *)0x0160u = 0xA500u;  /* CSCTL0: unlock */
    *(volatile uint16_t *)0x0162u = 0x0048u;  /* CSCTL1: DCORSEL | DCOFSEL_4 */
    *(volatile uint16_t *)0x0164u = 0x0133u;  /* CSCTL2: SELA_VLO | SELS_DCO | SELM_DCO */
    *(volatile uint16_t *)0x0166u = 0x0000u;  /* CSCTL3: /1 */
    *(volatile uint8_t *)0x0161u = 0x00u;     /* CSCTL0_H: lock */
    /* eUSCI_A0 on P2.0 (TX) / P2.1 (RX): P2SEL1 bits 0-1 set, P2SEL0 clear */
    *(volatile uint8_t *)0x020Du |= 0x03u;
    *(volatile uint8_t *)0x020Bu &= (uint8_t)~0x03u;
    *(volatile uint16_t *)0x05C0u = 0x0081u;  /* UCA0CTLW0: UCSSEL_2 (SMCLK) | UCSWRST */
    *(volatile uint16_t *)0x05C6u = 8u;       /* UCA0BRW: 16 MHz / 115200 with UCOS16 */
    *(volatile uint16_t *)0x05C8u = 0xF7A1u;  /* UCA0MCTLW: UCBRS 0xF7, UCBRF 10, UCOS16 */
    *(volatile uint16_t *)0x05C0u &= (uint16_t)~0x0001u;
}

static void mb_putc(char c)
{
    while (!(*(volatile uint16_t *)0x05DCu & 0x0002u)) { /* UCA0IFG: UCTXIFG */
    }
    *(volatile uint16_t *)0x05CEu = (uint8_t)c; /* UCA0TXBUF */
}

/* ~50 ms of LPM3 between bursts (Timer_A1 on ACLK = VLO ~9.4 kHz, CCR0 interrupt), so that an
   EnergyTrace recording shows each burst apart */
static void mb_gap(void)
{
    while (!(*(volatile uint16_t *)0x05DCu & 0x0002u)) {
    } /* the UART's last byte out first */
    *(volatile uint16_t *)0x0392u = 470u;    /* TA1CCR0 */
    *(volatile uint16_t *)0x0382u = 0x0010u; /* TA1CCTL0: CCIE */
    *(volatile uint16_t *)0x0380u = 0x0114u; /* TA1CTL: TASSEL_1 (ACLK) | MC_1 (up) | TACLR */
    __bis_SR_register(LPM3_bits | GIE);
    *(volatile uint16_t *)0x0380u = 0;
}

__attribute__((interrupt(TIMER1_A0_VECTOR))) static void mb_gap_isr(void)
{
    *(volatile uint16_t *)0x0382u = 0;
    __bic_SR_register_on_exit(LPM3_bits | GIE);
}
#else
#error "the microbench runs on the MSP430 (AIDI_TARGET_MSP430_SIM or AIDI_TARGET_MSP430_HW)"
#endif

static void mb_puts(const char *s)
{
    while (*s) mb_putc(*s++);
}

/* v >= 0 in decimal (signed 32-bit division: the simulator build's compiler helpers have no unsigned one) */
static void mb_putu(int32_t v)
{
    char buf[11];
    uint16_t k = 0;
    do {
        buf[k++] = (char)('0' + (int16_t)(v % 10));
        v /= 10;
    } while (v);
    while (k) mb_putc(buf[--k]);
}

static void mb_line(const char *prim, uint16_t n, int32_t v)
{
    mb_puts(prim);
    mb_putc(' ');
    mb_putu(n);
    mb_putc(' ');
    mb_putu(v);
    mb_putc('\n');
}

/* ---- buffers: SRAM operands, FRAM data ---------------------------------- */
static int16_t mb_a[AIDI_MB_MAX_N] AIDI_SRAM_BUFFERS;
static int16_t mb_b[AIDI_MB_MAX_N] AIDI_SRAM_BUFFERS;
static int32_t mb_q[4];
AIDI_PERSISTENT(mb_fram)
int16_t mb_fram[AIDI_MB_MAX_N] = {1, -2, 3, -4, 5, -6, 7, -8};
static volatile int32_t mb_sink32;
static volatile int16_t mb_sink16;

#if defined(AIDI_TARGET_MSP430_HW)
/* DMA channel 0, block transfer of words, both addresses incrementing, software trigger (SLAU367 DMA) */
static void mb_dma(void *dst, const void *src, uint16_t n)
{
    *(volatile uint16_t *)0x0500u = 0;                       /* DMACTL0: DMA0TSEL 0 (DMAREQ) */
    *(volatile uint32_t *)0x0512u = (uint32_t)(uintptr_t)src; /* DMA0SA */
    *(volatile uint32_t *)0x0516u = (uint32_t)(uintptr_t)dst; /* DMA0DA */
    *(volatile uint16_t *)0x051Au = n;                       /* DMA0SZ */
    *(volatile uint16_t *)0x0510u = 0x1000u | 0x0C00u | 0x0300u | 0x0010u; /* DMADT_1, DST/SRCINCR_3, DMAEN */
    *(volatile uint16_t *)0x0510u |= 0x0001u;                             /* DMAREQ */
    while (*(volatile uint16_t *)0x0510u & 0x0010u) {
    } /* DMAEN clears at the end of the block */
}
#else
static void mb_dma(void *dst, const void *src, uint16_t n)
{
    volatile int16_t *d = (volatile int16_t *)dst;
    const volatile int16_t *s = (const volatile int16_t *)src;
    while (n--) *d++ = *s++;
}
#endif

/* ---- the primitives: one call = what one count covers ------------------- */
enum { P_TIMER, P_LEA_MAC, P_DMA_READ, P_DMA_WRITE, P_COMMIT, P_CPU_ADD, P_CPU_MUL, P_CPU_DIV, P_CPU_MAX,
       P_CPU_ABS, P_CPU_COPY, P_CPU_MAC, P_MEASURE, P_COUNT };
static const char *const mb_names[P_COUNT] = {"timer", "lea_mac", "dma_read", "dma_write", "commit", "cpu_add",
                                              "cpu_mul", "cpu_div", "cpu_max", "cpu_abs", "cpu_copy", "cpu_mac",
                                              "measure"};

static AIDI_NOINLINE void mb_run(uint16_t p, uint16_t n)
{
    uint16_t i;
    switch (p) {
    case P_LEA_MAC: {
        msp_mac_q15_params prm;
        _iq31 r;
        prm.length = n;
        msp_mac_q15(&prm, mb_a, mb_b, &r);
        mb_sink32 = r;
        break;
    }
    case P_DMA_READ: mb_dma(mb_a, mb_fram, n); break;
    case P_DMA_WRITE: mb_dma(mb_fram, mb_a, n); break;
    case P_COMMIT: aidi_microbench_commit((uint32_t)n); break;
    case P_CPU_ADD:
        for (i = 0; i < n; ++i) mb_b[i] = (int16_t)(mb_a[i] + mb_b[i]);
        break;
    case P_CPU_MUL:
        for (i = 0; i < n; ++i) mb_q[i & 3u] = aidi_mul16(mb_a[i], mb_b[i]);
        break;
    case P_CPU_DIV:
        for (i = 0; i < n; ++i) mb_q[i & 3u] = mb_q[(i + 1u) & 3u] / (int32_t)(mb_a[i] | 1);
        break;
    case P_CPU_MAX: {
        int16_t m = INT16_MIN;
        for (i = 0; i < n; ++i) m = mb_a[i] > m ? mb_a[i] : m;
        mb_sink16 = m;
        break;
    }
    case P_CPU_ABS:
        for (i = 0; i < n; ++i) mb_b[i] = (int16_t)(mb_a[i] < 0 ? -mb_a[i] : mb_a[i]);
        break;
    case P_CPU_COPY: mb_dma(mb_b, mb_a, n); break;
    case P_CPU_MAC: mb_sink32 = aidi_dot_sat(0, mb_a, mb_b, n); break;
    case P_MEASURE: mb_sink16 = (int16_t)aidi_vcc_mv(); break;
    default: break;
    }
}

static uint16_t mb_time(uint16_t p, uint16_t n)
{
    uint16_t t0, t1;
    t0 = MB_TA0R;
    mb_run(p, n);
    t1 = MB_TA0R;
    return (uint16_t)(t1 - t0);
}

/* lengths: LEA MACs are even; every count must stay below 2^16 cycles (one timer period) */
static const uint16_t mb_lengths[] = {2u, 8u, 32u, 64u, 128u};
static const uint16_t mb_cpu_lengths[] = {4u, 16u, 64u};
#define MB_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void mb_each(void (*visit)(uint16_t p, uint16_t n))
{
    uint16_t p, k;
    visit(P_MEASURE, 1u);
    visit(P_COMMIT, AIDI_COMMIT_WORDS);
    for (p = P_LEA_MAC; p <= P_DMA_WRITE; ++p)
        for (k = 0; k < MB_LEN(mb_lengths); ++k) visit(p, mb_lengths[k]);
    for (p = P_CPU_ADD; p <= P_CPU_MAC; ++p)
        for (k = 0; k < MB_LEN(mb_cpu_lengths); ++k) visit(p, mb_cpu_lengths[k]);
}

static void mb_count(uint16_t p, uint16_t n)
{
    mb_line(mb_names[p], n, mb_time(p, n));
}

static void mb_burst(uint16_t p, uint16_t n)
{
    uint16_t r;
    mb_puts("burst ");
    mb_line(mb_names[p], n, AIDI_MB_BURST_REPEATS);
    mb_gap();
    for (r = 0; r < AIDI_MB_BURST_REPEATS; ++r) mb_run(p, n);
}

void aidi_boot(void)
{
    uint16_t i;
    aidi_platform_init();
    mb_clock_init();
    for (i = 0; i < AIDI_MB_MAX_N; ++i) {
        mb_a[i] = (int16_t)(i * 37u - 2000);
        mb_b[i] = (int16_t)(1000 - i * 11u);
    }
    MB_TA0CTL = 0x0200u | 0x0020u | 0x0004u; /* SMCLK, continuous, clear */
    mb_puts("aidi-microbench 1\nmclk_hz ");
    mb_putu(AIDI_MB_MCLK_HZ);
    mb_puts("\nbuild " AIDI_MB_BUILD "\n");
    mb_count(P_TIMER, 0u);
    mb_each(mb_count);
    mb_each(mb_burst);
    mb_puts("end\n");
    aidi_done();
}

#if defined(AIDI_TARGET_MSP430_HW)
int main(void)
{
    aidi_boot();
    for (;;) {
    }
}
#endif
