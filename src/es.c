/*
 * es: the Elasticsearch/OpenSearch client over libcurl (see es.h).
 */
#include "es.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define ES_RESPONSE_MAX ((size_t)256 << 20)

struct EsClient {
    CURL *curl;
    struct curl_slist *json_headers;
    struct curl_slist *ndjson_headers;
    char *base;    /* as given, may hold credentials: never printed */
    char *display; /* without credentials */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies url without any "user:password@" part into a new string. */
static char *strip_credentials(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (!at || (slash && at > slash))
        return strdup(url);
    size_t head = (size_t)(host - url);
    char *out = malloc(strlen(url) + 1);
    if (!out)
        return NULL;
    memcpy(out, url, head);
    strcpy(out + head, at + 1);
    return out;
}

EsClient *es_client_new(const char *base_url, char *err, size_t errlen)
{
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        set_err(err, errlen, "sink url must start with http:// or https://");
        return NULL;
    }
    EsClient *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->base = strdup(base_url);
    c->display = strip_credentials(base_url);
    c->curl = curl_easy_init();
    if (!c->base || !c->display || !c->curl)
        goto oom;
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    n = strlen(c->display);
    while (n > 0 && c->display[n - 1] == '/')
        c->display[--n] = '\0';
    c->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->ndjson_headers = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    if (!c->json_headers || !c->ndjson_headers)
        goto oom;
    return c;
oom:
    set_err(err, errlen, "out of memory creating the sink client");
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
    free(c->base);
    free(c->display);
    free(c);
}

const char *es_client_url(const EsClient *c)
{
    return c->display;
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

EsResult es_request(EsClient *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, long *status, Buf *resp, char *err,
                    size_t errlen)
{
    char url[2048];
    if ((size_t)snprintf(url, sizeof(url), "%s%s", c->base, path) >= sizeof(url)) {
        set_err(err, errlen, "request path too long: %.80s", path);
        return ES_FAIL;
    }
    buf_reset(resp);
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER,
                         content_type && strstr(content_type, "ndjson") ? c->ndjson_headers
                                                                        : c->json_headers);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        set_err(err, errlen, "%s %s%s: %s", method, c->display, path, curl_easy_strerror(rc));
        return ES_RETRY;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
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

/* Sends a request whose body is JSON, expects 2xx, describes the rest. */
static EsResult simple(EsClient *c, const char *method, const char *path, const char *body,
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
        char what[512] = "";
        yajl_val v = yajl_tree_parse(buf_str(resp), NULL, 0);
        const char *error_path[] = {"error", NULL};
        yajl_val e = v ? yajl_tree_get(v, error_path, yajl_t_object) : NULL;
        if (e)
            describe_error(e, what, sizeof(what));
        else
            snprintf(what, sizeof(what), "%.200s", buf_str(resp));
        yajl_tree_free(v);
        set_err(err, errlen, "%s %s%s: http %ld: %s", method, c->display, path, status, what);
    }
    return r;
}

/* Escapes s for use as one path segment into a malloc'd string. */
static char *escape(EsClient *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    if (!e)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

EsResult es_ensure_index(EsClient *c, const char *index, int replicas, bool state, char *err,
                         size_t errlen)
{
    char *ix = escape(c, index);
    char path[1024];
    char body[1024];
    Buf resp;
    buf_init(&resp, 1 << 20);
    if (!ix) {
        set_err(err, errlen, "out of memory");
        return ES_FAIL;
    }
    snprintf(path, sizeof(path), "/%s", ix);
    long status = 0;
    EsResult r = es_request(c, "HEAD", path, NULL, 0, NULL, &status, &resp, err, errlen);
    if (r == ES_OK && status == 200)
        goto done;
    if (r != ES_OK)
        goto done;
    if (state)
        snprintf(body, sizeof(body),
                 "{\"settings\":{\"number_of_shards\":1,\"number_of_replicas\":%d},"
                 "\"mappings\":{\"dynamic\":false,\"properties\":{}}}",
                 replicas);
    else
        snprintf(body, sizeof(body),
                 "{\"settings\":{\"number_of_replicas\":%d},"
                 "\"mappings\":{\"properties\":{\"txidsync\":{\"properties\":{"
                 "\"key\":{\"type\":\"keyword\"},"
                 "\"txid\":{\"type\":\"long\"},"
                 "\"version\":{\"type\":\"long\"}}}}}}",
                 replicas);
    r = simple(c, "PUT", path, body, &status, &resp, err, errlen);
    /* Another process may have created it in between. */
    if (r == ES_FAIL && status == 400 && strstr(buf_str(&resp), "resource_already_exists_exception"))
        r = ES_OK;
done:
    buf_free(&resp);
    free(ix);
    return r;
}

EsResult es_refresh(EsClient *c, const char *index, char *err, size_t errlen)
{
    char *ix = escape(c, index);
    if (!ix) {
        set_err(err, errlen, "out of memory");
        return ES_FAIL;
    }
    char path[1024];
    snprintf(path, sizeof(path), "/%s/_refresh", ix);
    free(ix);
    Buf resp;
    buf_init(&resp, 1 << 20);
    EsResult r = simple(c, "POST", path, NULL, NULL, &resp, err, errlen);
    buf_free(&resp);
    return r;
}

/* Context of the yajl generator's print callback: the target buffer and
 * whether an append failed. */
typedef struct GenSink {
    Buf *buf;
    int failed;
} GenSink;

static void gen_print(void *ctx, const char *s, size_t len)
{
    GenSink *g = ctx;
    if (!g->failed && buf_append(g->buf, s, len) < 0)
        g->failed = 1;
}

/* Appends the action line {"<action>":{"_index":..,"_id":..,"version":..,
 * "version_type":"external"}} and a newline. */
static int add_action(Buf *body, const char *action, const char *index, const char *id,
                      uint64_t version)
{
    GenSink sink = {body, 0};
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return -1;
    yajl_gen_config(g, yajl_gen_print_callback, gen_print, &sink);
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRIu64, version);
    int ok = yajl_gen_map_open(g) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)action, strlen(action)) == yajl_gen_status_ok &&
             yajl_gen_map_open(g) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)"_index", 6) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)index, strlen(index)) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)"_id", 3) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)id, strlen(id)) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)"version", 7) == yajl_gen_status_ok &&
             yajl_gen_number(g, num, (size_t)n) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)"version_type", 12) == yajl_gen_status_ok &&
             yajl_gen_string(g, (const unsigned char *)"external", 8) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    yajl_gen_free(g);
    if (!ok || sink.failed)
        return -1;
    return buf_append(body, "\n", 1);
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
    else if (item->status == 404 && result && !strcmp(result, "not_found"))
        item->result = ES_ITEM_OK; /* delete of a document that is not there */
    else if (item->status == 409 && strstr(item->error, "version_conflict_engine_exception"))
        item->result = ES_ITEM_CONFLICT;
    else if (item->status == 429 || item->status >= 500 || item->status == 0)
        item->result = ES_ITEM_RETRY;
    else
        item->result = ES_ITEM_REJECTED;
}

EsResult es_bulk(EsClient *c, const Buf *body, size_t n, EsBulkItem *items, char *err,
                 size_t errlen)
{
    Buf resp;
    buf_init(&resp, ES_RESPONSE_MAX);
    long status = 0;
    yajl_val v = NULL;
    EsResult r = es_request(c, "POST", "/_bulk", buf_str(body), body->len,
                            "application/x-ndjson", &status, &resp, err, errlen);
    if (r != ES_OK)
        goto done;
    r = classify(status);
    if (r != ES_OK) {
        set_err(err, errlen, "POST %s/_bulk: http %ld: %.300s", c->display, status, buf_str(&resp));
        goto done;
    }
    char perr[256];
    v = yajl_tree_parse(buf_str(&resp), perr, sizeof(perr));
    const char *items_path[] = {"items", NULL};
    yajl_val arr = v ? yajl_tree_get(v, items_path, yajl_t_array) : NULL;
    if (!arr) {
        set_err(err, errlen, "POST %s/_bulk: response not understood: %.200s", c->display,
                buf_str(&resp));
        r = ES_FAIL;
        goto done;
    }
    if (YAJL_GET_ARRAY(arr)->len != n) {
        set_err(err, errlen, "POST %s/_bulk: %zu items answered for %zu sent", c->display,
                YAJL_GET_ARRAY(arr)->len, n);
        r = ES_FAIL;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val it = YAJL_GET_ARRAY(arr)->values[i];
        if (!YAJL_IS_OBJECT(it) || YAJL_GET_OBJECT(it)->len != 1) {
            set_err(err, errlen, "POST %s/_bulk: item %zu not understood", c->display, i);
            r = ES_FAIL;
            goto done;
        }
        bulk_item(YAJL_GET_OBJECT(it)->values[0], &items[i]);
    }
done:
    yajl_tree_free(v);
    buf_free(&resp);
    return r;
}

EsResult es_get_source(EsClient *c, const char *index, const char *id, bool *found, Buf *doc,
                       char *err, size_t errlen)
{
    char *ix = escape(c, index);
    char *eid = escape(c, id);
    EsResult r = ES_FAIL;
    *found = false;
    if (!ix || !eid) {
        set_err(err, errlen, "out of memory");
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
        set_err(err, errlen, "GET %s%s: http %ld: %.200s", c->display, path, status, buf_str(doc));
        goto done;
    }
    *found = true;
done:
    free(ix);
    free(eid);
    return r;
}

EsResult es_put_doc(EsClient *c, const char *index, const char *id, const char *doc, char *err,
                    size_t errlen)
{
    char *ix = escape(c, index);
    char *eid = escape(c, id);
    EsResult r = ES_FAIL;
    Buf resp;
    buf_init(&resp, 1 << 20);
    if (!ix || !eid) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    char path[2048];
    snprintf(path, sizeof(path), "/%s/_doc/%s", ix, eid);
    r = simple(c, "PUT", path, doc, NULL, &resp, err, errlen);
done:
    buf_free(&resp);
    free(ix);
    free(eid);
    return r;
}
