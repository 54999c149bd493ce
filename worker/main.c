/* bulkfhir-worker: command line, daemonizing, signals, pidfile. */
#include "config.h"
#include "worker.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

volatile sig_atomic_t worker_stop_requested;
volatile sig_atomic_t worker_reload_requested;

/* the mask to wait with: the worker's signals unblocked */
static sigset_t wait_mask;

static void on_stop(int sig)
{
    (void)sig;
    worker_stop_requested = 1;
}

static void on_reload(int sig)
{
    (void)sig;
    worker_reload_requested = 1;
}

int worker_wait(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    struct timespec ts = { .tv_sec = timeout_ms / 1000,
                           .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    int rc;

    if (worker_stop_requested)
        return 0;
    /* signals are blocked everywhere else, so one arriving before this call
     * is delivered here and cannot be missed (the pselect pattern) */
    rc = ppoll(fd >= 0 ? &pfd : NULL, fd >= 0 ? 1 : 0, &ts, &wait_mask);
    if (rc < 0 && errno == EINTR)
        return 0;
    return rc;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: bulkfhir-worker [OPTIONS]\n"
        "Claims FHIR Bulk Data export tasks from PostgreSQL and writes NDJSON.\n\n"
        "  -c, --config FILE        config file (key = value lines)\n"
        "  -d, --database CONNINFO  libpq conninfo or URI\n"
        "  -e, --export-root DIR    directory for job output\n"
        "  -f, --foreground         do not daemonize\n"
        "  -p, --pidfile FILE       write the process id there\n"
        "  -i, --id NAME            worker id (default host:pid:random)\n"
        "  -l, --log-level LEVEL    error | warn | notice | info | debug\n"
        "  -1, --once               exit 0 when no task is claimable\n"
        "  -h, --help               this help\n"
        "  -V, --version            print the version\n");
}

static void override(worker_t *w, const char *key, const char *value)
{
    APR_ARRAY_PUSH(w->overrides.keys, const char *) = apr_pstrdup(w->pool, key);
    APR_ARRAY_PUSH(w->overrides.values, const char *) =
        apr_pstrdup(w->pool, value);
}

static const char *absolute(apr_pool_t *p, const char *path)
{
    char cwd[PATH_MAX];

    if (!path || path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return path;
    return apr_pstrcat(p, cwd, "/", path, NULL);
}

static bool daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0) {
        bf_log(BF_LOG_ERR, "BF02010: fork: %s", strerror(errno));
        return false;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0) {
        bf_log(BF_LOG_ERR, "BF02011: setsid: %s", strerror(errno));
        return false;
    }
    if (chdir("/") != 0) {
        bf_log(BF_LOG_ERR, "BF02012: chdir /: %s", strerror(errno));
        return false;
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    /* stderr stays: it is the log */
    return true;
}

static bool write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");

    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        bf_log(BF_LOG_ERR, "BF02013: pidfile %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* A fatal signal: say so on stderr (the worker log) with a backtrace,
 * then die of the same signal.  Only async-signal-safe calls, apart from
 * backtrace(), which glibc makes safe once it has been called before. */
static void on_fatal(int sig)
{
    static const char head[] = "BF02900: worker crashed: fatal signal ";
    char num[8];
    int n = 0, v = sig;
    void *frames[48];
    int depth;

    do {
        num[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof num);
    if (write(STDERR_FILENO, head, sizeof head - 1) < 0)
        _exit(128 + sig);
    while (n > 0)
        if (write(STDERR_FILENO, &num[--n], 1) < 0)
            break;
    if (write(STDERR_FILENO, "\n", 1) < 0)
        _exit(128 + sig);
    depth = backtrace(frames, 48);
    backtrace_symbols_fd(frames, depth, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handlers(void)
{
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
    struct sigaction sa;
    void *warm[1];
    size_t i;

    backtrace(warm, 1); /* load libgcc now, not inside the handler */
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "database", required_argument, NULL, 'd' },
        { "export-root", required_argument, NULL, 'e' },
        { "foreground", no_argument, NULL, 'f' },
        { "pidfile", required_argument, NULL, 'p' },
        { "id", required_argument, NULL, 'i' },
        { "log-level", required_argument, NULL, 'l' },
        { "once", no_argument, NULL, '1' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    worker_t w;
    bool foreground = false;
    const char *pidfile = NULL;
    const char *id = NULL;
    char host[256];
    struct sigaction sa;
    sigset_t block;
    int c, rc;

    memset(&w, 0, sizeof w);
    apr_app_initialize(&argc, (const char *const **)&argv, NULL);
    apr_pool_create(&w.pool, NULL);
    w.overrides.keys = apr_array_make(w.pool, 4, sizeof(const char *));
    w.overrides.values = apr_array_make(w.pool, 4, sizeof(const char *));

    while ((c = getopt_long(argc, argv, "c:d:e:fp:i:l:1hV", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'c':
            w.config_path = optarg;
            break;
        case 'd':
            override(&w, "database", optarg);
            break;
        case 'e':
            override(&w, "export_root", optarg);
            break;
        case 'f':
            foreground = true;
            break;
        case 'p':
            pidfile = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'l':
            override(&w, "log_level", optarg);
            break;
        case '1':
            w.once = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("bulkfhir-worker %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* paths must survive chdir("/") and SIGHUP */
    w.config_path = absolute(w.pool, w.config_path);
    pidfile = absolute(w.pool, pidfile);
    for (c = 0; c < w.overrides.keys->nelts; c++)
        if (strcmp(APR_ARRAY_IDX(w.overrides.keys, c, const char *),
                   "export_root") == 0)
            APR_ARRAY_IDX(w.overrides.values, c, const char *) = absolute(
                w.pool, APR_ARRAY_IDX(w.overrides.values, c, const char *));

    apr_pool_create(&w.cfg_pool, w.pool);
    if (!worker_config_load(w.cfg_pool, &w.cfg, w.config_path, &w.overrides))
        return 1;
    w.cfg.export_root = absolute(w.cfg_pool, w.cfg.export_root);
    bf_log_set(NULL, NULL, w.cfg.log_level);

    if (!foreground && !daemonize())
        return 1;
    if (pidfile && !write_pidfile(pidfile))
        return 1;

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    w.host = apr_pstrdup(w.pool, host);
    if (id) {
        w.id = apr_pstrdup(w.pool, id);
    } else {
        unsigned r;
        int fd = open("/dev/urandom", O_RDONLY);

        if (fd < 0 || read(fd, &r, sizeof r) != (ssize_t)sizeof r)
            r = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
        if (fd >= 0)
            close(fd);
        w.id = apr_psprintf(w.pool, "%s:%d:%08x", host, (int)getpid(), r);
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());

    /* handlers only set flags; the signals stay blocked except while the
     * worker waits (worker_wait), so none is lost between check and wait */
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    install_crash_handlers();
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGHUP);

    worker_config_log(w.pool, &w.cfg, w.config_path, w.id);
    rc = worker_run(&w);
    if (pidfile)
        unlink(pidfile);
    apr_pool_destroy(w.pool);
    apr_terminate();
    return rc;
}
