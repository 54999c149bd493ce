/* bf_job_state: a job's state (bulkfhir.job.state) as an enum, so C code
 * compares states in one place and not by string. */
#ifndef BF_JOB_STATE_H
#define BF_JOB_STATE_H

#include <stdbool.h>

typedef enum {
    BF_JOB_STATE_UNKNOWN = 0, /* NULL, "" (deleted) or not a state */
    BF_JOB_STATE_QUEUED,
    BF_JOB_STATE_RUNNING,
    BF_JOB_STATE_COMPLETED,
    BF_JOB_STATE_FAILED,
    BF_JOB_STATE_CANCELLED
} bf_job_state_e;

/* The state named s as the database prints it. */
bf_job_state_e bf_job_state_parse(const char *s);
/* True while the job's tasks may still run and publish: queued or running. */
bool bf_job_state_live(bf_job_state_e state);
/* bf_job_state_live(bf_job_state_parse(s)). */
bool bf_job_state_is_live(const char *s);

#endif
