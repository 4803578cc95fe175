/*
 * MSP430 platform: reset entry, watchdog, markers, supply voltage.
 *
 * AIDI_TARGET_MSP430_SIM (clang + ld.lld, no C runtime): _start is the reset
 * vector target. mspdebug's simulator starts with SP = 0 and memory full of
 * 0xFF, and after a power failure SRAM holds junk, so _start is naked: it
 * sets SP before anything is pushed and never relies on .data/.bss
 * initialisation (the linker script refuses a .data section). It runs the
 * sample application (aidi_app.c). The supply voltage is the FRAM word
 * aidi_sim_vcc_mv, which the test harness writes.
 *
 * AIDI_TARGET_MSP430_HW (msp430-elf-gcc / cl430 with TI's device files): a
 * library; the application's main() calls aidi_platform_init and
 * aidi_infer_at_boot (aidi_infer for any later call in the power cycle).
 * The voltage read and the wait use ADC12_B, REF_A and COMP_E (below).
 */
#include "aidi_runtime.h"

#if defined(AIDI_TARGET_MSP430_HW)
#include <msp430.h>
#endif

#define AIDI_WDTCTL (*(volatile uint16_t *)0x015Cu) /* FR5994 WDT_A control (SLASE54) */
#define AIDI_WDTPW_HOLD 0x5A80u                     /* WDTPW | WDTHOLD */

void aidi_platform_init(void)
{
    AIDI_WDTCTL = AIDI_WDTPW_HOLD;
#if defined(AIDI_TARGET_MSP430_HW)
#if defined(LOCKLPM5)
    PM5CTL0 &= ~LOCKLPM5; /* release the GPIO lock after LPMx.5 / BOR */
#endif
#endif
}

#if defined(AIDI_TARGET_MSP430_SIM)
/* ---- supply voltage on mspdebug's simulator ----------------------------- */
#ifndef AIDI_SIM_VCC_MV_INIT
#define AIDI_SIM_VCC_MV_INIT 3600u /* the FR5994's highest supply: no unit waits unless the harness says so */
#endif
/* The capacitor voltage (mV) as the harness sets it: `mw aidi_sim_vcc_mv LO HI`. */
AIDI_PERSISTENT(aidi_sim_vcc_mv)
volatile uint16_t aidi_sim_vcc_mv = AIDI_SIM_VCC_MV_INIT;

uint16_t aidi_vcc_mv(void)
{
    return aidi_sim_vcc_mv;
}

/* A breakpoint target (the threshold in R12); polls the word as the comparator would watch V. */
AIDI_NOINLINE void aidi_vcc_wait_mv(uint16_t mv)
{
    while (aidi_sim_vcc_mv < mv) __asm__ volatile("" : : : "memory");
}
#endif /* AIDI_TARGET_MSP430_SIM */

#if defined(AIDI_TARGET_MSP430_HW)
/* ---- supply voltage on the MSP430FR5994 ---------------------------------
 * Registers by address (TI SLASE54 memory map, SLAU367 bit fields), so that
 * only msp430.h's intrinsics are needed:
 *   REF_A   REFCTL0 0x01B0: REFON 0x0001, REFVSEL_2 (2.5 V) 0x0020, REFGENRDY 0x1000
 *   ADC12_B base 0x0800: CTL0 +0x00 (ADC12SC 0x0001, ADC12ENC 0x0002, ADC12ON 0x0010,
 *           ADC12SHT0_2 0x0200), CTL1 +0x02 (ADC12SHP 0x0200, ADC12BUSY 0x0001),
 *           CTL2 +0x04 (ADC12RES_2 0x0020: 12 bit), CTL3 +0x06 (ADC12BATMAP 0x0040),
 *           IFGR0 +0x0C, MCTL0 +0x20 (ADC12VRSEL_1 0x0100: VREF buffered / AVSS,
 *           ADC12INCH_31 0x001F), MEM0 +0x60
 *   COMP_E  base 0x08C0: CECTL0 +0x00 (CEIPEN 0x0080, CEIPSEL), CECTL1 +0x02 (CEOUT 0x0001,
 *           CEPWRMD_2 0x0200: ultra-low power, CEON 0x0400), CECTL2 +0x04 (CEREF0 taps 4:0,
 *           CERSEL 0x0020: ladder to V-, CERS_2 0x0080: shared reference on the ladder,
 *           CEREF1 taps 12:8, CEREFL_3 0x6000: 2.5 V), CECTL3 +0x06 (input buffer disable),
 *           CEINT +0x0C (CEIFG 0x0001, CEIE 0x0100); interrupt vector 52 (0xFFF8)
 * Reading: AVCC/2 (ADC12BATMAP on channel A31) against REF_A 2.5 V, 12 bit:
 *   mV = raw * 2 * 2500 / 4096 (rounded down): the MCU runs straight off the
 *   capacitor (V_off..V_max within 1.8..3.6 V).
 * Waiting: COMP_E compares the capacitor, divided by AIDI_VCAP_DIVIDER on the pin
 *   of channel AIDI_CE_VCAP_CHANNEL, with a tap of the 2.5 V ladder (32 taps:
 *   2500 * AIDI_VCAP_DIVIDER / 32 mV steps at the capacitor), the first tap at
 *   or above the threshold; LPM3 until CEOUT rises (the interrupt clears the
 *   LPM bits on return), then the ADC confirms (else it sleeps again).
 */
#ifndef AIDI_CE_VCAP_CHANNEL
#define AIDI_CE_VCAP_CHANNEL 0u /* COMP_E input C0 */
#endif
#ifndef AIDI_VCAP_DIVIDER
#define AIDI_VCAP_DIVIDER 2u /* a 1:1 resistor divider from the capacitor to that pin */
#endif
#define AIDI_REG(a) (*(volatile uint16_t *)(a))
#define AIDI_REFCTL0 AIDI_REG(0x01B0u)
#define AIDI_ADC12CTL0 AIDI_REG(0x0800u)
#define AIDI_ADC12CTL1 AIDI_REG(0x0802u)
#define AIDI_ADC12CTL2 AIDI_REG(0x0804u)
#define AIDI_ADC12CTL3 AIDI_REG(0x0806u)
#define AIDI_ADC12IFGR0 AIDI_REG(0x080Cu)
#define AIDI_ADC12MCTL0 AIDI_REG(0x0820u)
#define AIDI_ADC12MEM0 AIDI_REG(0x0860u)
#define AIDI_CECTL0 AIDI_REG(0x08C0u)
#define AIDI_CECTL1 AIDI_REG(0x08C2u)
#define AIDI_CECTL2 AIDI_REG(0x08C4u)
#define AIDI_CECTL3 AIDI_REG(0x08C6u)
#define AIDI_CEINT AIDI_REG(0x08CCu)
#define AIDI_SR_LPM3_GIE 0x00D8u /* SCG1 | SCG0 | CPUOFF | GIE */

uint16_t aidi_vcc_mv(void)
{
    uint16_t raw;
    AIDI_REFCTL0 = 0x0020u | 0x0001u; /* REFVSEL_2 | REFON */
    while (!(AIDI_REFCTL0 & 0x1000u)) {
    } /* REFGENRDY */
    AIDI_ADC12CTL0 = 0x0200u | 0x0010u; /* ADC12SHT0_2 | ADC12ON (ENC clear while configuring) */
    AIDI_ADC12CTL1 = 0x0200u;           /* ADC12SHP, MODOSC, single channel single conversion */
    AIDI_ADC12CTL2 = 0x0020u;           /* 12 bit */
    AIDI_ADC12CTL3 = 0x0040u;           /* ADC12BATMAP: A31 = AVCC / 2; start at MEM0 */
    AIDI_ADC12MCTL0 = 0x0100u | 0x001Fu; /* VREF+ buffered / AVSS, channel 31 */
    AIDI_ADC12IFGR0 = 0;
    AIDI_ADC12CTL0 |= 0x0002u | 0x0001u; /* ENC | SC */
    while (!(AIDI_ADC12IFGR0 & 0x0001u)) {
    }
    raw = AIDI_ADC12MEM0;                /* clears the flag */
    AIDI_ADC12CTL0 &= (uint16_t)~0x0002u;
    AIDI_ADC12CTL0 = 0;
    AIDI_REFCTL0 = 0;
    return (uint16_t)(((uint32_t)raw * 625u) >> 9); /* raw * 5000 / 4096 */
}

/* the first ladder tap (0..31) whose capacitor voltage is at or above mv */
static uint16_t ce_tap(uint16_t mv)
{
    const uint32_t full = 2500u * AIDI_VCAP_DIVIDER; /* mV at the capacitor for tap 31 */
    uint32_t k = ((uint32_t)mv * 32u + full - 1u) / full; /* taps are (n + 1) / 32 of full scale */
    if (k < 1u) k = 1u;
    if (k > 32u) k = 32u;
    return (uint16_t)(k - 1u);
}

void aidi_vcc_wait_mv(uint16_t mv)
{
    while (aidi_vcc_mv() < mv) {
        const uint16_t tap = ce_tap(mv);
        AIDI_REFCTL0 = 0x0020u | 0x0001u;                  /* the 2.5 V shared reference */
        AIDI_CECTL0 = 0x0080u | (AIDI_CE_VCAP_CHANNEL & 0xFu); /* V+: the divided capacitor */
        AIDI_CECTL3 = (uint16_t)(1u << (AIDI_CE_VCAP_CHANNEL & 0xFu));
        AIDI_CECTL2 = 0x6000u | 0x0080u | 0x0020u | (uint16_t)(tap << 8) | tap;
        AIDI_CECTL1 = 0x0200u | 0x0400u; /* ultra-low power, on; CEIES = 0: rising CEOUT */
        AIDI_CEINT = 0x0100u;            /* CEIE, CEIFG cleared */
        if (!(AIDI_CECTL1 & 0x0001u)) __bis_SR_register(AIDI_SR_LPM3_GIE);
        AIDI_CEINT = 0;
        AIDI_CECTL1 = 0;
        AIDI_REFCTL0 = 0;
    }
}

/* COMP_E interrupt: off, and wake the CPU (LPM bits and GIE cleared in the saved SR) */
__asm__(
    "    .section .lowtext,\"ax\",@progbits\n"
    "    .global aidi_comp_e_isr\n"
    "aidi_comp_e_isr:\n"
    "    bic #0x0101, &0x08CC\n"
    "    bic #0x00F8, 0(r1)\n"
    "    reti\n"
    "    .section __interrupt_vector_52,\"ax\",@progbits\n"
    "    .word aidi_comp_e_isr\n"
    "    .text\n");
#endif /* AIDI_TARGET_MSP430_HW */

/* Breakpoint targets; the asm keeps them (and their calls) in the binary. */
AIDI_NOINLINE void aidi_layer_mark(uint16_t layer)
{
    __asm__ volatile("" : : "r"(layer) : "memory");
}

AIDI_NOINLINE void aidi_done(void)
{
    __asm__ volatile("" : : : "memory");
}

#if defined(AIDI_TARGET_MSP430_SIM)
static void idle_forever(void)
{
    for (;;) __asm__ volatile("" : : : "memory");
}
#endif

#if defined(AIDI_TARGET_MSP430_SIM)
void aidi_reset_entry(void);

void aidi_reset_entry(void)
{
    aidi_boot();
    idle_forever();
}

/* Reset vector target: SP first (top of SRAM, 0x3C00), then C. */
__attribute__((naked, used, section(".text.aidi_start"))) void _start(void)
{
    __asm__ volatile(
        "mov #__aidi_stack_top, r1\n\t"
        "mov #0x5a80, &0x015c\n\t" /* watchdog off before the first C statement */
        "call #aidi_reset_entry\n\t"
        "1: jmp 1b\n\t");
}

#if defined(AIDI_SIM_HWMULT)
/* The classic MPY peripheral (mspdebug `simio add hwmult`, base 0x0130); the
 * FR5994's MPY32 has the same 16-bit register layout at 0x04C0. */
#define AIDI_MPY_BASE 0x0130u
#define AIDI_MPYS (*(volatile int16_t *)(AIDI_MPY_BASE + 0x2u))
#define AIDI_OP2 (*(volatile int16_t *)(AIDI_MPY_BASE + 0x8u))
#define AIDI_RESLO (*(volatile uint16_t *)(AIDI_MPY_BASE + 0xAu))
#define AIDI_RESHI (*(volatile uint16_t *)(AIDI_MPY_BASE + 0xCu))

int32_t aidi_mul16(int16_t a, int16_t b)
{
    uint32_t r;
    AIDI_MPYS = a;
    AIDI_OP2 = b;
    r = ((uint32_t)AIDI_RESHI << 16) | AIDI_RESLO;
    return (int32_t)r;
}
#else
/*
 * Shift-and-add on magnitudes, in assembly: clang's code for 32-bit shifts
 * on the classic MSP430 (no RLAM/RRUM) is several times slower. Arguments
 * a in R12, b in R13; result in R12 (low), R13 (high); R10/R11 saved.
 * The smaller magnitude is the multiplier, so the loop runs once per bit of
 * min(|a|, |b|). |a|, |b| <= 32768 and |a * b| <= 2^30.
 */
__asm__(
    "    .section .text.aidi_mul16,\"ax\",@progbits\n"
    "    .global aidi_mul16\n"
    "    .type aidi_mul16,@function\n"
    "aidi_mul16:\n"
    "    push r10\n"
    "    push r11\n"
    "    mov r12, r14\n"
    "    xor r13, r14\n"      /* sign of the product in bit 15 of r14 */
    "    tst r12\n"
    "    jge 1f\n"
    "    inv r12\n"
    "    inc r12\n"           /* r12 = |a| (0x8000 reads as 32768) */
    "1:  tst r13\n"
    "    jge 2f\n"
    "    inv r13\n"
    "    inc r13\n"           /* r13 = |b| */
    "2:  cmp r13, r12\n"      /* r12 >= r13 (unsigned)? keep; else swap */
    "    jhs 3f\n"
    "    mov r12, r15\n"
    "    mov r13, r12\n"
    "    mov r15, r13\n"
    "3:  clr r10\n"
    "    clr r11\n"
    "    clr r15\n"           /* multiplicand r15:r12, multiplier r13 */
    "4:  tst r13\n"
    "    jz 6f\n"
    "    clrc\n"
    "    rrc r13\n"
    "    jnc 5f\n"
    "    add r12, r10\n"
    "    addc r15, r11\n"
    "5:  rla r12\n"
    "    rlc r15\n"
    "    jmp 4b\n"
    "6:  tst r14\n"
    "    jge 7f\n"
    "    inv r10\n"
    "    inv r11\n"
    "    inc r10\n"
    "    adc r11\n"
    "7:  mov r10, r12\n"
    "    mov r11, r13\n"
    "    pop r11\n"
    "    pop r10\n"
    "    ret\n"
    "    .size aidi_mul16, .-aidi_mul16\n"
    "    .text\n");
#endif
#endif /* AIDI_TARGET_MSP430_SIM */
