/*
 * store: the cursor persisted in a state index of the sink or in a file
 * (see store.h).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "log.h"

#define CURSOR_TEXT_MAX ((size_t)64 << 20)

struct Store {
    EsClient *es; /* NULL for a file store */
    char *index;
    char *id;
    char *path;
    char describe[1024];
};

Store *store_new_es(EsClient *es, const char *state_index, const char *id)
{
    Store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->es = es;
    s->index = strdup(state_index);
    s->id = strdup(id);
    if (!s->index || !s->id) {
        store_free(s);
        return NULL;
    }
    snprintf(s->describe, sizeof(s->describe), "index %s, document %s", state_index, id);
    return s;
}

Store *store_new_file(const char *path)
{
    Store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->path = strdup(path);
    if (!s->path) {
        store_free(s);
        return NULL;
    }
    snprintf(s->describe, sizeof(s->describe), "file %s", path);
    return s;
}

void store_free(Store *s)
{
    if (!s)
        return;
    free(s->index);
    free(s->id);
    free(s->path);
    free(s);
}

const char *store_describe(const Store *s)
{
    return s->describe;
}

/* Parses stored text into *c, naming the store in the error. */
static StoreResult parse(Store *s, Cursor *c, const char *text, size_t len, char *err,
                         size_t errlen)
{
    char why[256];
    if (cursor_from_json(c, text, len, why, sizeof(why)) < 0) {
        err_printf(err, errlen, "the stored cursor in %s is corrupt: %s", s->describe, why);
        return STORE_FAIL;
    }
    return STORE_OK;
}

/* Reads the whole file into b; *found false when it does not exist. */
static StoreResult read_file(Store *s, Buf *b, bool *found, char *err, size_t errlen)
{
    *found = false;
    FILE *f = fopen(s->path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return STORE_OK;
        err_printf(err, errlen, "cannot open %s: %s", s->describe, strerror(errno));
        return STORE_FAIL;
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(b, chunk, n) < 0) {
            fclose(f);
            err_printf(err, errlen, "%s is larger than %zu bytes", s->describe, CURSOR_TEXT_MAX);
            return STORE_FAIL;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        err_printf(err, errlen, "cannot read %s", s->describe);
        return STORE_FAIL;
    }
    *found = true;
    return STORE_OK;
}

StoreResult store_load(Store *s, Cursor *c, bool *found, char *err, size_t errlen)
{
    Buf text;
    buf_init(&text, CURSOR_TEXT_MAX);
    cursor_init(c);
    StoreResult r;
    if (s->es) {
        EsResult er = es_get_source(s->es, s->index, s->id, found, &text, err, errlen);
        r = er == ES_OK ? STORE_OK : er == ES_RETRY ? STORE_RETRY : STORE_FAIL;
    } else {
        r = read_file(s, &text, found, err, errlen);
    }
    if (r == STORE_OK && *found)
        r = parse(s, c, buf_str(&text), text.len, err, errlen);
    buf_free(&text);
    return r;
}

/* Writes text to path atomically: a temporary file beside it, fsync,
 * rename over the old one, fsync of the directory. */
static StoreResult write_file(Store *s, const char *text, char *err, size_t errlen)
{
    size_t plen = strlen(s->path);
    char *tmp = malloc(plen + 16);
    char *dircopy = strdup(s->path);
    int fd = -1;
    StoreResult r = STORE_FAIL;
    if (!tmp || !dircopy) {
        err_printf(err, errlen, "out of memory");
        goto done;
    }
    snprintf(tmp, plen + 16, "%s.tmp", s->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_printf(err, errlen, "cannot create %s.tmp: %s", s->describe, strerror(errno));
        goto done;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err_printf(err, errlen, "cannot write %s.tmp: %s", s->describe, strerror(errno));
            goto done;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        err_printf(err, errlen, "cannot fsync %s.tmp: %s", s->describe, strerror(errno));
        goto done;
    }
    close(fd);
    fd = -1;
    crash_point("before renaming the cursor file");
    if (rename(tmp, s->path) < 0) {
        err_printf(err, errlen, "cannot rename into %s: %s", s->describe, strerror(errno));
        goto done;
    }
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    r = STORE_OK;
done:
    if (fd >= 0)
        close(fd);
    if (r != STORE_OK && tmp)
        unlink(tmp);
    free(tmp);
    free(dircopy);
    return r;
}

StoreResult store_save(Store *s, const Cursor *c, char *err, size_t errlen)
{
    char *text = NULL;
    char why[256];
    if (cursor_to_json(c, &text, why, sizeof(why)) < 0) {
        err_printf(err, errlen, "cannot serialise the cursor: %s", why);
        return STORE_FAIL;
    }
    StoreResult r;
    if (s->es) {
        EsResult er = es_put_doc(s->es, s->index, s->id, text, err, errlen);
        r = er == ES_OK ? STORE_OK : er == ES_RETRY ? STORE_RETRY : STORE_FAIL;
    } else {
        r = write_file(s, text, err, errlen);
    }
    free(text);
    return r;
}
