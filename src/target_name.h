/*
 * target_name: the default name of a table's target (an index, a file's
 * stem), the same for the syncer and the checker: the table's name as
 * configured, with its schema unless public, quotes removed, in lower
 * case ("orders" for orders and public.orders, "sales.orders").
 */
#ifndef TXIDSYNC_TARGET_NAME_H
#define TXIDSYNC_TARGET_NAME_H

#include <stddef.h>

/* Writes the default target name of table into out (outlen bytes). */
void target_default_name(const char *table, char *out, size_t outlen);

#endif
