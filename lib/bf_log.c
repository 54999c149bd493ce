/* bf_log: the log bridge (see bf_log.h). */
#include "bf_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void stderr_sink(void *baton, const char *file, int line,
                        bf_log_level_e level, const char *msg);

static bf_log_fn *sink = stderr_sink;
static void *sink_baton;
static bf_log_level_e max_level = BF_LOG_INFO;

const char *bf_log_level_name(bf_log_level_e level)
{
    switch (level) {
    case BF_LOG_ERR:
        return "error";
    case BF_LOG_WARN:
        return "warn";
    case BF_LOG_NOTICE:
        return "notice";
    case BF_LOG_INFO:
        return "info";
    case BF_LOG_DEBUG:
        return "debug";
    }
    return "?";
}

static void stderr_sink(void *baton, const char *file, int line,
                        bf_log_level_e level, const char *msg)
{
    struct timeval tv;
    struct tm tm;
    char ts[32];

    (void)baton;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (max_level >= BF_LOG_DEBUG)
        fprintf(stderr, "%s.%03ldZ [%s] [pid %d] %s:%d: %s\n", ts,
                (long)(tv.tv_usec / 1000), bf_log_level_name(level),
                (int)getpid(), file, line, msg);
    else
        fprintf(stderr, "%s.%03ldZ [%s] [pid %d] %s\n", ts,
                (long)(tv.tv_usec / 1000), bf_log_level_name(level),
                (int)getpid(), msg);
}

void bf_log_set(bf_log_fn *fn, void *baton, bf_log_level_e level)
{
    sink = fn ? fn : stderr_sink;
    sink_baton = baton;
    max_level = level;
}

int bf_log_is_level(bf_log_level_e level)
{
    return level <= max_level;
}

void bf_log_v(const char *file, int line, bf_log_level_e level, const char *fmt,
              va_list ap)
{
    char msg[2048];

    if (level > max_level)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    sink(sink_baton, file, line, level, msg);
}

void bf_log_(const char *file, int line, bf_log_level_e level, const char *fmt,
             ...)
{
    va_list ap;

    va_start(ap, fmt);
    bf_log_v(file, line, level, fmt, ap);
    va_end(ap);
}
