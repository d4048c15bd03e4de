/*
 * store_null: a cursor store that holds nothing (--dry-run): nothing is
 * found at start, and saves are dropped.
 */
#ifndef TXIDSYNC_STORE_NULL_H
#define TXIDSYNC_STORE_NULL_H

#include "store.h"

/* Returns the store, or NULL when out of memory. */
Store *store_null_new(void);

#endif
