/*
 * MSP430 platform: reset entry, watchdog, markers.
 *
 * AIDI_TARGET_MSP430_SIM (clang + ld.lld, no C runtime): _start is the reset
 * vector target. mspdebug's simulator starts with SP = 0 and memory full of
 * 0xFF, and after a power failure SRAM holds junk, so _start is naked: it
 * sets SP before anything is pushed and never relies on .data/.bss
 * initialisation (the linker script refuses a .data section).
 *
 * AIDI_TARGET_MSP430_HW (msp430-elf-gcc / cl430 with TI's device files):
 * the toolchain's crt0 sets up the stack and calls main().
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

/* Breakpoint targets; the asm keeps them (and their calls) in the binary. */
AIDI_NOINLINE void aidi_layer_mark(uint16_t layer)
{
    __asm__ volatile("" : : "r"(layer) : "memory");
}

AIDI_NOINLINE void aidi_done(void)
{
    __asm__ volatile("" : : : "memory");
}

static void idle_forever(void)
{
    for (;;) {
#if defined(AIDI_TARGET_MSP430_HW)
        __bis_SR_register(LPM4_bits); /* done: sleep until the next power cycle */
#else
        __asm__ volatile("" : : : "memory");
#endif
    }
}

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

#if defined(AIDI_TARGET_MSP430_HW)
int main(void)
{
    aidi_boot();
    idle_forever();
    return 0;
}
#endif
