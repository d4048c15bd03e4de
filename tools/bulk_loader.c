/*
 * bulk-loader: the raw ceiling of the sink for the benchmark (tools/bench).
 *
 * Reads documents exported from Postgres by one COPY (text format, three
 * columns: key, version, document as one line of JSON) on stdin and posts
 * them to an index as _bulk requests of --batch-size index actions with
 * external versions, --concurrency requests in flight, the simplest way
 * there is: no cursor, no per-item bookkeeping; a request the sink turns
 * away as busy (429, 5xx) is sent again after a short pause.  A request
 * that keeps failing, or whose response says "errors":true, ends the run
 * with exit 1.  The body of each request is built with the same es module the
 * daemon uses, so the bytes on the wire are the daemon's.
 *
 * The last line on stdout is "bulk-loader: docs=N requests=N retries=N
 * seconds=S rate=R" (documents per second of wall time from the first
 * read to the last response).  It talks to the given sink and to nothing else.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "es.h"
#include "log.h"
#include "settings.h"
#include "version.h"

#define PROG           "bulk-loader"
#define BODY_MAX       ((size_t)512 << 20)
#define RESP_MAX       ((size_t)256 << 20)
#define RETRIES_MAX    600 /* attempts of one request */
#define RETRY_PAUSE_MS 100

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Everything the settings table fills. */
typedef struct Config {
    const char *es_url;
    const char *index;
    long long batch_size;
    long long concurrency;
} Config;

/* What the sender threads share: stdin behind a lock, the totals and the
 * first failure. */
typedef struct Shared {
    const Config *cfg;
    pthread_mutex_t lock;
    bool eof;
    bool failed;
    uint64_t docs;
    uint64_t requests;
    uint64_t retries; /* requests sent again after a busy answer */
} Shared;

/* One sender: its own client (connection) and buffers. */
typedef struct Sender {
    Shared *shared;
    pthread_t thread;
    EsClient *es;
    char **lines; /* batch_size lines read under the lock, owned */
    size_t *caps;
    size_t n_lines;
    Buf body;
    Buf resp;
    int rc;
} Sender;

/*
 * Undoes COPY's text-format escaping of one field in place (\\, \n, \t,
 * \r, \b, \f, \v, octal \NNN and \xHH) and returns its new length.
 */
static size_t copy_unescape(char *s, size_t len)
{
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        char ch = s[r];
        if (ch != '\\' || r + 1 == len) {
            s[w++] = ch;
            continue;
        }
        char e = s[++r];
        switch (e) {
        case 'n':
            s[w++] = '\n';
            break;
        case 't':
            s[w++] = '\t';
            break;
        case 'r':
            s[w++] = '\r';
            break;
        case 'b':
            s[w++] = '\b';
            break;
        case 'f':
            s[w++] = '\f';
            break;
        case 'v':
            s[w++] = '\v';
            break;
        case 'x': {
            int v = 0, k = 0;
            while (k < 2 && r + 1 < len && isxdigit((unsigned char)s[r + 1])) {
                char h = s[++r];
                v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                k++;
            }
            s[w++] = (char)v;
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                int v = e - '0', k = 1;
                while (k < 3 && r + 1 < len && s[r + 1] >= '0' && s[r + 1] <= '7') {
                    v = v * 8 + (s[++r] - '0');
                    k++;
                }
                s[w++] = (char)v;
            } else {
                s[w++] = e;
            }
        }
    }
    return w;
}

/* Reads up to batch_size lines of stdin into the sender's line buffers,
 * under the shared lock.  Returns the number read (0 at the end). */
static size_t read_batch(Sender *t)
{
    Shared *sh = t->shared;
    size_t n = 0;
    pthread_mutex_lock(&sh->lock);
    while (!sh->eof && !sh->failed && n < (size_t)sh->cfg->batch_size) {
        ssize_t got = getline(&t->lines[n], &t->caps[n], stdin);
        if (got < 0) {
            sh->eof = true;
            break;
        }
        n++;
    }
    pthread_mutex_unlock(&sh->lock);
    return n;
}

/* Builds the _bulk body of the lines read.  Returns 0, or -1 (printed)
 * for a malformed line. */
static int build_body(Sender *t, size_t n)
{
    buf_reset(&t->body);
    for (size_t i = 0; i < n; i++) {
        char *line = t->lines[i];
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        char *tab1 = memchr(line, '\t', len);
        char *tab2 = tab1 ? memchr(tab1 + 1, '\t', len - (size_t)(tab1 + 1 - line)) : NULL;
        if (!tab2) {
            log_error("input line is not key<TAB>version<TAB>document: %.80s", line);
            return -1;
        }
        *tab1 = '\0';
        *tab2 = '\0';
        char *doc = tab2 + 1;
        size_t doc_len = copy_unescape(doc, len - (size_t)(doc - line));
        size_t key_len = copy_unescape(line, (size_t)(tab1 - line));
        line[key_len] = '\0';
        uint64_t version = strtoull(tab1 + 1, NULL, 10);
        if (es_bulk_add_index(&t->body, t->shared->cfg->index, line, version, doc, doc_len) < 0) {
            log_error("cannot add the document of key %s to the body", line);
            return -1;
        }
    }
    return 0;
}

/* Posts the body of n actions, again after a short pause while the whole
 * request is turned away as busy (429 or 5xx: nothing of it was applied)
 * or the connection fails.  Returns 0, or -1 (printed) when it keeps
 * failing, the request is refused or an action came back with an error. */
static int post_body(Sender *t, size_t n)
{
    char err[512];
    for (int attempt = 1;; attempt++) {
        long status = 0;
        EsResult r = es_request(t->es, "POST", ES_BULK_PATH, buf_str(&t->body), t->body.len,
                                "application/x-ndjson", &status, &t->resp, err, sizeof(err));
        const char *head = buf_str(&t->resp);
        if (r == ES_OK && status >= 200 && status < 300) {
            /* The flag comes first: {"errors":false,"items":... */
            const char *flag = strstr(head, "\"errors\":");
            if (flag && strncmp(flag + 9, "false", 5) == 0)
                return 0;
            log_error("bulk request of %zu actions: an action failed: %.300s", n, head);
            return -1;
        }
        if (r == ES_OK && status != 429 && status < 500) {
            log_error("bulk request of %zu actions: http %ld: %.300s", n, status, head);
            return -1;
        }
        if (attempt == RETRIES_MAX) {
            log_error("bulk request of %zu actions failed %d times, last: %s", n, attempt,
                      r == ES_OK ? head : err);
            return -1;
        }
        pthread_mutex_lock(&t->shared->lock);
        t->shared->retries++;
        pthread_mutex_unlock(&t->shared->lock);
        nanosleep(&(struct timespec){0, RETRY_PAUSE_MS * 1000000L}, NULL);
    }
}

/* A sender thread: read a batch, build it, post it, until the input ends
 * or any sender failed. */
static void *sender_main(void *arg)
{
    Sender *t = arg;
    Shared *sh = t->shared;
    for (;;) {
        size_t n = read_batch(t);
        if (n == 0)
            break;
        if (build_body(t, n) < 0 || post_body(t, n) < 0) {
            pthread_mutex_lock(&sh->lock);
            sh->failed = true;
            pthread_mutex_unlock(&sh->lock);
            t->rc = -1;
            break;
        }
        pthread_mutex_lock(&sh->lock);
        sh->docs += n;
        sh->requests++;
        pthread_mutex_unlock(&sh->lock);
    }
    return NULL;
}

static const char summary[] =
    "Posts documents exported by COPY (key<TAB>version<TAB>document on stdin, text format)\n"
    "to an index as _bulk requests with external versions, the simplest way: the raw\n"
    "ceiling of the sink that tools/bench compares txidsync with.  Exit status: 0 every\n"
    "document was accepted, 1 a request or an action failed, 2 bad usage.";

int main(int argc, char **argv)
{
    Config cfg;
    memset(&cfg, 0, sizeof(cfg));
    const Setting table[] = {
        {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL",
         "Elasticsearch/OpenSearch base URL, credentials allowed (user:pass@host)", NULL, 0, 0,
         &cfg.es_url, 0},
        {"index", SETTING_STRING, "bench-raw", NULL, "NAME", "index to write to", NULL, 0, 0,
         &cfg.index, 0},
        {"batch-size", SETTING_INT, "1000", NULL, "N", "documents per bulk request", NULL, 1,
         100000, &cfg.batch_size, 0},
        {"concurrency", SETTING_INT, "1", NULL, "N", "bulk requests in flight", NULL, 1, 64,
         &cfg.concurrency, 0},
    };
    int rc = settings_parse_main(table, sizeof(table) / sizeof(table[0]), PROG, TXIDSYNC_VERSION,
                                 summary, argc, argv);
    if (rc >= 0)
        return rc;
    char err[512];

    Shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.cfg = &cfg;
    pthread_mutex_init(&sh.lock, NULL);
    size_t n_senders = (size_t)cfg.concurrency;
    Sender *senders = calloc(n_senders, sizeof(*senders));
    if (!senders) {
        log_error("out of memory");
        return EXIT_FAILED;
    }
    int code = EXIT_OK;
    size_t started = 0;
    double t0 = clock_mono_s();
    for (size_t i = 0; i < n_senders; i++) {
        Sender *t = &senders[i];
        t->shared = &sh;
        buf_init(&t->body, BODY_MAX);
        buf_init(&t->resp, RESP_MAX);
        t->lines = calloc((size_t)cfg.batch_size, sizeof(*t->lines));
        t->caps = calloc((size_t)cfg.batch_size, sizeof(*t->caps));
        t->es = es_client_new(cfg.es_url, NULL, err, sizeof(err));
        if (!t->lines || !t->caps || !t->es) {
            log_error("cannot create sender %zu: %s", i, t->es ? "out of memory" : err);
            code = EXIT_FAILED;
            break;
        }
        if (pthread_create(&t->thread, NULL, sender_main, t) != 0) {
            log_error("cannot start sender %zu", i);
            code = EXIT_FAILED;
            break;
        }
        started++;
    }
    if (code != EXIT_OK) {
        pthread_mutex_lock(&sh.lock);
        sh.failed = true;
        pthread_mutex_unlock(&sh.lock);
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(senders[i].thread, NULL);
        if (senders[i].rc != 0)
            code = EXIT_FAILED;
    }
    double seconds = clock_mono_s() - t0;
    for (size_t i = 0; i < n_senders; i++) {
        Sender *t = &senders[i];
        for (size_t k = 0; t->lines && k < (size_t)cfg.batch_size; k++)
            free(t->lines[k]);
        free(t->lines);
        free(t->caps);
        buf_free(&t->body);
        buf_free(&t->resp);
        es_client_free(t->es);
    }
    free(senders);
    pthread_mutex_destroy(&sh.lock);
    printf(PROG ": docs=%llu requests=%llu seconds=%.3f rate=%.0f\n", (unsigned long long)sh.docs,
           (unsigned long long)sh.requests, seconds, seconds > 0 ? (double)sh.docs / seconds : 0.0);
    return code;
}
