/*
 * store_file: the cursor in a file (see store_file.h).
 */
#include "store_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash.h"
#include "log.h"

typedef struct FileStore {
    Store base; /* first: the store handed out */
    char *path;
    char describe[1024];
} FileStore;

static StoreResult file_prepare(Store *st, char *err, size_t errlen)
{
    (void)st;
    (void)err;
    (void)errlen;
    return STORE_OK;
}

static StoreResult file_load(Store *st, Buf *text, bool *found, char *err, size_t errlen)
{
    FileStore *s = (FileStore *)st;
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
        if (buf_append(text, chunk, n) < 0) {
            fclose(f);
            err_printf(err, errlen, "%s is larger than %zu bytes", s->describe, text->max);
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

/* Writes all of text to fd.  Returns 0 or -1 (errno set). */
static int write_all(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static StoreResult file_save(Store *st, const char *text, char *err, size_t errlen)
{
    FileStore *s = (FileStore *)st;
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
    if (write_all(fd, text) < 0) {
        err_printf(err, errlen, "cannot write %s.tmp: %s", s->describe, strerror(errno));
        goto done;
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

static StoreResult file_clear(Store *st, bool *existed, char *err, size_t errlen)
{
    FileStore *s = (FileStore *)st;
    *existed = unlink(s->path) == 0;
    if (!*existed && errno != ENOENT) {
        err_printf(err, errlen, "cannot remove %s: %s", s->describe, strerror(errno));
        return STORE_FAIL;
    }
    return STORE_OK;
}

static const char *file_describe(const Store *st)
{
    return ((const FileStore *)st)->describe;
}

static bool file_answered(const Store *st)
{
    (void)st;
    return true;
}

static void file_free(Store *st)
{
    FileStore *s = (FileStore *)st;
    if (!s)
        return;
    free(s->path);
    free(s);
}

static const StoreInterface file_interface = {
    .prepare = file_prepare,
    .load = file_load,
    .save = file_save,
    .clear = file_clear,
    .describe = file_describe,
    .answered = file_answered,
    .free = file_free,
};

Store *store_file_new(const char *path)
{
    FileStore *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    snprintf(s->describe, sizeof(s->describe), "file %s", path);
    s->base.iface = &file_interface;
    return &s->base;
}
