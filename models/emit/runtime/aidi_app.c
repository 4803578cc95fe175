/*
 * The sample application: what the host harness and the simulator firmware
 * run at every boot. Not part of the library (src/aidi_sample.c holds the
 * sample input, which only these two builds embed).
 */
#include "aidi_runtime.h"

/* the application's copy of the result (FRAM: it survives power failures) */
AIDI_PERSISTENT(aidi_sample_output)
int16_t aidi_sample_output[AIDI_OUTPUT_LEN] = {0};

void aidi_boot(void)
{
    aidi_platform_init();
    aidi_infer_at_boot(aidi_sample_input, aidi_sample_output); /* the boot path: V_on less the boot is known */
    aidi_done();
}
