/*
 * es: the Elasticsearch/OpenSearch client.  Owns every libcurl call of the
 * project: one reused connection, JSON request bodies built with yajl's
 * generator, responses parsed with yajl, and the classification of
 * failures into "retry later" and "rejected for good".
 *
 * It knows nothing of Postgres or cursors; what to send and when to retry
 * is decided by the caller (sync).  The base URL may carry credentials
 * (http://user:pass@host:9200); they are never part of a message, which
 * names es_client_url() instead.
 */
#ifndef TXIDSYNC_ES_H
#define TXIDSYNC_ES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "buf.h"

typedef struct EsClient EsClient;

/* What a request came to. */
typedef enum EsResult {
    ES_OK = 0,    /* done; for a bulk, look at each item */
    ES_RETRY = 1, /* network error, timeout, 429 or 5xx: try again later */
    ES_FAIL = -1, /* rejected for good (other 4xx) or not understood */
} EsResult;

/* How to reach a secured cluster; every field may be NULL/false.  The
 * secrets are read when the client is created. */
typedef struct EsAuth {
    const char *user;          /* basic auth; else the URL's userinfo, if any */
    const char *password;      /* the password itself (environment, config file) */
    const char *password_file; /* or the file holding it */
    const char *api_key;       /* "Authorization: ApiKey KEY" (environment, config file) */
    const char *api_key_file;  /* or the file holding the key */
    const char *ca_file;       /* the CA bundle that verifies the server (PEM) */
    const char *cert_file;     /* client certificate (PEM) */
    const char *key_file;      /* and its key */
    bool insecure;             /* verify neither certificate nor host name */
} EsAuth;

/* Creates a client for base_url ("http://host:port", no trailing path;
 * credentials percent-encoded), with auth (NULL: none).  Returns NULL
 * with err filled on a malformed URL or option (never quoting a secret)
 * or when out of memory.  The caller frees it with es_client_free. */
EsClient *es_client_new(const char *base_url, const EsAuth *auth, char *err, size_t errlen);

void es_client_free(EsClient *c);

/* The base URL without credentials, for messages; borrowed. */
const char *es_client_url(const EsClient *c);

/* The HTTP status of the last response, or 0 when the last request got
 * none (a network error): tells a busy sink (429, 503) from an absent one. */
long es_client_last_status(const EsClient *c);

/*
 * One HTTP request: method, path (starting with '/'), optional body of
 * body_len bytes (NULL for none) sent as content_type.  The response body
 * goes into resp (reset first) and the HTTP status into *status.
 * Returns ES_OK whenever an HTTP response arrived (whatever its status),
 * ES_RETRY with err filled on a network error or timeout.
 */
EsResult es_request(EsClient *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, long *status, Buf *resp, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/*
 * Sends method path with a JSON body (NULL: none), expecting 2xx: ES_OK,
 * else ES_RETRY/ES_FAIL with err saying "METHOD URL/PATH: http N: type:
 * reason".  *status (when not NULL) gets the HTTP status.  For the es_*
 * files.
 */
EsResult es_call(EsClient *c, const char *method, const char *path, const char *body, long *status,
                 Buf *resp, char *err, size_t errlen) __attribute__((warn_unused_result));

/* s escaped as one URL path segment, malloc'd; NULL when out of memory. */
char *es_escape(EsClient *c, const char *s);

/* An index as es_index_info found it. */
typedef struct EsIndexInfo {
    bool exists;
    long long documents; /* how many it holds, refreshed first when 0 */
    char owner[512];     /* _meta.txidsync.owner of its mapping; "" for none */
    char durability[16]; /* index.translog.durability: "request" or "async" */
} EsIndexInfo;

/* Looks index up (its document count, owner and translog durability).
 * Returns ES_OK with *info filled (info->exists false for a missing
 * index), or ES_RETRY/ES_FAIL with err filled. */
EsResult es_index_info(EsClient *c, const char *index, EsIndexInfo *info, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Creates index with the mapping of txidsync's metadata fields
 * (txidsync.key and txidsync.table keyword, txidsync.txid and
 * txidsync.version long), owner recorded as _meta.txidsync.owner (NULL:
 * none) and the given number of replicas, unless it exists already.  body
 * (a parsed {"settings", "mappings", "aliases"} object, or NULL) is the
 * user's: its members are kept, the metadata mapping and owner added, and
 * the replicas only set when it does not set them.  With state true the
 * index holds cursors instead: its documents are stored, not indexed.
 */
EsResult es_ensure_index(EsClient *c, const char *index, int replicas, bool state,
                         const char *owner, yajl_val body, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Records owner as _meta.txidsync.owner of index's mapping, keeping the
 * other members of its _meta, and adds the mapping of the metadata fields
 * (refused when the index mapped them otherwise already). */
EsResult es_claim_index(EsClient *c, const char *index, const char *owner, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Deletes index; *existed tells whether there was one. */
EsResult es_delete_index(EsClient *c, const char *index, bool *existed, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Makes every write acknowledged so far durable in index's shards
 * (_flush), whatever their translog durability. */
EsResult es_flush(EsClient *c, const char *index, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Makes recent writes to index visible to searches (_refresh). */
EsResult es_refresh(EsClient *c, const char *index, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Appends to a _bulk body an index action for document doc (one line of
 * JSON, doc_len bytes, no newline inside) with external version. */
int es_bulk_add_index(Buf *body, const char *index, const char *id, uint64_t version,
                      const char *doc, size_t doc_len) __attribute__((warn_unused_result));

/* Appends to a _bulk body a delete action with external version. */
int es_bulk_add_delete(Buf *body, const char *index, const char *id, uint64_t version)
    __attribute__((warn_unused_result));

/* The outcome of one action of a bulk request. */
typedef enum EsItemResult {
    ES_ITEM_OK = 0,   /* written, or a delete of an absent document */
    ES_ITEM_CONFLICT, /* version conflict: the index holds this or a newer version */
    ES_ITEM_RETRY,    /* 429 or 5xx for this item: send it again */
    ES_ITEM_REJECTED, /* rejected for good (mapping or parse error) */
} EsItemResult;

typedef struct EsBulkItem {
    EsItemResult result;
    int status;
    char error[512]; /* "type: reason" when not ok */
} EsBulkItem;

/* The path every _bulk request goes to: the response is cut down to what
 * the caller looks at (the errors flag, each item's status and error), so
 * that the sink spends less time writing it and the client reading it. */
#define ES_BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error"

/*
 * Sends a _bulk body of n actions and fills items[0..n-1] with their
 * outcomes, in order.  Returns ES_OK when the response was read (items
 * may still say retry or rejected), ES_RETRY for a network error, 429 or
 * 5xx of the whole request, ES_FAIL with err filled when the request was
 * refused or the response is not understood (wrong item count included).
 */
EsResult es_bulk(EsClient *c, const Buf *body, size_t n, EsBulkItem *items, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

/*
 * Reads the response of a _bulk request of n actions (HTTP status, body
 * resp) into items[0..n-1]; where names the sink in messages.  Returns as
 * es_bulk does.  Exposed for the fuzz tests: it parses what the sink sends.
 */
EsResult es_bulk_parse(const char *where, long status, const Buf *resp, size_t n, EsBulkItem *items,
                       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Puts "type: reason" of an error response body (or the start of a body
 * that is not one) into out. */
void es_describe_error_body(const char *body, char *out, size_t outlen);

/*
 * A pipe keeps up to a fixed number of _bulk requests in flight at once,
 * each on a connection of its own that stays open from one request to the
 * next.  Its transfers run in the event loop it is given: the pipe watches
 * its connections and arms its timers there, and the transfers progress
 * while the loop runs.  The caller starts requests with es_pipe_send; when
 * one finishes, in whatever order, the pipe calls the done function given
 * at creation, from inside the loop, with exactly what es_bulk would have
 * returned for it.  The pipe borrows its client and loop, which must
 * outlive it; requests in flight borrow their body and items until their
 * done call.
 */
typedef struct EsPipe EsPipe;

/* A finished request, as the done function gets it. */
typedef struct EsPipeDone {
    void *tag;       /* as given to es_pipe_send */
    EsResult result; /* what es_bulk would have returned; items are filled on ES_OK */
    long status;     /* the HTTP status; 0 when no response came */
    char err[1024];  /* filled unless result is ES_OK */
} EsPipeDone;

/* Called once per finished request; done is borrowed for the call.  It may
 * start further requests (es_pipe_send) but must not free the pipe. */
typedef void (*EsPipeDoneFn)(void *owner, const EsPipeDone *done);

struct Loop;

/* Creates a pipe of max_in_flight (1 to 64) lanes for client c whose
 * transfers run in loop and whose finished requests go to
 * on_done(owner, ...).  Returns NULL with err filled when out of memory;
 * the caller frees it with es_pipe_free. */
EsPipe *es_pipe_new(EsClient *c, size_t max_in_flight, struct Loop *loop, EsPipeDoneFn on_done,
                    void *owner, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Abandons the requests in flight (their outcome is never known, and no
 * done call comes for them), closes the pipe's connections, removes its
 * watches and timers from the loop and frees p; NULL is ignored. */
void es_pipe_free(EsPipe *p);

/* How many requests are in flight. */
size_t es_pipe_in_flight(const EsPipe *p);

/* Whether another request can be started now. */
bool es_pipe_has_room(const EsPipe *p);

/*
 * Starts sending body (n actions; borrowed, with items[0..n-1], until the
 * done call of the request) and returns at once.  tag is the caller's
 * name for the request.  Returns ES_OK, or ES_FAIL with err filled when
 * the pipe is full or libcurl refuses the request.
 */
EsResult es_pipe_send(EsPipe *p, const Buf *body, size_t n, EsBulkItem *items, void *tag, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/*
 * Reads the _source of document id in index into doc (reset first).
 * Returns ES_OK with *found set, ES_RETRY or ES_FAIL with err filled.
 */
EsResult es_get_source(EsClient *c, const char *index, const char *id, bool *found, Buf *doc,
                       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Writes document doc (JSON) as id in index, replacing it, without versioning. */
EsResult es_put_doc(EsClient *c, const char *index, const char *id, const char *doc, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* Deletes document id of index; *existed tells whether there was one (a
 * missing document or index is ES_OK). */
EsResult es_delete_doc(EsClient *c, const char *index, const char *id, bool *existed, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* Sets *exists to whether index (or an alias of that name) exists.
 * Returns ES_OK, or ES_RETRY/ES_FAIL with err filled. */
EsResult es_index_exists(EsClient *c, const char *index, bool *exists, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* One scalar of a hit's _source, as es_scroll_next reports it. */
typedef struct EsField {
    const char *text; /* a string's value or a number's JSON text; NULL when the field is
                         absent, null, an object, an array or a boolean */
    bool is_string;   /* text came from a JSON string (not a number) */
} EsField;

/* One document of a scroll.  Everything is borrowed from the scroll and
 * valid until the next es_scroll_next or es_scroll_free. */
typedef struct EsHit {
    const char *id;   /* _id */
    uint64_t version; /* _version; 0 when has_version is false */
    bool has_version;
    const EsField *fields; /* one per field asked for in es_scroll_open, in that order */
    const char *source;    /* after es_scroll_canon_source: the canonical _source; else NULL */
} EsHit;

typedef struct EsScroll EsScroll;

/*
 * Starts reading every document of index through the scroll API, one
 * consistent point-in-time view, page_size documents per request (1 to
 * 10000), sorted ascending by the keyword field sort_field (byte order of
 * its UTF-8 value; documents without it come last, and an index that does
 * not map it yet reads as if no document had it).  Each hit carries _id,
 * _version and the n_fields _source fields named by dotted paths in fields
 * ("txidsync.key"); only those are fetched (_source filtering).  The first
 * request is sent by the first es_scroll_next.  c and fields are borrowed
 * and must outlive the scroll.  Returns the scroll, which the caller frees
 * with es_scroll_free, or NULL with err filled when out of memory or an
 * argument is out of range.
 */
EsScroll *es_scroll_open(EsClient *c, const char *index, const char *sort_field,
                         const char *const *fields, size_t n_fields, size_t page_size, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/* Before the first es_scroll_next: asks for each document's whole
 * _source too, handed out canonical (json_canon.h) without its top-level
 * member drop (NULL: none) in EsHit.source. */
void es_scroll_canon_source(EsScroll *s, const char *drop);

/*
 * Sets *hit to the next document of the scroll, or to NULL once every
 * document was read.  Returns ES_OK, ES_RETRY (network error, 429, 5xx)
 * or ES_FAIL (the request was refused: a missing index, a field that
 * cannot be sorted on, an expired scroll) with err filled; a response that
 * reports failed shards or a timeout is ES_FAIL too, since its pages would
 * silently lack documents.  After a failure the scroll only fails again.
 */
EsResult es_scroll_next(EsScroll *s, const EsHit **hit, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Clears the scroll's context on the server (best effort, errors are
 * ignored) and frees s; NULL is ignored. */
void es_scroll_free(EsScroll *s);

#endif
