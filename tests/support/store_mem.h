/*
 * store_mem: a cursor store in memory, for the unit and fuzz tests: it
 * holds one text, as a store driver would (store.h), and may look at each
 * text saved.
 */
#ifndef TXIDSYNC_STORE_MEM_H
#define TXIDSYNC_STORE_MEM_H

#include <stdbool.h>

#include "buf.h"
#include "store.h"

typedef struct StoreMem {
    Store base; /* first: the store handed out */
    Buf text;
    bool has;                          /* a text is stored */
    void (*on_save)(const char *text); /* NULL, or called with every text saved */
} StoreMem;

/* Makes m a store holding text (NULL: nothing stored yet). */
void store_mem_init(StoreMem *m, const char *text, size_t len);

/* Frees what m holds (store_free does the same). */
void store_mem_free(StoreMem *m);

#endif
