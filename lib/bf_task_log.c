/* bf_task_log: log lines about a task (see bf_task_log.h). */
#include "bf_task_log.h"

#include <inttypes.h>
#include <stdio.h>

/* Length of a leading "BFnnnnn: " tag in fmt, 0 when there is none. */
static int tag_length(const char *fmt)
{
    int i;

    if (fmt[0] != 'B' || fmt[1] != 'F')
        return 0;
    for (i = 2; i < 7; i++)
        if (fmt[i] < '0' || fmt[i] > '9')
            return 0;
    return fmt[7] == ':' && fmt[8] == ' ' ? 9 : 0;
}

void bf_log_task_(const char *file, int line, bf_log_level_e level,
                  const bf_task_t *task, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    int tag;

    if (!bf_log_is_level(level))
        return;
    tag = tag_length(fmt);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt + tag, ap);
    va_end(ap);
    bf_log_(file, line, level, "%.*sjob %s: task %" PRId64 " (%s): %s", tag,
            fmt, task->job_id, task->id, task->resource_type, msg);
}
