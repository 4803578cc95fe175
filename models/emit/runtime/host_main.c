/*
 * Host platform and failure-injection harness.
 *
 * NVM is the set of FRAM variables listed in aidi_nvm_regions (plain
 * memory here, optionally mirrored in a file) plus the sample application's
 * output; SRAM is the runtime's state (aidi_sram_state). A power failure is
 * a longjmp out of the write hook right after the chosen FRAM word write;
 * the harness then fills SRAM with junk and boots again from the reset path
 * (the sample application, aidi_app.c: aidi_infer_at_boot on the sample input),
 * exactly as the MCU would.
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
 *   aidi-host --capacitor P        a simulated capacitor charged by a constant source of
 *                                  P watts (see below); a summary line on stderr
 * Exit status: 0 ok, 1 output differs from the reference, 2 usage or no
 * progress, 3 power failed (with --nvm).
 *
 * The simulated capacitor (--capacitor P, needs the power model that the
 * emitter writes into aidi_expected.c when it knows the scenario's power):
 * stored energy E = C V^2 / 2, the constant source P into it, the MCU's load
 * through the converter (efficiency eta) and leakage I_leak * V. Each unit
 * draws what the simulator's plan says (aidi_host_unit_J / _s: the Workload
 * of aidi.sim); the voltage read, the LPM3 wait and the wake-up cost the
 * platform's measure/wait/wake figures; a boot starts at V_on and costs the
 * platform's boot energy. A unit whose energy would take V below V_off is
 * cut: the power fails after the fraction of its FRAM writes (counted in a
 * clean run) that the remaining energy pays for, the device recharges to
 * V_on and boots again, and the unit counts as lost (re-executed). With
 * energy_aware dispatch the runtime waits for each unit's start threshold
 * (measuring V only when its lower bound on V does not show it there; after
 * a boot that bound is aidi_v_boot_mv2, true here since a boot starts at
 * V_on and draws the platform's boot energy), so no
 * unit is lost whatever P > 0 is. The summary line counts the voltage
 * measurements (aidi_vcc_mv calls) too.
 */
#include <math.h>
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
/* the power model (aidi_expected.c): C, V_on, V_off, V_max, eta, I_leak, boot s, boot J,
   measure s, measure W, wait W, wake s, wake W; per unit J and s at the MCU */
extern const int aidi_host_have_power;
extern const double aidi_host_power[13];
extern const double aidi_host_unit_J[];
extern const double aidi_host_unit_s[];

static jmp_buf power_jmp;
static unsigned long writes_boot;   /* FRAM writes since the last boot */
static unsigned long writes_total;
static unsigned long fail_after;    /* 0: this boot does not fail */
static int done;

static void power_fails(void) { longjmp(power_jmp, 1); }

void aidi_host_nvm_wrote(void)
{
    ++writes_total;
    if (fail_after && ++writes_boot >= fail_after) power_fails();
}

void aidi_platform_init(void) {}
void aidi_done(void) { done = 1; }

/* ---- FRAM writes per unit, from the clean run ------------------------- */
static unsigned long *unit_writes;  /* [AIDI_TOTAL_UNITS + 1]: writes_total when unit g started */
static int recording;

void aidi_layer_mark(uint16_t layer)
{
    if (recording && layer == AIDI_N_LAYERS) unit_writes[AIDI_TOTAL_UNITS] = writes_total; /* complete */
}

/* ---- the simulated capacitor ------------------------------------------- */
enum { PW_C, PW_VON, PW_VOFF, PW_VMAX, PW_ETA, PW_LEAK, PW_BOOT_S, PW_BOOT_J, PW_MEAS_S, PW_MEAS_W, PW_WAIT_W,
       PW_WAKE_S, PW_WAKE_W };
static struct {
    int on;
    double p_src, e, t;
    unsigned long boots, units, lost, waits, measures, stuck;
    double wait_s;
    uint32_t last_lost;
} cap;

static double energy_at(double v) { return 0.5 * aidi_host_power[PW_C] * v * v; }
static double volts(void) { return sqrt(2.0 * cap.e / aidi_host_power[PW_C]); }

static void no_progress(const char *why)
{
    fprintf(stderr, "aidi-host: no progress: %s\n", why);
    exit(2);
}

/* a phase of d seconds at load p_load (W at the MCU): power fails if V would fall below V_off */
static void cap_phase(double p_load, double d)
{
    const double *pw = aidi_host_power;
    double e = cap.e + (cap.p_src - p_load / pw[PW_ETA] - pw[PW_LEAK] * volts()) * d;
    cap.t += d;
    if (e < energy_at(pw[PW_VOFF])) {
        cap.e = energy_at(pw[PW_VOFF]);
        power_fails();
    }
    cap.e = e < energy_at(pw[PW_VMAX]) ? e : energy_at(pw[PW_VMAX]);
}

/* off at (or below) V_off: recharge to V_on, boot */
static void cap_boot(void)
{
    const double *pw = aidi_host_power;
    const double e_on = energy_at(pw[PW_VON]);
    if (cap.e < e_on) {
        const double net = cap.p_src - pw[PW_LEAK] * pw[PW_VON];
        if (net <= 0) no_progress("the source cannot charge the capacitor to V_on");
        cap.t += (e_on - cap.e) / net;
        cap.e = e_on;
    }
    ++cap.boots;
    if (setjmp(power_jmp) == 0) {
        cap_phase(pw[PW_BOOT_J] / pw[PW_BOOT_S], pw[PW_BOOT_S]);
        return;
    }
    no_progress("the boot does not fit in one power cycle");
}

uint16_t aidi_vcc_mv(void)
{
    const double *pw = aidi_host_power;
    double mv;
    if (!cap.on) return 65535u;
    ++cap.measures;
    cap_phase(pw[PW_MEAS_W], pw[PW_MEAS_S]);
    mv = floor(volts() * 1000.0);
    return mv > 65535.0 ? 65535u : (uint16_t)mv;
}

void aidi_vcc_wait_mv(uint16_t mv)
{
    const double *pw = aidi_host_power;
    const double v = mv / 1000.0, e_t = energy_at(v);
    if (!cap.on) return;
    if (cap.e < e_t) {
        const double net = cap.p_src - pw[PW_WAIT_W] / pw[PW_ETA] - pw[PW_LEAK] * v;
        if (v > pw[PW_VMAX] || net <= 0) no_progress("the source cannot lift V to a unit's start threshold");
        cap.wait_s += (e_t - cap.e) / net;
        cap.t += (e_t - cap.e) / net;
        cap.e = e_t;
    }
    ++cap.waits;
    cap_phase(pw[PW_WAKE_W], pw[PW_WAKE_S]);
}

void aidi_host_unit(uint32_t g)
{
    const double *pw = aidi_host_power;
    double need, avail;
    if (recording) unit_writes[g] = writes_total;
    if (!cap.on) return;
    ++cap.units;
    /* net energy the unit takes from the capacitor (leakage at the current V) */
    need = (aidi_host_unit_J[g] / pw[PW_ETA] + (pw[PW_LEAK] * volts() - cap.p_src) * aidi_host_unit_s[g]);
    avail = cap.e - energy_at(pw[PW_VOFF]);
    if (need <= avail) {
        cap.e -= need;
        if (cap.e > energy_at(pw[PW_VMAX])) cap.e = energy_at(pw[PW_VMAX]);
        cap.t += aidi_host_unit_s[g];
    } else {
        /* cut after the share of its FRAM writes that the energy left pays for */
        const double f = avail > 0 ? avail / need : 0.0;
        const unsigned long n = (unsigned long)(f * (double)(unit_writes[g + 1] - unit_writes[g]));
        ++cap.lost;
        cap.stuck = cap.last_lost == g + 1 ? cap.stuck + 1 : 0;
        cap.last_lost = g + 1;
        if (cap.stuck > 2) no_progress("a unit needs more energy than one power cycle gives");
        cap.t += f * aidi_host_unit_s[g];
        cap.e = energy_at(pw[PW_VOFF]);
        if (n == 0) power_fails();
        fail_after = writes_boot + n;
    }
}

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
    memset(aidi_sample_output, 0, sizeof aidi_sample_output);
}

static void sram_junk(void)
{
    size_t n, i;
    int k;
    unsigned char *p;
    for (k = 0; (p = aidi_sram_state(k, &n)) != 0; ++k)
        for (i = 0; i < n; ++i) p[i] = (unsigned char)rng_next();
}

static int nvm_file(const char *path, int save)
{
    uint16_t i;
    FILE *f = fopen(path, save ? "wb" : "rb");
    if (!f) return save ? -1 : 0; /* no file yet: a freshly programmed device */
    for (i = 0; i <= aidi_n_nvm_regions; ++i) { /* the runtime's regions, then the application's output */
        void *ptr = i < aidi_n_nvm_regions ? aidi_nvm_regions[i].ptr : (void *)aidi_sample_output;
        size_t n = i < aidi_n_nvm_regions ? aidi_nvm_regions[i].bytes : sizeof aidi_sample_output;
        if ((save ? fwrite(ptr, 1, n, f) : fread(ptr, 1, n, f)) != n) {
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

/* 0 done, 2 no progress, 3 stopped at a failure.
 *
 * No progress means a schedule under which the inference can never finish: --every K fails every boot after
 * K writes, and a boot resumes from FRAM alone (SRAM is junk), so a boot that commits nothing is followed by
 * the same boot again, forever; three such boots in a row end the run. A finite list of failures (--fail-at,
 * --exhaustive, --random: one per boot, boot i at its fails[i]-th write) cannot stall, however many of its
 * failures land inside one unit: once the list is used up a boot runs to the end, so the run takes at most
 * n_fails + 1 boots and is never cut. (The simulated capacitor has its own rule, in aidi_host_unit.) */
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
        if (cap.on) cap_boot();
        if (setjmp(power_jmp) == 0) {
            aidi_boot();
            fail_after = 0;
            return done ? 0 : 2;
        }
        /* power failure: registers and SRAM are gone */
        fail_after = 0;
        sram_junk();
        if (s->stop_at_failure) return 3;
        if (cap.on || !s->every) continue; /* only a schedule without end can stall */
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
    for (i = 0; i < AIDI_OUTPUT_LEN; ++i) printf("%s%d", i ? " " : "", aidi_sample_output[i]);
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
    double p_capacitor = -1.0;
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
        else if (!strcmp(a, "--capacitor") && v) {
            char *end;
            p_capacitor = strtod(v, &end);
            if (end == v || *end || !(p_capacitor > 0) || p_capacitor > 1e3) return usage("--capacitor takes a power in W (> 0)");
            ++i;
        }
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
    if (p_capacitor > 0 && !aidi_host_have_power)
        return usage("--capacitor: this project has no power model (emit it with the scenario's power configuration)");
    if (p_capacitor > 0 && (nvm_path || s.n_fails || s.every || exhaustive || random_runs))
        return usage("--capacitor runs alone (no --nvm, --fail-at, --every, --exhaustive, --random)");
    unit_writes = calloc((size_t)AIDI_TOTAL_UNITS + 1, sizeof *unit_writes);
    if (!unit_writes) return usage("out of memory");

    if (nvm_path) { /* file-backed NVM: one power cycle per invocation */
        nvm_erase();
        if (nvm_file(nvm_path, 0)) return usage("cannot read the NVM file");
        s.stop_at_failure = 1;
        rc = run(&s);
        if (nvm_file(nvm_path, 1)) return usage("cannot write the NVM file");
        if (rc == 3) return 3;
        print_output();
        return check && !same(aidi_sample_output, aidi_expected) ? 1 : 0;
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
        recording = 1;
        rc = run(&c);
        recording = 0;
        if (rc) return usage("clean run did not complete");
        clean_writes = writes_total;
        memcpy(clean, aidi_sample_output, sizeof clean);
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
    if (p_capacitor > 0) {
        schedule_t c;
        memset(&c, 0, sizeof c);
        nvm_erase();
        cap.on = 1;
        cap.p_src = p_capacitor;
        cap.e = energy_at(aidi_host_power[PW_VON]);
        if (run(&c)) return usage("capacitor run did not complete");
        cap.on = 0;
        fprintf(stderr, "aidi-host: capacitor %g W: %lu boots, %lu units started, %lu lost, %lu threshold waits "
                "(%.6g s), %lu measurements, %.6g s\n", p_capacitor, cap.boots, cap.units, cap.lost, cap.waits,
                cap.wait_s, cap.measures, cap.t);
        ++trials;
        boots += cap.boots;
        mismatches += !same(aidi_sample_output, clean);
    }
    if (s.n_fails || s.every) {
        nvm_erase();
        rc = run(&s);
        if (rc == 2 && s.every) {
            fprintf(stderr, "aidi-host: no progress: a unit needs more than %lu FRAM writes (--every), more than one "
                    "power cycle allows\n", s.every);
            return 2;
        }
        if (rc == 2) return usage("the run with --fail-at did not complete");
        boots += s.boots;
        ++trials;
        mismatches += !same(aidi_sample_output, clean);
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
            mismatches += !same(aidi_sample_output, clean);
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
        mismatches += !same(aidi_sample_output, clean);
    }
    if (trials) {
        fprintf(stderr, "aidi-host: %lu runs with power failures, %lu boots, %lu outputs differ from the clean run\n",
                trials, boots, mismatches);
    }
    memcpy(aidi_sample_output, clean, sizeof clean);
    print_output();
    if (mismatches) return 1;
    if (check && !same(clean, aidi_expected)) {
        fprintf(stderr, "aidi-host: output differs from the Python reference\n");
        return 1;
    }
    return 0;
}
