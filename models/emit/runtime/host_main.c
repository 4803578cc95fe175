/*
 * Host platform and failure-injection harness.
 *
 * NVM is the set of FRAM variables listed in aidi_nvm_regions (plain
 * memory here, optionally mirrored in a file); SRAM is aidi_sram. A power
 * failure is a longjmp out of the write hook right after the chosen FRAM
 * word write; the harness then fills SRAM with junk and boots again from
 * the reset path (aidi_boot), exactly as the MCU would.
 *
 *   aidi-host                      run, print the output vector
 *   aidi-host --check              ... and compare it with the reference (exit 1 if not equal)
 *   aidi-host --fail-at N[,N...]   the i-th boot loses power after its N_i-th FRAM write
 *   aidi-host --every K            every boot loses power after K writes (until done)
 *   aidi-host --exhaustive         one failure after write p, for every p of a clean run
 *   aidi-host --random T --seed S  T runs with 1..4 failures at random write counts
 *   aidi-host --nvm FILE ...       keep NVM in FILE: load it at start, save it at the
 *                                  end or at the first failure (then exit 3)
 *   aidi-host --stats              FRAM writes and LEA calls of the clean run to stderr
 * Exit status: 0 ok, 1 output differs from the reference, 2 usage or no
 * progress, 3 power failed (with --nvm).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aidi_runtime.h"
#if defined(AIDI_BACKEND_LEA)
#include "aidi_dsplib.h"
#include "aidi_kernels.h"
#endif

extern const int16_t aidi_expected[AIDI_OUTPUT_LEN];

static jmp_buf power_jmp;
static unsigned long writes_boot;   /* FRAM writes since the last boot */
static unsigned long writes_total;
static unsigned long fail_after;    /* 0: this boot does not fail */
static int done;

void aidi_host_nvm_wrote(void)
{
    ++writes_total;
    if (fail_after && ++writes_boot >= fail_after) longjmp(power_jmp, 1);
}

void aidi_platform_init(void) {}
void aidi_layer_mark(uint16_t layer) { (void)layer; }
void aidi_done(void) { done = 1; }

/* ---- NVM image and SRAM junk ------------------------------------------ */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static unsigned long long rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void nvm_erase(void)
{
    uint16_t i;
    for (i = 0; i < aidi_n_nvm_regions; ++i) memset(aidi_nvm_regions[i].ptr, 0, aidi_nvm_regions[i].bytes);
}

static void sram_junk(void)
{
    size_t n, i;
    unsigned char *p = aidi_sram_state(&n);
    for (i = 0; i < n; ++i) p[i] = (unsigned char)rng_next();
}

static int nvm_file(const char *path, int save)
{
    uint16_t i;
    FILE *f = fopen(path, save ? "wb" : "rb");
    if (!f) return save ? -1 : 0; /* no file yet: a freshly programmed device */
    for (i = 0; i < aidi_n_nvm_regions; ++i) {
        size_t n = aidi_nvm_regions[i].bytes;
        if ((save ? fwrite(aidi_nvm_regions[i].ptr, 1, n, f) : fread(aidi_nvm_regions[i].ptr, 1, n, f)) != n) {
            fclose(f);
            return -1;
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- one inference with scheduled failures ----------------------------- */
typedef struct {
    const unsigned long *fails; /* write count at which boot i fails (0 = never) */
    size_t n_fails;
    unsigned long every;        /* every boot fails after this many writes */
    unsigned long boots;
    int stop_at_failure;        /* return at the first failure (file-backed mode) */
} schedule_t;

/* 0 done, 2 no progress, 3 stopped at a failure */
static int run(schedule_t *s)
{
    volatile unsigned long stalled = 0;
    volatile uint32_t before = 0;
    s->boots = 0;
    done = 0;
    for (;;) {
        writes_boot = 0;
        fail_after = s->every ? s->every : (s->boots < s->n_fails ? s->fails[s->boots] : 0);
        before = aidi_progress_load();
        ++s->boots;
        if (setjmp(power_jmp) == 0) {
            aidi_boot();
            fail_after = 0;
            return done ? 0 : 2;
        }
        /* power failure: registers and SRAM are gone */
        fail_after = 0;
        sram_junk();
        if (s->stop_at_failure) return 3;
        stalled = aidi_progress_load() == before ? stalled + 1 : 0;
        if (stalled > 2) return 2;
    }
}

static int same(const int16_t *a, const int16_t *b)
{
    return memcmp(a, b, sizeof(int16_t) * AIDI_OUTPUT_LEN) == 0;
}

static void print_output(void)
{
    uint16_t i;
    for (i = 0; i < AIDI_OUTPUT_LEN; ++i) printf("%s%d", i ? " " : "", aidi_output[i]);
    printf("\n");
}

static int usage(const char *msg)
{
    fprintf(stderr, "aidi-host: %s\n", msg);
    return 2;
}

#define MAX_FAILS 64

int main(int argc, char **argv)
{
    static unsigned long fails[MAX_FAILS];
    schedule_t s;
    const char *nvm_path = 0;
    int check = 0, exhaustive = 0, stats = 0, rc, i;
    unsigned long random_runs = 0, clean_writes, trials = 0, mismatches = 0, boots = 0;
    int16_t clean[AIDI_OUTPUT_LEN];

    memset(&s, 0, sizeof s);
    s.fails = fails;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : 0;
        if (!strcmp(a, "--check")) check = 1;
        else if (!strcmp(a, "--exhaustive")) exhaustive = 1;
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--every") && v) { s.every = strtoul(v, 0, 10); ++i; }
        else if (!strcmp(a, "--random") && v) { random_runs = strtoul(v, 0, 10); ++i; }
        else if (!strcmp(a, "--seed") && v) { rng_state ^= strtoull(v, 0, 10) * 0x2545F4914F6CDD1Dull; ++i; }
        else if (!strcmp(a, "--nvm") && v) { nvm_path = v; ++i; }
        else if (!strcmp(a, "--fail-at") && v) {
            const char *p = v;
            while (*p && s.n_fails < MAX_FAILS) {
                char *end;
                fails[s.n_fails++] = strtoul(p, &end, 10);
                if (end == p) return usage("--fail-at takes N[,N...]");
                p = end;
                if (*p == ',') ++p;
                else if (*p) return usage("--fail-at takes N[,N...]");
            }
            ++i;
        } else return usage("unknown argument (see host_main.c)");
    }
    if (!rng_state) rng_state = 1;

    if (nvm_path) { /* file-backed NVM: one power cycle per invocation */
        nvm_erase();
        if (nvm_file(nvm_path, 0)) return usage("cannot read the NVM file");
        s.stop_at_failure = 1;
        rc = run(&s);
        if (nvm_file(nvm_path, 1)) return usage("cannot write the NVM file");
        if (rc == 3) return 3;
        print_output();
        return check && !same(aidi_output, aidi_expected) ? 1 : 0;
    }

    /* clean run: the output every failure schedule must reproduce */
    {
        schedule_t c;
        memset(&c, 0, sizeof c);
        nvm_erase();
        writes_total = 0;
#if defined(AIDI_BACKEND_LEA)
        aidi_lea_calls = aidi_lea_fallbacks = aidi_dsplib_emu_saturations = 0;
#endif
        if (run(&c)) return usage("clean run did not complete");
        clean_writes = writes_total;
        memcpy(clean, aidi_output, sizeof clean);
        if (stats) {
            fprintf(stderr, "aidi-host: clean run %lu FRAM word writes, %lu units\n", clean_writes,
                    (unsigned long)AIDI_TOTAL_UNITS);
#if defined(AIDI_BACKEND_LEA)
            fprintf(stderr, "aidi-host: LEA msp_mac_q15 calls %lu, CPU fallbacks %lu, emulated saturations %lu\n",
                    (unsigned long)aidi_lea_calls, (unsigned long)aidi_lea_fallbacks,
                    (unsigned long)aidi_dsplib_emu_saturations);
#endif
        }
    }
    if (s.n_fails || s.every) {
        nvm_erase();
        rc = run(&s);
        if (rc == 2) {
            fprintf(stderr, "aidi-host: no progress: a unit needs more FRAM writes than one power cycle allows\n");
            return 2;
        }
        boots += s.boots;
        ++trials;
        mismatches += !same(aidi_output, clean);
    }
    if (exhaustive) {
        unsigned long p;
        for (p = 1; p <= clean_writes + 1; ++p) {
            schedule_t e;
            memset(&e, 0, sizeof e);
            e.fails = &p;
            e.n_fails = 1;
            nvm_erase();
            if (run(&e)) return usage("exhaustive run did not complete");
            boots += e.boots;
            ++trials;
            mismatches += !same(aidi_output, clean);
        }
    }
    while (random_runs--) {
        schedule_t r;
        unsigned long f[4];
        size_t k, n = 1 + (size_t)(rng_next() % 4);
        for (k = 0; k < n; ++k) f[k] = 1 + (unsigned long)(rng_next() % (clean_writes + 1));
        memset(&r, 0, sizeof r);
        r.fails = f;
        r.n_fails = n;
        nvm_erase();
        if (run(&r)) return usage("random run did not complete");
        boots += r.boots;
        ++trials;
        mismatches += !same(aidi_output, clean);
    }
    if (trials) {
        fprintf(stderr, "aidi-host: %lu runs with power failures, %lu boots, %lu outputs differ from the clean run\n",
                trials, boots, mismatches);
    }
    memcpy(aidi_output, clean, sizeof clean);
    print_output();
    if (mismatches) return 1;
    if (check && !same(clean, aidi_expected)) {
        fprintf(stderr, "aidi-host: output differs from the Python reference\n");
        return 1;
    }
    return 0;
}
