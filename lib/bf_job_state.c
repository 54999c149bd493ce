/* bf_job_state: job states (see bf_job_state.h). */
#include "bf_job_state.h"

#include <string.h>

bf_job_state_e bf_job_state_parse(const char *s)
{
    static const struct {
        const char *name;
        bf_job_state_e state;
    } names[] = { { "queued", BF_JOB_STATE_QUEUED },
                  { "running", BF_JOB_STATE_RUNNING },
                  { "completed", BF_JOB_STATE_COMPLETED },
                  { "failed", BF_JOB_STATE_FAILED },
                  { "cancelled", BF_JOB_STATE_CANCELLED } };
    size_t i;

    if (!s)
        return BF_JOB_STATE_UNKNOWN;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].state;
    return BF_JOB_STATE_UNKNOWN;
}

bool bf_job_state_live(bf_job_state_e state)
{
    return state == BF_JOB_STATE_QUEUED || state == BF_JOB_STATE_RUNNING;
}

bool bf_job_state_is_live(const char *s)
{
    return bf_job_state_live(bf_job_state_parse(s));
}
