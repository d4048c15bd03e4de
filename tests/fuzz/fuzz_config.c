/*
 * fuzz_config: the config file (config.h) read through a settings table
 * of every kind of setting, process-wide and per table.  Whatever the
 * bytes, loading either fails with a "FILE:LINE: ..." or "FILE: ..."
 * message, or gives table sections whose values are within their
 * settings' bounds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "settings.h"

typedef struct Table {
    const char *name;
    long long size;
    double ratio;
    bool flag;
    int mode;
} Table;

static Table tmpl;
static long long process_n;

static const Setting settings[] = {
    {"name", SETTING_STRING, "", NULL, "S", "a string", NULL, 0, 0, &tmpl.name, SETTING_PER_TABLE},
    {"size", SETTING_INT, "5", NULL, "N", "an int", NULL, 1, 1000, &tmpl.size, SETTING_PER_TABLE},
    {"ratio", SETTING_DOUBLE, "0.5", NULL, "P", "a double", NULL, 0, 1, &tmpl.ratio,
     SETTING_PER_TABLE},
    {"flag", SETTING_BOOL, "false", NULL, NULL, "a bool", NULL, 0, 0, &tmpl.flag,
     SETTING_PER_TABLE},
    {"mode", SETTING_ENUM, "a", NULL, NULL, "an enum", "a|b|c", 0, 0, &tmpl.mode,
     SETTING_PER_TABLE},
    {"workers", SETTING_INT, "1", NULL, "N", "process-wide", NULL, 1, 64, &process_n, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-config", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[1024];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    size_t n = sizeof(settings) / sizeof(settings[0]);
    Config cfg = {0};
    if (settings_apply_defaults(settings, n, err, sizeof(err)) != SETTINGS_OK)
        abort();
    if (config_load(path, settings, n, &tmpl, sizeof(tmpl), &cfg, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < cfg.n_tables; i++) {
            const Table *t = cfg.tables[i].values;
            if (!cfg.tables[i].name || t->size < 1 || t->size > 1000 || t->ratio < 0 ||
                t->ratio > 1 || t->mode < 0 || t->mode > 2 || !t->name)
                abort();
        }
        if (process_n < 1 || process_n > 64)
            abort();
    } else if (strncmp(err, path, strlen(path)) != 0) {
        abort(); /* every message names the file */
    }
    config_free(&cfg);
    close(fd);
    return 0;
}
