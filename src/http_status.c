/*
 * http_status: /metrics, /healthz and /readyz over libmicrohttpd (see
 * http_status.h).
 */
#include "http_status.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

#define BODY_MAX ((size_t)64 << 20)

struct HttpStatus {
    struct MHD_Daemon *mhd;
    Metrics *m;
    double max_lag_s;
    struct sockaddr_storage addr;
};

/* Queues body with status and content type on c. */
static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    HttpStatus *s = cls;
    static const char json[] = "application/json";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(c, 405, "text/plain", "only GET and HEAD\n", 18);
    Buf body;
    buf_init(&body, BODY_MAX);
    unsigned status = 200;
    const char *type = json;
    if (!strcmp(url, "/metrics")) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        status = metrics_render(s->m, &body) == 0 ? 200 : 500;
    } else if (!strcmp(url, "/healthz")) {
        status = (unsigned)metrics_health(s->m, clock_mono_s(), HTTP_STATUS_STALL_S, &body);
    } else if (!strcmp(url, "/readyz")) {
        status = (unsigned)metrics_ready(s->m, s->max_lag_s, &body);
    } else {
        type = "text/plain";
        status = 404;
        if (buf_puts(&body, "not found: /metrics, /healthz and /readyz are served\n") < 0)
            status = 500;
    }
    enum MHD_Result r = answer(c, status, type, buf_str(&body), body.len);
    buf_free(&body);
    return r;
}

/* Parses listen into s->addr.  Returns 0, or -1 with err filled. */
static int parse_listen(HttpStatus *s, const char *listen, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1])
        return err_printf(err, errlen, "--metrics-listen: expected HOST:PORT, got '%s'", listen);
    char host[256];
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host))
        return err_printf(err, errlen, "--metrics-listen: host too long");
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    char *h = host;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        h = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
    if (rc != 0)
        return err_printf(err, errlen, "--metrics-listen %s: %s", listen, gai_strerror(rc));
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

HttpStatus *http_status_start(const char *listen, Metrics *m, double max_lag_s, char *err,
                              size_t errlen)
{
    HttpStatus *s = calloc(1, sizeof(*s));
    if (!s) {
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    s->m = m;
    s->max_lag_s = max_lag_s;
    if (parse_listen(s, listen, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (s->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    s->mhd =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&s->addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->mhd) {
        err_printf(err, errlen, "--metrics-listen %s: cannot listen%s%s", listen, errno ? ": " : "",
                   errno ? strerror(errno) : "");
        free(s);
        return NULL;
    }
    return s;
}

void http_status_stop(HttpStatus *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    free(s);
}
