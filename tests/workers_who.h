/*
 * What the worker tests share: a server whose workers report on each
 * connection which worker (and process) serves it, and record their setup and
 * teardown calls.  Not part of the library.
 */
#ifndef EVC_TEST_WORKERS_WHO_H
#define EVC_TEST_WORKERS_WHO_H

#include "support.h"
#include "evchat.h"

#include <pthread.h>

#define MAX_WORKERS 4

/* What the workers report to the test; guarded by lock. */
typedef struct report {
    pthread_mutex_t lock;
    int setups, teardowns;
    pthread_t setup_thread[MAX_WORKERS];
    pthread_t teardown_thread[MAX_WORKERS];
    int open_at_teardown[MAX_WORKERS];   /* chats still alive when teardown ran */
    unsigned fail_setup_of;             /* index whose setup fails, or MAX_WORKERS */
    int teardown_pipe;                  /* processes: "T<index>\n" per teardown, or -1 */
} report;

/* setup (a worker_state per worker), handle_accepted (a "who" chat), teardown
 * (records, and "T<index>\n" to teardown_pipe); data is a report. */
extern const struct evc_worker_ops who_worker_ops;
/* A zeroed report: no setup fails, no teardown pipe. */
void who_report_init(report *rep);
/* The port evc_workers_address names. */
int who_address_port(evc_workers *w);
/* One request on a fresh connection: which worker served it (and *pid, which
 * process), or UINT_MAX when no answer came in 10 s. */
unsigned who_ask(int port, long *pid);
/* The workers who_stop_on_signal stops: a SIGTERM handler for the tests. */
extern evc_workers *who_signalled;
void who_stop_on_signal(int sig);

#endif
