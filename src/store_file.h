/*
 * store_file: the cursor in a local file, written atomically (a temporary
 * file beside it, fsync, rename over the old one, fsync of the directory).
 */
#ifndef TXIDSYNC_STORE_FILE_H
#define TXIDSYNC_STORE_FILE_H

#include "store.h"

/* A store in the file at path (copied).  Returns NULL when out of memory. */
Store *store_file_new(const char *path) __attribute__((warn_unused_result));

#endif
