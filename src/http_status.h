/*
 * http_status: the process's HTTP endpoint (--metrics-listen): /metrics
 * in the Prometheus text format, /healthz and /readyz with a JSON body.
 * Served by libmicrohttpd on a thread of its own, from the metrics
 * registry (metrics.h), which the daemon's loop fills; a scrape never
 * blocks the loop.  Anything else is 404; only GET and HEAD are served.
 */
#ifndef TXIDSYNC_HTTP_STATUS_H
#define TXIDSYNC_HTTP_STATUS_H

#include <stddef.h>

#include "metrics.h"

typedef struct HttpStatus HttpStatus;

/* Seconds without a published turn of the loop after which /healthz
 * answers 503. */
#define HTTP_STATUS_STALL_S 60.0

/*
 * Listens on listen ("HOST:PORT", "[V6]:PORT", or ":PORT" for every
 * address), serving m (borrowed; it must outlive the server); /readyz
 * wants every table's lag at most max_lag_s.  Returns the server, or
 * NULL with err filled (a malformed address, a port in use).
 */
HttpStatus *http_status_start(const char *listen, Metrics *m, double max_lag_s, char *err,
                              size_t errlen) __attribute__((warn_unused_result));

/* Stops serving (waits for the answers in progress) and frees s. */
void http_status_stop(HttpStatus *s);

#endif
