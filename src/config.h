/*
 * config: the INI configuration file, read with libinih and applied
 * through the same settings table as flags and environment, so that a
 * key means exactly what the flag of that name means.
 *
 *     [txidsync]            ; process settings, and defaults for every table
 *     es-url = http://127.0.0.1:9200
 *     batch-size = 1000
 *
 *     [public.orders]       ; one section per table: the section names it
 *     index = orders
 *
 * A key is a flag's name without dashes; '_' may stand for '-'
 * (batch_size).  Settings flagged SETTING_PER_TABLE may appear in
 * [txidsync] (a default for every table) or in a table's section; the
 * others only in [txidsync].  Unknown keys, a key twice in one section, a
 * table section twice, bad values, a file without table sections and
 * syntax errors are errors naming file, line and key.  The module knows
 * nothing of what the settings mean.
 */
#ifndef TXIDSYNC_CONFIG_H
#define TXIDSYNC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "settings.h"

/* The process section's name. */
#define CONFIG_PROCESS_SECTION "txidsync"

/* One table section: its name, where it starts, and its settings, a copy
 * of the template struct with the section's keys applied. */
typedef struct ConfigTable {
    const char *name;
    int line;
    void *values;
} ConfigTable;

typedef struct Config {
    ConfigTable *tables;
    size_t n_tables;
    void *priv; /* the file's text, which string settings borrow */
} Config;

/*
 * Reads path and applies it: keys of [txidsync] go to their settings'
 * targets (a per-table setting's target lies inside the template struct
 * of template_size bytes at template, which they change); then each table
 * section gets a copy of the template with its own keys applied (a
 * per-table setting's target is moved by the same offset into the copy).
 * String settings borrow from *cfg, which must outlive their use.
 * Returns 0, or -1 with err filled ("FILE:LINE: ..."); *cfg is then
 * empty.  The caller frees *cfg with config_free either way.
 */
int config_load(const char *path, const Setting *table, size_t n, void *template,
                size_t template_size, Config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether the i-th table section sets key itself (not by the defaults). */
bool config_table_sets(const Config *cfg, size_t i, const char *key);

void config_free(Config *cfg);

#endif
