/*
 * sink_ndjson: change events in files (see sink_ndjson.h).  Writes are
 * blocking but short (one write per request; the fsync waits for the
 * engine's flush before a cursor save); the done call still comes from the
 * loop, on a timer of no delay, as the contract asks.
 */
#include "sink_ndjson.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crash.h"
#include "doc.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "loop.h"

#define LINE_MAX_BYTES ((size_t)512 << 20)
#define FIRST_LINE_MAX ((size_t)1 << 20)

typedef struct NdDriver {
    char *path;
    bool to_stdout;
    size_t max_bytes, max_file_bytes;
    int fd;
    off_t size;         /* of the file being written */
    bool unsynced;      /* written since its last fsync */
    int sync_errno;     /* a failed fsync of a rotated file: the flush fails */
    unsigned next_part; /* the suffix the next rotated file gets */
    char *feeder;       /* the table that feeds the stream, once prepared */
    Loop *loop;
    LoopTimer timer; /* the done call of the request in flight */
    SinkDoneFn on_done;
    void *owner;
    Buf doc;
    SinkRequest **requests;
    size_t n_requests;
    SinkRequest *flying; /* written, its done call not made yet */
    char describe[1100];
} NdDriver;

struct SinkRequest {
    Buf body;
    size_t n;
    SinkItem *out;
    void *tag;
    SinkResult result;
    char err[1400];
};

/* The name of rotated part k of the stream into out. */
static void part_path(const NdDriver *d, unsigned k, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s.%u", d->path, k);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Makes the directory entry of path durable (after a create or rename). */
static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

static void drv_bind(void *drv, SinkDoneFn on_done, void *owner)
{
    NdDriver *d = drv;
    d->on_done = on_done;
    d->owner = owner;
}

/* The table named by the first event of file path into owner ("" when
 * there is none to read). */
static void first_owner(const char *path, char *owner, size_t ownerlen)
{
    static const char *table_path[] = {DOC_META_FIELD, "table", NULL};
    owner[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = malloc(FIRST_LINE_MAX);
    if (line && fgets(line, (int)FIRST_LINE_MAX, f)) {
        yajl_val v = yajl_tree_parse(line, NULL, 0);
        yajl_val t = v ? yajl_tree_get(v, table_path, yajl_t_string) : NULL;
        if (t)
            snprintf(owner, ownerlen, "%s", YAJL_GET_STRING(t));
        yajl_tree_free(v);
    }
    free(line);
    fclose(f);
}

static SinkResult drv_inspect(void *drv, SinkTarget *t, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    NdDriver *d = drv;
    if (d->to_stdout)
        return SINK_OK;
    t->durable = false; /* until drv_flush: one fsync per cursor save */
    char first[1100];
    part_path(d, 1, first, sizeof(first));
    bool parts = file_exists(first);
    t->exists = parts || file_exists(d->path);
    first_owner(parts ? first : d->path, t->owner, sizeof(t->owner));
    return SINK_OK;
}

/* Cuts off a last line without its newline: a crash in the middle of a
 * write, never acknowledged.  Returns 0, or -1 with err filled. */
static int cut_partial_line(NdDriver *d, char *err, size_t errlen)
{
    off_t end = lseek(d->fd, 0, SEEK_END);
    off_t keep = end;
    char c = '\n';
    while (keep > 0 && pread(d->fd, &c, 1, keep - 1) == 1 && c != '\n')
        keep--;
    if (keep < 0 || (keep > 0 && c != '\n'))
        return err_printf(err, errlen, "cannot read %s: %s", d->path, strerror(errno));
    if (keep != end) {
        log_warn("%s ended in a line cut short (%jd bytes, never acknowledged): cutting it off",
                 d->path, (intmax_t)(end - keep));
        if (ftruncate(d->fd, keep) < 0 || fsync(d->fd) < 0)
            return err_printf(err, errlen, "cannot cut %s: %s", d->path, strerror(errno));
    }
    d->size = keep;
    return 0;
}

/* Opens the stream's file for appending (creating it), cutting off a
 * line cut short.  Returns 0, or -1 with err filled. */
static int open_stream(NdDriver *d, char *err, size_t errlen)
{
    bool created = !file_exists(d->path);
    /* Read access too: the last line is looked at. */
    d->fd = open(d->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (d->fd < 0)
        return err_printf(err, errlen, "cannot open %s: %s", d->path, strerror(errno));
    if (created)
        sync_dir(d->path);
    return cut_partial_line(d, err, errlen);
}

static SinkResult drv_prepare(void *drv, const char *owner, char *err, size_t errlen)
{
    NdDriver *d = drv;
    free(d->feeder);
    d->feeder = strdup(owner);
    if (!d->feeder) {
        err_printf(err, errlen, "out of memory");
        return SINK_FAIL;
    }
    if (d->to_stdout || d->fd >= 0)
        return SINK_OK;
    char part[1100];
    for (d->next_part = 1;; d->next_part++) {
        part_path(d, d->next_part, part, sizeof(part));
        if (!file_exists(part))
            break;
    }
    return open_stream(d, err, errlen) == 0 ? SINK_OK : SINK_FAIL;
}

static SinkRequest *drv_request_new(void *drv)
{
    NdDriver *d = drv;
    SinkRequest *rq = sink_request_track(&d->requests, &d->n_requests, sizeof(*rq));
    if (!rq)
        return NULL;
    buf_init(&rq->body, d->max_bytes);
    return rq;
}

static void drv_request_reset(void *drv, SinkRequest *rq)
{
    (void)drv;
    buf_reset(&rq->body);
    rq->n = 0;
}

static int drv_add(void *drv, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
{
    NdDriver *d = drv;
    if (sink_event(&d->doc, ch, d->feeder) < 0)
        return err_printf(err, errlen, "the row is not a JSON object, or larger than %zu bytes",
                          LINE_MAX_BYTES);
    size_t mark = rq->body.len;
    if (buf_append(&rq->body, d->doc.data, d->doc.len) < 0 || buf_append(&rq->body, "\n", 1) < 0) {
        rq->body.len = mark;
        if (rq->body.data)
            rq->body.data[mark] = '\0';
        if (rq->n > 0)
            return SINK_ADD_FULL;
        return err_printf(err, errlen,
                          "the event (%zu bytes) does not fit in a request of at most %zu bytes "
                          "(--bulk-max-bytes)",
                          d->doc.len, d->max_bytes);
    }
    rq->n++;
    return SINK_ADD_OK;
}

static bool drv_has_room(void *drv)
{
    return ((NdDriver *)drv)->flying == NULL;
}

static size_t drv_in_flight(void *drv)
{
    return ((NdDriver *)drv)->flying ? 1 : 0;
}

/* Writes all of text.  Returns 0, or -1 with errno set. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        text += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Renames the full file to the next part and begins a new one.  A
 * failure only delays the rotation: it is logged, and writing goes on. */
static void rotate(NdDriver *d)
{
    char part[1100], err[512];
    part_path(d, d->next_part, part, sizeof(part));
    /* A rotated part is complete and durable: the flush only syncs the
     * file being written. */
    if (d->unsynced && fsync(d->fd) < 0) {
        d->sync_errno = errno;
        return;
    }
    d->unsynced = false;
    if (rename(d->path, part) < 0) {
        log_warn("cannot rotate %s into %s: %s", d->path, part, strerror(errno));
        return;
    }
    close(d->fd);
    d->fd = -1;
    d->next_part++;
    if (open_stream(d, err, sizeof(err)) < 0)
        log_warn("%s", err); /* the next write fails and is retried */
}

/* Appends the request to the file; fills its result.  Durable once
 * flushed (drv_flush). */
static void write_request(NdDriver *d, SinkRequest *rq)
{
    rq->result = SINK_OK;
    rq->err[0] = '\0';
    if (d->fd < 0 && !d->to_stdout) {
        rq->result = SINK_RETRY;
        snprintf(rq->err, sizeof(rq->err), "%s is not open", d->path);
        return;
    }
    int fd = d->to_stdout ? STDOUT_FILENO : d->fd;
    if (write_all(fd, rq->body.data ? rq->body.data : "", rq->body.len) < 0) {
        /* Nothing of it counts: a line cut short would spoil the next. */
        snprintf(rq->err, sizeof(rq->err), "cannot write %s: %s", d->describe, strerror(errno));
        rq->result = SINK_RETRY;
        if (!d->to_stdout && ftruncate(fd, d->size) < 0)
            log_warn("cannot cut %s back: %s", d->path, strerror(errno));
        return;
    }
    d->size += (off_t)rq->body.len;
    d->unsynced = !d->to_stdout;
    for (size_t i = 0; i < rq->n; i++) {
        rq->out[i].outcome = SINK_APPLIED;
        rq->out[i].reason[0] = '\0';
    }
    if (!d->to_stdout && d->max_file_bytes > 0 && (size_t)d->size >= d->max_file_bytes)
        rotate(d);
}

static void on_timer(void *ctx)
{
    NdDriver *d = ctx;
    SinkRequest *rq = d->flying;
    d->flying = NULL;
    if (rq)
        d->on_done(d->owner, rq->tag, rq->result, rq->err);
}

static int drv_send(void *drv, SinkRequest *rq, SinkItem *items, void *tag, char *err,
                    size_t errlen)
{
    NdDriver *d = drv;
    if (d->flying)
        return err_printf(err, errlen, "a request is in flight already");
    rq->out = items;
    rq->tag = tag;
    write_request(d, rq);
    d->flying = rq;
    loop_timer_after_ms(d->loop, &d->timer, 0);
    return 0;
}

static SinkResult drv_dead_letter(void *drv, const SinkChange *ch, const char *reason, char *err,
                                  size_t errlen)
{
    NdDriver *d = drv;
    char path[1100];
    snprintf(path, sizeof(path), "%s.rejected", d->to_stdout ? "txidsync" : d->path);
    Buf line;
    buf_init(&line, 1 << 20);
    int bad = sink_dead_letter_record(&line, &d->doc, "file", d->to_stdout ? "-" : d->path,
                                      d->feeder ? d->feeder : "", ch, reason) < 0 ||
              buf_puts(&line, "\n") < 0;
    SinkResult r = SINK_OK;
    int fd = bad ? -1 : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, line.data, line.len) < 0 || fsync(fd) < 0) {
        err_printf(err, errlen, "cannot record in %s: %s", path,
                   bad ? "out of memory" : strerror(errno));
        r = SINK_RETRY;
    }
    if (fd >= 0)
        close(fd);
    buf_free(&line);
    return r;
}

static SinkResult drv_schema(void *drv, const SinkSchema *schema, char *err, size_t errlen)
{
    NdDriver *d = drv;
    Buf line;
    buf_init(&line, LINE_MAX_BYTES);
    SinkResult r = SINK_OK;
    if (doc_schema_event(&line, d->feeder ? d->feeder : "", schema->columns, schema->types,
                         schema->nullable, schema->n, schema->key, schema->n_key) < 0 ||
        buf_puts(&line, "\n") < 0) {
        err_printf(err, errlen, "cannot build the schema event: out of memory");
        r = SINK_FAIL;
    } else if (d->flying) {
        err_printf(err, errlen, "a request is in flight");
        r = SINK_RETRY;
    } else {
        /* The same path as a request of one line. */
        SinkRequest rq = {.body = line, .n = 0};
        write_request(d, &rq);
        if (rq.result != SINK_OK) {
            err_printf(err, errlen, "%s", rq.err);
            r = rq.result;
        }
    }
    buf_free(&line);
    return r;
}

static SinkResult drv_drop(void *drv, bool *existed, char *err, size_t errlen)
{
    NdDriver *d = drv;
    *existed = false;
    if (d->to_stdout)
        return SINK_OK;
    char part[1100];
    for (unsigned k = 1;; k++) {
        part_path(d, k, part, sizeof(part));
        if (unlink(part) < 0)
            break;
        *existed = true;
    }
    if (unlink(d->path) == 0)
        *existed = true;
    else if (errno != ENOENT) {
        err_printf(err, errlen, "cannot delete %s: %s", d->path, strerror(errno));
        return SINK_FAIL;
    }
    sync_dir(d->path);
    return SINK_OK;
}

/* A failed fsync is not retried: the kernel may have dropped the pages
 * it could not write and report success the next time.  The table stops
 * without saving its cursor, and its next start writes the lines again. */
static SinkResult drv_flush(void *drv, char *err, size_t errlen)
{
    NdDriver *d = drv;
    if (d->sync_errno == 0 && d->unsynced) {
        crash_point("after writing the stream, before fsync");
        if (fsync(d->fd) < 0)
            d->sync_errno = errno;
        else
            d->unsynced = false;
    }
    if (d->sync_errno != 0) {
        err_printf(err, errlen,
                   "cannot fsync %s: %s; what was written since the last cursor save may be "
                   "lost, so the table stops (its next start writes it again)",
                   d->path, strerror(d->sync_errno));
        return SINK_FAIL;
    }
    return SINK_OK;
}

static const char *drv_describe(void *drv)
{
    return ((NdDriver *)drv)->describe;
}

static void drv_free(void *drv)
{
    NdDriver *d = drv;
    if (!d)
        return;
    if (d->loop)
        loop_timer_cancel(d->loop, &d->timer);
    if (d->fd >= 0)
        close(d->fd);
    for (size_t i = 0; i < d->n_requests; i++) {
        buf_free(&d->requests[i]->body);
        free(d->requests[i]);
    }
    free(d->requests);
    free(d->path);
    free(d->feeder);
    buf_free(&d->doc);
    free(d);
}

static const SinkInterface ndjson_interface = {
    .name = "ndjson",
    .bind = drv_bind,
    .inspect = drv_inspect,
    .prepare = drv_prepare,
    .drop = drv_drop,
    .flush = drv_flush,
    .schema = drv_schema,
    .request_new = drv_request_new,
    .request_reset = drv_request_reset,
    .add = drv_add,
    .has_room = drv_has_room,
    .in_flight = drv_in_flight,
    .send = drv_send,
    .dead_letter = drv_dead_letter,
    .describe = drv_describe,
    .free = drv_free,
};

Sink *sink_ndjson_new(const SinkNdjsonConfig *cfg, Loop *loop, char *err, size_t errlen)
{
    NdDriver *d = calloc(1, sizeof(*d));
    if (!d) {
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    d->fd = -1;
    d->loop = loop;
    d->max_bytes = cfg->max_bytes > 0 ? cfg->max_bytes : LINE_MAX_BYTES;
    d->max_file_bytes = cfg->max_file_bytes;
    buf_init(&d->doc, LINE_MAX_BYTES);
    loop_timer_init(&d->timer, on_timer, d);
    d->path = strdup(cfg->path && *cfg->path ? cfg->path : "-");
    if (!d->path) {
        drv_free(d);
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    d->to_stdout = strcmp(d->path, "-") == 0;
    snprintf(d->describe, sizeof(d->describe), "%s", d->to_stdout ? "standard output" : d->path);
    return sink_new(&ndjson_interface, d);
}
