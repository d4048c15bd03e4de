/*
 * es: the Elasticsearch/OpenSearch client over libcurl (see es.h).
 */
#include "es.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "clock.h"
#include "es_auth.h"
#include "json.h"
#include "json_canon.h"
#include "log.h"
#include "loop.h"

#define ES_RESPONSE_MAX ((size_t)256 << 20)

struct EsClient {
    CURL *curl;
    struct curl_slist *json_headers;
    struct curl_slist *ndjson_headers;
    struct curl_slist *plain_headers; /* for requests without a body: the API key, or NULL */
    EsSecurity sec; /* sec.base: the URL without credentials, for requests and messages */
    char error[CURL_ERROR_SIZE];
    long last_status;
    Buf bulk_resp; /* the response of the last es_bulk, kept for its memory */
};

EsClient *es_client_new(const char *base_url, const EsAuth *auth, char *err, size_t errlen)
{
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    EsClient *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    buf_init(&c->bulk_resp, ES_RESPONSE_MAX);
    if (es_security_load(base_url, auth, &c->sec, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    c->curl = curl_easy_init();
    if (!c->curl)
        goto oom;
    c->json_headers =
        es_security_headers(&c->sec, curl_slist_append(NULL, "Content-Type: application/json"));
    /* No "Expect: 100-continue" before a large bulk body: the sink is
     * known to take it, and the wait would cost a round trip. */
    struct curl_slist *nd = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    nd = nd ? curl_slist_append(nd, "Expect:") : NULL;
    c->ndjson_headers = nd ? es_security_headers(&c->sec, nd) : NULL;
    if (!c->ndjson_headers)
        curl_slist_free_all(nd);
    c->plain_headers = es_security_headers(&c->sec, NULL);
    if (!c->json_headers || !c->ndjson_headers || (c->sec.auth_header && !c->plain_headers))
        goto oom;
    return c;
oom:
    err_printf(err, errlen, "out of memory creating the sink client");
    es_client_free(c);
    return NULL;
}

void es_client_free(EsClient *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->json_headers);
    curl_slist_free_all(c->ndjson_headers);
    curl_slist_free_all(c->plain_headers);
    es_security_free(&c->sec);
    buf_free(&c->bulk_resp);
    free(c);
}

const char *es_client_url(const EsClient *c)
{
    return c->sec.base;
}

long es_client_last_status(const EsClient *c)
{
    return c->last_status;
}

/* libcurl write callback: appends to the Buf, fails the transfer when the
 * response exceeds the buffer's maximum. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Buf *b = userdata;
    size_t len = size * nmemb;
    if (buf_append(b, ptr, len) < 0)
        return 0;
    return len;
}

/* What a failed transfer came to: libcurl's words, its detail, and for a
 * certificate that does not verify, what to look at. */
static void es_transfer_error(CURLcode rc, const char *detail, char *out, size_t len)
{
    int n = snprintf(out, len, "%s", curl_easy_strerror(rc));
    if (detail && *detail && n >= 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, " (%.*s)", (int)strcspn(detail, "\n"), detail);
    if ((rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) && n >= 0 &&
        (size_t)n < len)
        snprintf(out + n, len - (size_t)n,
                 ": is --es-ca-file the CA that signed the server's certificate?");
}

/*
 * The options every transfer shares: url, no signals, no Nagle delay, the
 * connect and total timeouts, the response into resp.  compressed asks
 * for a gzipped response; bulk responses are not worth the sink's CPU
 * (about 30 KB for a 300 KB request, on what is usually a LAN).
 */
static void set_transfer(const EsClient *c, CURL *h, const char *url, Buf *resp, bool compressed)
{
    es_security_apply(&c->sec, h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    if (compressed)
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
}

EsResult es_request(EsClient *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, long *status, Buf *resp, char *err,
                    size_t errlen)
{
    char url[2048];
    if ((size_t)snprintf(url, sizeof(url), "%s%s", c->sec.base, path) >= sizeof(url)) {
        err_printf(err, errlen, "request path too long: %.80s", path);
        return ES_FAIL;
    }
    buf_reset(resp);
    c->last_status = 0;
    CURL *h = c->curl;
    curl_easy_reset(h);
    set_transfer(c, h, url, resp, strncmp(path, ES_BULK_PATH, sizeof(ES_BULK_PATH) - 1) != 0);
    c->error[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER,
                         content_type && strstr(content_type, "ndjson") ? c->ndjson_headers
                                                                        : c->json_headers);
    } else {
        if (c->plain_headers)
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->plain_headers);
        if (!strcmp(method, "HEAD"))
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        char why[CURL_ERROR_SIZE + 160];
        es_transfer_error(rc, c->error, why, sizeof(why));
        err_printf(err, errlen, "%s %s%s: %s", method, c->sec.base, path, why);
        return ES_RETRY;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    c->last_status = *status;
    return ES_OK;
}

/* Classifies an HTTP status of a whole request. */
static EsResult classify(long status)
{
    if (status >= 200 && status < 300)
        return ES_OK;
    if (status == 429 || status >= 500)
        return ES_RETRY;
    return ES_FAIL;
}

/* Puts "type: reason" of an error object (or the raw text) into out. */
static void describe_error(yajl_val error, char *out, size_t outlen)
{
    const char *type_path[] = {"type", NULL};
    const char *reason_path[] = {"reason", NULL};
    yajl_val type = yajl_tree_get(error, type_path, yajl_t_string);
    yajl_val reason = yajl_tree_get(error, reason_path, yajl_t_string);
    if (type || reason)
        snprintf(out, outlen, "%s: %s", type ? YAJL_GET_STRING(type) : "error",
                 reason ? YAJL_GET_STRING(reason) : "(no reason)");
    else
        snprintf(out, outlen, "unknown error");
}

/* What a refused request says, with what to check for a refused login. */
static void describe_status(long status, const char *body, char *out, size_t outlen)
{
    char what[512] = "";
    es_describe_error_body(body, what, sizeof(what));
    if (status == 401)
        snprintf(out, outlen,
                 "authentication failed: check --es-user and its password, or the API key");
    else if (status == 403)
        snprintf(out, outlen, "forbidden: the sink's user may not do this (%s)", what);
    else if (status == 400 && strstr(body, "SSL certificate"))
        snprintf(out, outlen,
                 "the sink asks for a client certificate: give --es-cert-file and --es-key-file");
    else
        snprintf(out, outlen, "%s", what);
}

EsResult es_call(EsClient *c, const char *method, const char *path, const char *body,
                 long *status_out, Buf *resp, char *err, size_t errlen)
{
    long status = 0;
    EsResult r = es_request(c, method, path, body, body ? strlen(body) : 0, "application/json",
                            &status, resp, err, errlen);
    if (status_out)
        *status_out = status;
    if (r != ES_OK)
        return r;
    r = classify(status);
    if (r != ES_OK) {
        char what[600] = "";
        describe_status(status, buf_str(resp), what, sizeof(what));
        err_printf(err, errlen, "%s %s%s: http %ld: %s", method, c->sec.base, path, status, what);
    }
    return r;
}

void es_describe_error_body(const char *body, char *out, size_t outlen)
{
    yajl_val v = yajl_tree_parse(body, NULL, 0);
    const char *error_path[] = {"error", NULL};
    yajl_val e = v ? yajl_tree_get(v, error_path, yajl_t_object) : NULL;
    if (e)
        describe_error(e, out, outlen);
    else
        snprintf(out, outlen, "%.200s", body);
    yajl_tree_free(v);
}

char *es_escape(EsClient *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    if (!e)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

EsResult es_refresh(EsClient *c, const char *index, char *err, size_t errlen)
{
    char *ix = es_escape(c, index);
    if (!ix) {
        err_printf(err, errlen, "out of memory");
        return ES_FAIL;
    }
    char path[1024];
    snprintf(path, sizeof(path), "/%s/_refresh", ix);
    free(ix);
    Buf resp;
    buf_init(&resp, 1 << 20);
    EsResult r = es_call(c, "POST", path, NULL, NULL, &resp, err, errlen);
    buf_free(&resp);
    return r;
}

/* Appends the action line {"<action>":{"_index":..,"_id":..,"version":..,
 * "version_type":"external"}} and a newline, byte for byte what yajl's
 * generator would write, without building one per action. */
static int add_action(Buf *body, const char *action, const char *index, const char *id,
                      uint64_t version)
{
    if (buf_puts(body, "{\"") < 0 || buf_puts(body, action) < 0 ||
        buf_puts(body, "\":{\"_index\":") < 0 ||
        json_append_string(body, index, strlen(index)) < 0 || buf_puts(body, ",\"_id\":") < 0 ||
        json_append_string(body, id, strlen(id)) < 0 || buf_puts(body, ",\"version\":") < 0 ||
        json_append_u64(body, version) < 0 ||
        buf_puts(body, ",\"version_type\":\"external\"}}\n") < 0)
        return -1;
    return 0;
}

int es_bulk_add_index(Buf *body, const char *index, const char *id, uint64_t version,
                      const char *doc, size_t doc_len)
{
    size_t mark = body->len;
    if (memchr(doc, '\n', doc_len))
        return -1;
    if (add_action(body, "index", index, id, version) < 0 || buf_append(body, doc, doc_len) < 0 ||
        buf_append(body, "\n", 1) < 0) {
        body->len = mark;
        if (body->data)
            body->data[mark] = '\0';
        return -1;
    }
    return 0;
}

int es_bulk_add_delete(Buf *body, const char *index, const char *id, uint64_t version)
{
    size_t mark = body->len;
    if (add_action(body, "delete", index, id, version) < 0) {
        body->len = mark;
        if (body->data)
            body->data[mark] = '\0';
        return -1;
    }
    return 0;
}

/* Fills one bulk item's outcome from its response object. */
static void bulk_item(yajl_val op, EsBulkItem *item)
{
    const char *status_path[] = {"status", NULL};
    const char *error_path[] = {"error", NULL};
    const char *result_path[] = {"result", NULL};
    yajl_val st = yajl_tree_get(op, status_path, yajl_t_number);
    yajl_val e = yajl_tree_get(op, error_path, yajl_t_object);
    yajl_val res = yajl_tree_get(op, result_path, yajl_t_string);
    const char *result = res ? YAJL_GET_STRING(res) : NULL;
    item->status = st && YAJL_IS_INTEGER(st) ? (int)YAJL_GET_INTEGER(st) : 0;
    item->error[0] = '\0';
    if (e)
        describe_error(e, item->error, sizeof(item->error));
    if (item->status >= 200 && item->status < 300 && !e)
        item->result = ES_ITEM_OK;
    else if (item->status == 404 && !e && (!result || !strcmp(result, "not_found")))
        item->result = ES_ITEM_OK; /* delete of a document that is not there */
    else if (item->status == 409 && strstr(item->error, "version_conflict_engine_exception"))
        item->result = ES_ITEM_CONFLICT;
    else if (item->status == 429 || item->status >= 500 || item->status == 0)
        item->result = ES_ITEM_RETRY;
    else
        item->result = ES_ITEM_REJECTED;
}

/* The common case of a bulk response, "errors":false with one status per
 * item, is recognised by a scan without building a tree: every item is
 * then written (or a delete of an absent document).  Anything else is
 * parsed item by item. */
EsResult es_bulk_parse(const char *where, long status, const Buf *resp, size_t n, EsBulkItem *items,
                       char *err, size_t errlen)
{
    EsResult r = classify(status);
    if (r != ES_OK) {
        char what[600];
        describe_status(status, buf_str(resp), what, sizeof(what));
        err_printf(err, errlen, "POST %s/_bulk: http %ld: %.300s", where, status, what);
        return r;
    }
    const char *text = buf_str(resp);
    const char *flag = strstr(text, "\"errors\":");
    if (flag && flag - text < 64 && strncmp(flag + 9, "false", 5) == 0) {
        size_t statuses = 0;
        for (const char *p = strstr(flag, "\"status\":"); p; p = strstr(p + 9, "\"status\":"))
            statuses++;
        if (statuses == n) {
            for (size_t i = 0; i < n; i++) {
                items[i].result = ES_ITEM_OK;
                items[i].status = 200;
                items[i].error[0] = '\0';
            }
            return ES_OK;
        }
    }
    char perr[256];
    yajl_val v = yajl_tree_parse(text, perr, sizeof(perr));
    const char *items_path[] = {"items", NULL};
    yajl_val arr = v ? yajl_tree_get(v, items_path, yajl_t_array) : NULL;
    r = ES_OK;
    if (!arr) {
        err_printf(err, errlen, "POST %s/_bulk: response not understood: %.200s", where, text);
        r = ES_FAIL;
    } else if (YAJL_GET_ARRAY(arr)->len != n) {
        err_printf(err, errlen, "POST %s/_bulk: %zu items answered for %zu sent", where,
                   YAJL_GET_ARRAY(arr)->len, n);
        r = ES_FAIL;
    }
    for (size_t i = 0; r == ES_OK && i < n; i++) {
        yajl_val it = YAJL_GET_ARRAY(arr)->values[i];
        if (!YAJL_IS_OBJECT(it) || YAJL_GET_OBJECT(it)->len != 1) {
            err_printf(err, errlen, "POST %s/_bulk: item %zu not understood", where, i);
            r = ES_FAIL;
            break;
        }
        bulk_item(YAJL_GET_OBJECT(it)->values[0], &items[i]);
    }
    yajl_tree_free(v);
    return r;
}

EsResult es_bulk(EsClient *c, const Buf *body, size_t n, EsBulkItem *items, char *err,
                 size_t errlen)
{
    long status = 0;
    EsResult r = es_request(c, "POST", ES_BULK_PATH, buf_str(body), body->len,
                            "application/x-ndjson", &status, &c->bulk_resp, err, errlen);
    if (r != ES_OK)
        return r;
    return es_bulk_parse(c->sec.base, status, &c->bulk_resp, n, items, err, errlen);
}

/* One connection of a pipe and the request on it, if any. */
typedef struct EsLane {
    CURL *curl;
    bool busy;
    Buf resp;
    size_t n;
    EsBulkItem *items; /* borrowed while busy */
    void *tag;
    char error[CURL_ERROR_SIZE];
} EsLane;

struct EsPipe {
    EsClient *c;
    CURLM *multi;
    Loop *loop;
    LoopTimer timer; /* libcurl's timeout */
    EsPipeDoneFn on_done;
    void *owner;
    EsLane *lanes;
    size_t n_lanes;
    size_t busy;
    char url[2048];
};

/* Hands back the request of lane l, whose transfer ended with rc. */
static void pipe_finish(EsPipe *p, EsLane *l, CURLcode rc, EsPipeDone *done)
{
    curl_multi_remove_handle(p->multi, l->curl);
    l->busy = false;
    p->busy--;
    done->tag = l->tag;
    done->status = 0;
    done->err[0] = '\0';
    if (rc != CURLE_OK) {
        char why[CURL_ERROR_SIZE + 160];
        es_transfer_error(rc, l->error, why, sizeof(why));
        err_printf(done->err, sizeof(done->err), "POST %s/_bulk: %s", p->c->sec.base, why);
        p->c->last_status = 0;
        done->result = ES_RETRY;
        return;
    }
    long status = 0;
    curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &status);
    p->c->last_status = status;
    done->status = status;
    done->result = es_bulk_parse(p->c->sec.base, status, &l->resp, l->n, l->items, done->err,
                                 sizeof(done->err));
}

/* Hands every finished transfer to the owner. */
static void pipe_collect(EsPipe *p)
{
    int queued = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(p->multi, &queued)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        EsLane *l = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&l);
        if (!l || !l->busy)
            continue;
        EsPipeDone done;
        pipe_finish(p, l, m->data.result, &done);
        p->on_done(p->owner, &done);
    }
}

/* The loop's call for one of the pipe's connections. */
static void on_socket_ready(void *ctx, int fd, int events)
{
    EsPipe *p = ctx;
    int mask = ((events & LOOP_READ) ? CURL_CSELECT_IN : 0) |
               ((events & LOOP_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(p->multi, fd, mask, &running);
    pipe_collect(p);
}

/* The loop's call when libcurl's timeout is due. */
static void on_timeout(void *ctx)
{
    EsPipe *p = ctx;
    int running = 0;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    pipe_collect(p);
}

/* libcurl says which of its sockets to wait on, and for what. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    EsPipe *p = userp;
    if (what == CURL_POLL_REMOVE) {
        loop_unwatch(p->loop, s);
        return 0;
    }
    int events =
        ((what & CURL_POLL_IN) ? LOOP_READ : 0) | ((what & CURL_POLL_OUT) ? LOOP_WRITE : 0);
    return loop_watch(p->loop, s, events, on_socket_ready, p) == 0 ? 0 : -1;
}

/* libcurl says when it wants to be called for its timeouts (-1: never). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    EsPipe *p = userp;
    if (timeout_ms < 0)
        loop_timer_cancel(p->loop, &p->timer);
    else
        loop_timer_after_ms(p->loop, &p->timer, timeout_ms);
    return 0;
}

EsPipe *es_pipe_new(EsClient *c, size_t max_in_flight, Loop *loop, EsPipeDoneFn on_done,
                    void *owner, char *err, size_t errlen)
{
    if (max_in_flight < 1 || max_in_flight > 64) {
        err_printf(err, errlen, "%zu requests in flight is not within 1..64", max_in_flight);
        return NULL;
    }
    EsPipe *p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    p->c = c;
    p->loop = loop;
    p->on_done = on_done;
    p->owner = owner;
    loop_timer_init(&p->timer, on_timeout, p);
    if ((size_t)snprintf(p->url, sizeof(p->url), "%s%s", c->sec.base, ES_BULK_PATH) >=
        sizeof(p->url)) {
        err_printf(err, errlen, "sink url too long");
        free(p);
        return NULL;
    }
    p->multi = curl_multi_init();
    p->lanes = calloc(max_in_flight, sizeof(*p->lanes));
    if (!p->multi || !p->lanes)
        goto oom;
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    p->n_lanes = max_in_flight;
    for (size_t i = 0; i < max_in_flight; i++) {
        EsLane *l = &p->lanes[i];
        buf_init(&l->resp, ES_RESPONSE_MAX);
        l->curl = curl_easy_init();
        if (!l->curl)
            goto oom;
        CURL *h = l->curl;
        set_transfer(c, h, p->url, &l->resp, false);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, l->error);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->ndjson_headers);
        curl_easy_setopt(h, CURLOPT_PRIVATE, l);
    }
    return p;
oom:
    err_printf(err, errlen, "out of memory creating a bulk pipe");
    es_pipe_free(p);
    return NULL;
}

void es_pipe_free(EsPipe *p)
{
    if (!p)
        return;
    for (size_t i = 0; p->lanes && i < p->n_lanes; i++) {
        EsLane *l = &p->lanes[i];
        if (l->busy)
            curl_multi_remove_handle(p->multi, l->curl);
        if (l->curl)
            curl_easy_cleanup(l->curl);
        buf_free(&l->resp);
    }
    free(p->lanes);
    if (p->multi)
        curl_multi_cleanup(p->multi);
    if (p->loop)
        loop_timer_cancel(p->loop, &p->timer);
    free(p);
}

size_t es_pipe_in_flight(const EsPipe *p)
{
    return p->busy;
}

bool es_pipe_has_room(const EsPipe *p)
{
    return p->busy < p->n_lanes;
}

EsResult es_pipe_send(EsPipe *p, const Buf *body, size_t n, EsBulkItem *items, void *tag, char *err,
                      size_t errlen)
{
    EsLane *l = NULL;
    for (size_t i = 0; i < p->n_lanes && !l; i++)
        if (!p->lanes[i].busy)
            l = &p->lanes[i];
    if (!l) {
        err_printf(err, errlen, "POST %s/_bulk: no room for another request", p->c->sec.base);
        return ES_FAIL;
    }
    buf_reset(&l->resp);
    l->error[0] = '\0';
    curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, buf_str(body));
    curl_easy_setopt(l->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    l->busy = true;
    l->n = n;
    l->items = items;
    l->tag = tag;
    p->busy++;
    CURLMcode mc = curl_multi_add_handle(p->multi, l->curl);
    if (mc != CURLM_OK) {
        l->busy = false;
        p->busy--;
        err_printf(err, errlen, "POST %s/_bulk: %s", p->c->sec.base, curl_multi_strerror(mc));
        return ES_FAIL;
    }
    return ES_OK;
}

EsResult es_get_source(EsClient *c, const char *index, const char *id, bool *found, Buf *doc,
                       char *err, size_t errlen)
{
    char *ix = es_escape(c, index);
    char *eid = es_escape(c, id);
    EsResult r = ES_FAIL;
    *found = false;
    if (!ix || !eid) {
        err_printf(err, errlen, "out of memory");
        goto done;
    }
    char path[2048];
    snprintf(path, sizeof(path), "/%s/_source/%s", ix, eid);
    long status = 0;
    r = es_request(c, "GET", path, NULL, 0, NULL, &status, doc, err, errlen);
    if (r != ES_OK)
        goto done;
    if (status == 404) {
        /* Either the document or the whole index is missing: both mean
         * "nothing stored yet". */
        buf_reset(doc);
        goto done;
    }
    r = classify(status);
    if (r != ES_OK) {
        char what[600];
        describe_status(status, buf_str(doc), what, sizeof(what));
        err_printf(err, errlen, "GET %s%s: http %ld: %s", c->sec.base, path, status, what);
        goto done;
    }
    *found = true;
done:
    free(ix);
    free(eid);
    return r;
}

/* PUT (doc given) or DELETE (doc NULL) of document id in index; *status
 * gets the HTTP status. */
static EsResult doc_call(EsClient *c, const char *index, const char *id, const char *doc,
                         long *status, char *err, size_t errlen)
{
    char *ix = es_escape(c, index);
    char *eid = es_escape(c, id);
    EsResult r = ES_FAIL;
    Buf resp;
    buf_init(&resp, 1 << 20);
    if (!ix || !eid) {
        err_printf(err, errlen, "out of memory");
        goto done;
    }
    char path[2048];
    snprintf(path, sizeof(path), "/%s/_doc/%s", ix, eid);
    r = es_call(c, doc ? "PUT" : "DELETE", path, doc, status, &resp, err, errlen);
done:
    buf_free(&resp);
    free(ix);
    free(eid);
    return r;
}

EsResult es_put_doc(EsClient *c, const char *index, const char *id, const char *doc, char *err,
                    size_t errlen)
{
    long status = 0;
    return doc_call(c, index, id, doc, &status, err, errlen);
}

EsResult es_delete_doc(EsClient *c, const char *index, const char *id, bool *existed, char *err,
                       size_t errlen)
{
    long status = 0;
    EsResult r = doc_call(c, index, id, NULL, &status, err, errlen);
    *existed = r == ES_OK;
    return r != ES_OK && status == 404 ? ES_OK : r;
}

EsResult es_index_exists(EsClient *c, const char *index, bool *exists, char *err, size_t errlen)
{
    *exists = false;
    char *ix = es_escape(c, index);
    if (!ix) {
        err_printf(err, errlen, "out of memory");
        return ES_FAIL;
    }
    char path[1024];
    int n = snprintf(path, sizeof(path), "/%s", ix);
    free(ix);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        err_printf(err, errlen, "index name too long: %.80s", index);
        return ES_FAIL;
    }
    Buf resp;
    buf_init(&resp, 1 << 20);
    long status = 0;
    EsResult r = es_request(c, "HEAD", path, NULL, 0, NULL, &status, &resp, err, errlen);
    buf_free(&resp);
    if (r != ES_OK)
        return r;
    if (status == 200) {
        *exists = true;
        return ES_OK;
    }
    if (status == 404)
        return ES_OK;
    r = classify(status);
    err_printf(err, errlen, "HEAD %s%s: http %ld", c->sec.base, path, status);
    return r == ES_RETRY ? ES_RETRY : ES_FAIL;
}

/* How long the server keeps a scroll's context between two pages. */
#define ES_SCROLL_KEEP_ALIVE "5m"
#define ES_SCROLL_429_TRIES  12 /* see scroll_call */

struct EsScroll {
    EsClient *c;
    char *index;               /* escaped for the path */
    const char *sort_field;    /* borrowed */
    const char *const *fields; /* borrowed */
    size_t n_fields;
    char **path_text;    /* per field: its dotted path with '.' turned into NUL */
    const char ***paths; /* per field: NULL-terminated components into path_text */
    size_t page_size;
    char *scroll_id; /* the latest id the server gave; NULL when none is open */
    yajl_val page;   /* the parsed response holding the current page */
    yajl_val hits;   /* its hits.hits array, borrowed from page */
    size_t next;     /* the next hit of hits to hand out */
    bool started, done, failed;
    Buf resp;
    EsField *values;   /* n_fields, filled for the hit handed out */
    bool whole_source; /* es_scroll_canon_source: the whole _source, canonical */
    const char *canon_drop;
    Buf canon;
    EsHit hit;
};

/* Splits each field's dotted path into the components yajl_tree_get
 * takes.  Returns 0, or -1 when out of memory (s frees what was made). */
static int scroll_paths(EsScroll *s)
{
    s->path_text = calloc(s->n_fields ? s->n_fields : 1, sizeof *s->path_text);
    s->paths = calloc(s->n_fields ? s->n_fields : 1, sizeof *s->paths);
    if (!s->path_text || !s->paths)
        return -1;
    for (size_t i = 0; i < s->n_fields; i++) {
        s->path_text[i] = strdup(s->fields[i]);
        if (!s->path_text[i])
            return -1;
        size_t parts = 1;
        for (const char *p = s->fields[i]; *p; p++)
            parts += *p == '.';
        s->paths[i] = calloc(parts + 1, sizeof *s->paths[i]);
        if (!s->paths[i])
            return -1;
        size_t k = 0;
        char *part = s->path_text[i];
        s->paths[i][k++] = part;
        for (char *p = part; *p; p++) {
            if (*p == '.') {
                *p = '\0';
                s->paths[i][k++] = p + 1;
            }
        }
    }
    return 0;
}

EsScroll *es_scroll_open(EsClient *c, const char *index, const char *sort_field,
                         const char *const *fields, size_t n_fields, size_t page_size, char *err,
                         size_t errlen)
{
    if (page_size < 1 || page_size > 10000) {
        err_printf(err, errlen, "scroll page size %zu is not within 1..10000", page_size);
        return NULL;
    }
    EsScroll *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->c = c;
    s->sort_field = sort_field;
    s->fields = fields;
    s->n_fields = n_fields;
    s->page_size = page_size;
    buf_init(&s->resp, ES_RESPONSE_MAX);
    s->index = es_escape(c, index);
    s->values = calloc(n_fields ? n_fields : 1, sizeof *s->values);
    if (!s->index || !s->values || scroll_paths(s) != 0)
        goto oom;
    s->hit.fields = s->values;
    buf_init(&s->canon, ES_RESPONSE_MAX);
    return s;
oom:
    err_printf(err, errlen, "out of memory opening a scroll");
    es_scroll_free(s);
    return NULL;
}

/* Builds the body of the scroll's first search into body: size, versions,
 * the sort and the _source filter.  Returns 0, or -1 when out of memory. */
static int scroll_first_body(const EsScroll *s, Buf *body)
{
    JsonGen jg;
    if (json_gen_open(&jg, body) != 0)
        return -1;
    yajl_gen g = jg.g;
    bool ok = yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "size") &&
              json_gen_u64(g, s->page_size) && json_gen_cstr(g, "version") &&
              yajl_gen_bool(g, 1) == yajl_gen_status_ok && json_gen_cstr(g, "sort") &&
              yajl_gen_array_open(g) == yajl_gen_status_ok &&
              yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, s->sort_field) &&
              yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "order") &&
              json_gen_cstr(g, "asc") && json_gen_cstr(g, "missing") && json_gen_cstr(g, "_last") &&
              json_gen_cstr(g, "unmapped_type") && json_gen_cstr(g, "keyword") &&
              yajl_gen_map_close(g) == yajl_gen_status_ok &&
              yajl_gen_map_close(g) == yajl_gen_status_ok &&
              yajl_gen_array_close(g) == yajl_gen_status_ok && json_gen_cstr(g, "_source");
    if (ok && s->whole_source) {
        ok = yajl_gen_bool(g, 1) == yajl_gen_status_ok;
    } else if (ok && s->n_fields == 0) {
        ok = yajl_gen_bool(g, 0) == yajl_gen_status_ok;
    } else if (ok) {
        ok = yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "includes") &&
             yajl_gen_array_open(g) == yajl_gen_status_ok;
        for (size_t i = 0; ok && i < s->n_fields; i++)
            ok = json_gen_cstr(g, s->fields[i]);
        ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    }
    ok = ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
    return json_gen_close(&jg, ok);
}

/* Builds {"scroll":KEEP_ALIVE,"scroll_id":ID} into body, or with clear
 * true {"scroll_id":[ID]} for the clear request.  Returns 0, or -1 when
 * out of memory. */
static int scroll_id_body(const EsScroll *s, bool clear, Buf *body)
{
    JsonGen jg;
    if (json_gen_open(&jg, body) != 0)
        return -1;
    yajl_gen g = jg.g;
    bool ok = yajl_gen_map_open(g) == yajl_gen_status_ok;
    if (ok && !clear)
        ok = json_gen_cstr(g, "scroll") && json_gen_cstr(g, ES_SCROLL_KEEP_ALIVE);
    ok = ok && json_gen_cstr(g, "scroll_id");
    if (ok && clear)
        ok = yajl_gen_array_open(g) == yajl_gen_status_ok && json_gen_cstr(g, s->scroll_id) &&
             yajl_gen_array_close(g) == yajl_gen_status_ok;
    else if (ok)
        ok = json_gen_cstr(g, s->scroll_id);
    ok = ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
    return json_gen_close(&jg, ok);
}

/* Clears the scroll's server context, if one is open, ignoring errors. */
static void scroll_clear(EsScroll *s)
{
    if (!s->scroll_id)
        return;
    Buf body;
    buf_init(&body, 1 << 20);
    if (scroll_id_body(s, true, &body) == 0) {
        char ignored[256];
        long status = 0;
        if (es_request(s->c, "DELETE", "/_search/scroll", buf_str(&body), body.len,
                       "application/json", &status, &s->resp, ignored, sizeof(ignored)) != ES_OK)
            status = 0;
    }
    buf_free(&body);
    free(s->scroll_id);
    s->scroll_id = NULL;
}

/* Checks the page response s->page (shards, timeout), takes its scroll id
 * and hits.  what names the request for messages.  Returns ES_OK or
 * ES_FAIL with err filled. */
static EsResult scroll_take_page(EsScroll *s, const char *what, char *err, size_t errlen)
{
    const char *failed_path[] = {"_shards", "failed", NULL};
    const char *total_path[] = {"_shards", "total", NULL};
    const char *failures_path[] = {"_shards", "failures", NULL};
    const char *reason_path[] = {"reason", NULL};
    const char *timed_out_path[] = {"timed_out", NULL};
    const char *id_path[] = {"_scroll_id", NULL};
    const char *hits_path[] = {"hits", "hits", NULL};
    yajl_val failed = yajl_tree_get(s->page, failed_path, yajl_t_number);
    if (failed && (!YAJL_IS_INTEGER(failed) || YAJL_GET_INTEGER(failed) != 0)) {
        yajl_val total = yajl_tree_get(s->page, total_path, yajl_t_number);
        yajl_val failures = yajl_tree_get(s->page, failures_path, yajl_t_array);
        char why[512] = "no reason given";
        if (failures && YAJL_GET_ARRAY(failures)->len > 0) {
            yajl_val reason =
                yajl_tree_get(YAJL_GET_ARRAY(failures)->values[0], reason_path, yajl_t_object);
            if (reason)
                describe_error(reason, why, sizeof(why));
        }
        err_printf(err, errlen, "%s: %s of %s shards failed: %s", what, YAJL_GET_NUMBER(failed),
                   total ? YAJL_GET_NUMBER(total) : "?", why);
        return ES_FAIL;
    }
    if (YAJL_IS_TRUE(yajl_tree_get(s->page, timed_out_path, yajl_t_true))) {
        err_printf(err, errlen, "%s: the search timed out", what);
        return ES_FAIL;
    }
    yajl_val id = yajl_tree_get(s->page, id_path, yajl_t_string);
    s->hits = yajl_tree_get(s->page, hits_path, yajl_t_array);
    const char *id_text = id ? YAJL_GET_STRING(id) : NULL;
    if (!id_text || !s->hits) {
        err_printf(err, errlen, "%s: response not understood: %.200s", what, buf_str(&s->resp));
        return ES_FAIL;
    }
    if (!s->scroll_id || strcmp(s->scroll_id, id_text) != 0) {
        char *copy = strdup(id_text);
        if (!copy) {
            err_printf(err, errlen, "%s: out of memory", what);
            return ES_FAIL;
        }
        free(s->scroll_id);
        s->scroll_id = copy;
    }
    s->next = 0;
    return ES_OK;
}

/* Appends " (root cause: type: reason)" to err when the error response in
 * resp names a root cause other than what err says already: a search that
 * fails on every shard says only "all shards failed" at the top. */
static void append_root_cause(const Buf *resp, char *err, size_t errlen)
{
    const char *root_path[] = {"error", "root_cause", NULL};
    yajl_val v = yajl_tree_parse(buf_str(resp), NULL, 0);
    yajl_val roots = v ? yajl_tree_get(v, root_path, yajl_t_array) : NULL;
    if (roots && YAJL_GET_ARRAY(roots)->len > 0) {
        char why[512];
        describe_error(YAJL_GET_ARRAY(roots)->values[0], why, sizeof(why));
        size_t used = strlen(err);
        if (!strstr(err, why) && used < errlen)
            snprintf(err + used, errlen - used, " (root cause: %s)", why);
    }
    yajl_tree_free(v);
}

/* Sends one request of the scroll.  A node that refuses it with 429 (a
 * circuit breaker or a full search queue) ran none of it, so even a scroll
 * request is sent again without skipping a page: up to ES_SCROLL_429_TRIES
 * times, waiting 0.5 s, 1 s, 2 s, then 4 s between tries (about 35 s). */
static EsResult scroll_call(EsScroll *s, const char *path, const Buf *body, char *err,
                            size_t errlen)
{
    long status = 0;
    for (int tries = 1;; tries++) {
        EsResult r = es_call(s->c, "POST", path, buf_str(body), &status, &s->resp, err, errlen);
        if (r != ES_RETRY || status != 429 || tries >= ES_SCROLL_429_TRIES)
            return r;
        double wait_s = tries < 4 ? 0.25 * (1 << tries) : 4.0;
        log_msg(LOG_WARN, "%s; trying again in %.1f s", err, wait_s);
        clock_sleep_s(wait_s);
    }
}

/* Fetches the next page (the first search, then scroll requests) into
 * s->page and s->hits; sets s->done and clears the scroll when the page
 * is empty.  Returns ES_OK, ES_RETRY or ES_FAIL with err filled. */
static EsResult scroll_fetch(EsScroll *s, char *err, size_t errlen)
{
    char path[1024];
    Buf body;
    buf_init(&body, 1 << 20);
    EsResult r = ES_FAIL;
    yajl_tree_free(s->page);
    s->page = NULL;
    s->hits = NULL;
    if (!s->started) {
        int n =
            snprintf(path, sizeof(path), "/%s/_search?scroll=%s", s->index, ES_SCROLL_KEEP_ALIVE);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            err_printf(err, errlen, "index name too long: %.80s", s->index);
            goto done;
        }
        if (scroll_first_body(s, &body) != 0) {
            err_printf(err, errlen, "out of memory building a search");
            goto done;
        }
    } else {
        snprintf(path, sizeof(path), "/_search/scroll");
        if (scroll_id_body(s, false, &body) != 0) {
            err_printf(err, errlen, "out of memory building a scroll request");
            goto done;
        }
    }
    s->started = true;
    r = scroll_call(s, path, &body, err, errlen);
    if (r == ES_FAIL)
        append_root_cause(&s->resp, err, errlen);
    if (r != ES_OK)
        goto done;
    char what[1100];
    snprintf(what, sizeof(what), "POST %s%s", s->c->sec.base, path);
    char perr[256];
    s->page = yajl_tree_parse(buf_str(&s->resp), perr, sizeof(perr));
    if (!s->page) {
        err_printf(err, errlen, "%s: response not understood: %s", what, perr);
        r = ES_FAIL;
        goto done;
    }
    r = scroll_take_page(s, what, err, errlen);
    if (r == ES_OK && YAJL_GET_ARRAY(s->hits)->len == 0) {
        s->done = true;
        scroll_clear(s);
    }
done:
    buf_free(&body);
    return r;
}

EsResult es_scroll_next(EsScroll *s, const EsHit **hit, char *err, size_t errlen)
{
    *hit = NULL;
    if (s->failed) {
        err_printf(err, errlen, "the scroll failed before");
        return ES_FAIL;
    }
    if (s->done)
        return ES_OK;
    if (!s->hits || s->next >= YAJL_GET_ARRAY(s->hits)->len) {
        EsResult r = scroll_fetch(s, err, errlen);
        if (r != ES_OK) {
            s->failed = true;
            return r;
        }
        if (s->done)
            return ES_OK;
    }
    const char *id_path[] = {"_id", NULL};
    const char *version_path[] = {"_version", NULL};
    const char *source_path[] = {"_source", NULL};
    yajl_val h = YAJL_GET_ARRAY(s->hits)->values[s->next++];
    yajl_val id = yajl_tree_get(h, id_path, yajl_t_string);
    yajl_val version = yajl_tree_get(h, version_path, yajl_t_number);
    yajl_val source = yajl_tree_get(h, source_path, yajl_t_object);
    if (!id) {
        err_printf(err, errlen, "POST %s/_search: a hit without _id", s->c->sec.base);
        s->failed = true;
        return ES_FAIL;
    }
    s->hit.id = YAJL_GET_STRING(id);
    s->hit.has_version = version && YAJL_IS_INTEGER(version) && YAJL_GET_INTEGER(version) >= 0;
    s->hit.version = s->hit.has_version ? (uint64_t)YAJL_GET_INTEGER(version) : 0;
    for (size_t i = 0; i < s->n_fields; i++) {
        yajl_val v = source ? yajl_tree_get(source, s->paths[i], yajl_t_any) : NULL;
        s->values[i].text = NULL;
        s->values[i].is_string = false;
        if (v && YAJL_IS_STRING(v)) {
            s->values[i].text = YAJL_GET_STRING(v);
            s->values[i].is_string = true;
        } else if (v && YAJL_IS_NUMBER(v)) {
            s->values[i].text = YAJL_GET_NUMBER(v);
        }
    }
    if (s->whole_source) {
        buf_reset(&s->canon);
        if (json_canon_tree(source, s->canon_drop, &s->canon) != 0) {
            err_printf(err, errlen, "out of memory (the _source of document %s)", s->hit.id);
            s->failed = true;
            return ES_FAIL;
        }
        s->hit.source = buf_str(&s->canon);
    }
    *hit = &s->hit;
    return ES_OK;
}

void es_scroll_canon_source(EsScroll *s, const char *drop)
{
    s->whole_source = true;
    s->canon_drop = drop;
}

void es_scroll_free(EsScroll *s)
{
    if (!s)
        return;
    buf_free(&s->canon);
    if (s->index)
        scroll_clear(s);
    yajl_tree_free(s->page);
    buf_free(&s->resp);
    for (size_t i = 0; s->paths && i < s->n_fields; i++)
        free(s->paths[i]);
    for (size_t i = 0; s->path_text && i < s->n_fields; i++)
        free(s->path_text[i]);
    free(s->paths);
    free(s->path_text);
    free(s->values);
    free(s->scroll_id);
    free(s->index);
    free(s);
}
