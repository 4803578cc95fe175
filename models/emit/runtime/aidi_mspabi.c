/*
 * Compiler helpers for the MSP430 simulator build (no libgcc / no libc).
 *
 * clang --target=msp430 without a hardware multiplier lowers multiply,
 * divide, remainder and variable 32-bit shifts to the MSP430 EABI helpers
 * (TI SLAA534, "MSP430 Embedded Application Binary Interface", section 6),
 * and may call memcpy/memset/memmove for aggregate copies. They are written
 * here in plain C with constant shifts only, so none of them can be lowered
 * back into a call to itself (tests check the disassembly), or, for the
 * 32-bit ones, in assembly.
 */
#include <stddef.h>
#include <stdint.h>

/* ---- multiply ---------------------------------------------------------- */
int16_t __mspabi_mpyi(int16_t a, int16_t b);

int16_t __mspabi_mpyi(int16_t a, int16_t b)
{
    uint16_t x = (uint16_t)a, y = (uint16_t)b, r = 0;
    while (y) {
        if (y & 1u) r = (uint16_t)(r + x);
        x = (uint16_t)(x << 1);
        y >>= 1;
    }
    return (int16_t)r; /* modulo 2^16, like the hardware */
}

/* ---- unsigned division cores -------------------------------------------- */
static uint16_t udivmod16(uint16_t n, uint16_t d, uint16_t *rem)
{
    uint16_t q = 0, r = 0;
    int16_t i;
    if (d == 0) { *rem = n; return 0xFFFFu; }
    for (i = 15; i >= 0; --i) {
        r = (uint16_t)((r << 1) | ((n >> 15) & 1u));
        n = (uint16_t)(n << 1);
        q = (uint16_t)(q << 1);
        if (r >= d) { r = (uint16_t)(r - d); q |= 1u; }
    }
    *rem = r;
    return q;
}

/* ---- 16-bit division ----------------------------------------------------- */
int16_t __mspabi_divi(int16_t a, int16_t b);
uint16_t __mspabi_divu(uint16_t a, uint16_t b);
int16_t __mspabi_remi(int16_t a, int16_t b);
uint16_t __mspabi_remu(uint16_t a, uint16_t b);

static uint16_t mag16(int16_t v) { return v < 0 ? (uint16_t)(0u - (uint16_t)v) : (uint16_t)v; }

int16_t __mspabi_divi(int16_t a, int16_t b)
{
    uint16_t r, q = udivmod16(mag16(a), mag16(b), &r);
    return (int16_t)(((a < 0) != (b < 0)) ? (uint16_t)(0u - q) : q); /* truncation toward zero */
}

uint16_t __mspabi_divu(uint16_t a, uint16_t b)
{
    uint16_t r;
    return udivmod16(a, b, &r);
}

int16_t __mspabi_remi(int16_t a, int16_t b)
{
    uint16_t r;
    udivmod16(mag16(a), mag16(b), &r);
    return (int16_t)(a < 0 ? (uint16_t)(0u - r) : r); /* sign of the dividend */
}

uint16_t __mspabi_remu(uint16_t a, uint16_t b)
{
    uint16_t r;
    udivmod16(a, b, &r);
    return r;
}

/* ---- 32-bit division (cores in assembly below) ---------------------------- */
int32_t __mspabi_divli(int32_t a, int32_t b);
int32_t __mspabi_remli(int32_t a, int32_t b);

static uint32_t mag32(int32_t v) { return v < 0 ? 0u - (uint32_t)v : (uint32_t)v; }

int32_t __mspabi_divli(int32_t a, int32_t b)
{
    uint32_t q = mag32(a) / mag32(b); /* __mspabi_divul */
    return (int32_t)(((a < 0) != (b < 0)) ? 0u - q : q);
}

int32_t __mspabi_remli(int32_t a, int32_t b)
{
    uint32_t r = mag32(a) % mag32(b); /* __mspabi_remul */
    return (int32_t)(a < 0 ? 0u - r : r);
}

/* ---- shifts by a variable count ----------------------------------------- */
int16_t __mspabi_slli(int16_t x, int16_t n);
int16_t __mspabi_srai(int16_t x, int16_t n);
uint16_t __mspabi_srli(uint16_t x, int16_t n);

int16_t __mspabi_slli(int16_t x, int16_t n)
{
    uint16_t u = (uint16_t)x;
    while (n-- > 0) u = (uint16_t)(u << 1);
    return (int16_t)u;
}

int16_t __mspabi_srai(int16_t x, int16_t n)
{
    uint16_t u = (uint16_t)x, sign = (uint16_t)(u & 0x8000u);
    while (n-- > 0) u = (uint16_t)((u >> 1) | sign);
    return (int16_t)u;
}

uint16_t __mspabi_srli(uint16_t x, int16_t n)
{
    while (n-- > 0) x >>= 1;
    return x;
}

/* ---- 32-bit helpers in assembly ------------------------------------------
 * clang's code for 32-bit shifts on the classic MSP430 (no RLAM/RRUM) costs
 * tens of instructions per bit; these loops use RLA/RLC and RRA/RRC pairs.
 * EABI: first 32-bit argument in R12 (low):R13, second in R14:R15, a
 * 16-bit count in R14; result in R12:R13; R4-R10 are callee-saved.
 */
__asm__(
    "    .section .text.__mspabi_slll,\"ax\",@progbits\n"
    "    .global __mspabi_slll\n"
    "    .type __mspabi_slll,@function\n"
    "__mspabi_slll:\n"          /* R12:R13 << R14 */
    "    tst r14\n"
    "    jz 2f\n"
    "1:  rla r12\n"
    "    rlc r13\n"
    "    dec r14\n"
    "    jnz 1b\n"
    "2:  ret\n"
    "    .size __mspabi_slll, .-__mspabi_slll\n"

    "    .section .text.__mspabi_srll,\"ax\",@progbits\n"
    "    .global __mspabi_srll\n"
    "    .type __mspabi_srll,@function\n"
    "__mspabi_srll:\n"          /* R12:R13 >> R14, logical */
    "    tst r14\n"
    "    jz 2f\n"
    "1:  clrc\n"
    "    rrc r13\n"
    "    rrc r12\n"
    "    dec r14\n"
    "    jnz 1b\n"
    "2:  ret\n"
    "    .size __mspabi_srll, .-__mspabi_srll\n"

    "    .section .text.__mspabi_sral,\"ax\",@progbits\n"
    "    .global __mspabi_sral\n"
    "    .type __mspabi_sral,@function\n"
    "__mspabi_sral:\n"          /* R12:R13 >> R14, arithmetic */
    "    tst r14\n"
    "    jz 2f\n"
    "1:  rra r13\n"
    "    rrc r12\n"
    "    dec r14\n"
    "    jnz 1b\n"
    "2:  ret\n"
    "    .size __mspabi_sral, .-__mspabi_sral\n"

    "    .section .text.__mspabi_mpyl,\"ax\",@progbits\n"
    "    .global __mspabi_mpyl\n"
    "    .type __mspabi_mpyl,@function\n"
    "__mspabi_mpyl:\n"          /* R12:R13 * R14:R15, low 32 bits */
    "    push r10\n"
    "    push r11\n"
    "    clr r10\n"
    "    clr r11\n"
    "1:  tst r14\n"
    "    jnz 2f\n"
    "    tst r15\n"
    "    jz 4f\n"
    "2:  clrc\n"
    "    rrc r15\n"
    "    rrc r14\n"
    "    jnc 3f\n"
    "    add r12, r10\n"
    "    addc r13, r11\n"
    "3:  rla r12\n"
    "    rlc r13\n"
    "    jmp 1b\n"
    "4:  mov r10, r12\n"
    "    mov r11, r13\n"
    "    pop r11\n"
    "    pop r10\n"
    "    ret\n"
    "    .size __mspabi_mpyl, .-__mspabi_mpyl\n"

    /* unsigned 32-bit divide: n = R12:R13, d = R14:R15 -> q = R12:R13, r = R14:R15
       (restoring division; the quotient bits shift into n's low end) */
    "    .section .text.aidi_udivmod32,\"ax\",@progbits\n"
    "    .type aidi_udivmod32,@function\n"
    "aidi_udivmod32:\n"
    "    push r9\n"
    "    push r10\n"
    "    push r11\n"
    "    clr r10\n"
    "    clr r11\n"
    "    mov #32, r9\n"
    "1:  rla r12\n"
    "    rlc r13\n"
    "    rlc r10\n"
    "    rlc r11\n"
    "    jc 2f\n"               /* remainder overflowed 32 bits: certainly >= d */
    "    cmp r15, r11\n"
    "    jlo 3f\n"
    "    jne 2f\n"
    "    cmp r14, r10\n"
    "    jlo 3f\n"
    "2:  sub r14, r10\n"
    "    subc r15, r11\n"
    "    bis #1, r12\n"
    "3:  dec r9\n"
    "    jnz 1b\n"
    "    mov r10, r14\n"
    "    mov r11, r15\n"
    "    pop r11\n"
    "    pop r10\n"
    "    pop r9\n"
    "    ret\n"
    "    .size aidi_udivmod32, .-aidi_udivmod32\n"

    "    .section .text.__mspabi_divul,\"ax\",@progbits\n"
    "    .global __mspabi_divul\n"
    "    .type __mspabi_divul,@function\n"
    "__mspabi_divul:\n"
    "    call #aidi_udivmod32\n"
    "    ret\n"
    "    .size __mspabi_divul, .-__mspabi_divul\n"

    "    .section .text.__mspabi_remul,\"ax\",@progbits\n"
    "    .global __mspabi_remul\n"
    "    .type __mspabi_remul,@function\n"
    "__mspabi_remul:\n"
    "    call #aidi_udivmod32\n"
    "    mov r14, r12\n"
    "    mov r15, r13\n"
    "    ret\n"
    "    .size __mspabi_remul, .-__mspabi_remul\n"
    "    .text\n");

/* ---- memory ------------------------------------------------------------ */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        d += n;
        s += n;
        while (n--) *--d = *--s;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
