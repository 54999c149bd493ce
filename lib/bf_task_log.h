/* bf_task_log: a log line about one task, with its context written once:
 * "[BFnnnnn: ]job <id>: task <n> (<type>): <message>".  A tag at the start
 * of fmt stays at the start of the line, before the context. */
#ifndef BF_TASK_LOG_H
#define BF_TASK_LOG_H

#include "bf_log.h"
#include "bf_task.h"

void bf_log_task_(const char *file, int line, bf_log_level_e level,
                  const bf_task_t *task, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define bf_log_task(level, task, ...)                                          \
    bf_log_task_(__FILE__, __LINE__, (level), (task), __VA_ARGS__)

#endif
