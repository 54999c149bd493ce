/* bf_log: the log bridge.  Core code logs through bf_log(); the module
 * routes it into the httpd error log, the worker and ctl to stderr.
 * Every line at warn and above starts with a unique tag "BFnnnnn: " and
 * names its context (job, task, client).  Never log secrets. */
#ifndef BF_LOG_H
#define BF_LOG_H

#include <stdarg.h>

typedef enum {
    BF_LOG_ERR = 3,
    BF_LOG_WARN = 4,
    BF_LOG_NOTICE = 5,
    BF_LOG_INFO = 6,
    BF_LOG_DEBUG = 7
} bf_log_level_e;

typedef void bf_log_fn(void *baton, const char *file, int line,
                       bf_log_level_e level, const char *msg);

/* Install a sink (NULL restores the stderr sink) and the most verbose level
 * that is passed to it. */
void bf_log_set(bf_log_fn *fn, void *baton, bf_log_level_e max_level);
int bf_log_is_level(bf_log_level_e level);
void bf_log_(const char *file, int line, bf_log_level_e level, const char *fmt,
             ...) __attribute__((format(printf, 4, 5)));
void bf_log_v(const char *file, int line, bf_log_level_e level, const char *fmt,
              va_list ap);
const char *bf_log_level_name(bf_log_level_e level);

#define bf_log(level, ...) bf_log_(__FILE__, __LINE__, (level), __VA_ARGS__)

#endif
