/*
 * config: INI files through libinih (see config.h).  The file is read
 * whole first, so that [txidsync] applies before any table section
 * wherever it stands, and every error can name its line.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CONFIG_LINE_MAX 8192

/* One key = value of the file. */
typedef struct Entry {
    char *section, *key, *value;
    int line;
} Entry;

typedef struct Parse {
    FILE *f;
    int line;       /* of the line the reader handed out last */
    Entry *entries; /* keys, and section headers (key NULL) */
    size_t n, cap;
    bool oom;
    bool too_long;
} Parse;

/* Records a section header, so that a table section without keys is
 * still a table. */
static int add_entry(Parse *p, const char *section, const char *name, const char *value);

/* libinih's reader: fgets that counts lines, so that the handler knows
 * where its key is, notes section headers, and refuses a line longer than
 * the library reads at once (the rest would be read as another line). */
static char *read_line(char *str, int num, void *stream)
{
    Parse *p = stream;
    char *r = fgets(str, num < CONFIG_LINE_MAX + 3 ? num : CONFIG_LINE_MAX + 3, p->f);
    if (!r)
        return NULL;
    p->line++;
    size_t len = strlen(r);
    if (len > 0 && r[len - 1] != '\n' && !feof(p->f)) {
        p->too_long = true;
        return NULL;
    }
    const char *c = r;
    while (*c == ' ' || *c == '\t')
        c++;
    const char *close = *c == '[' ? strchr(c, ']') : NULL;
    if (close) {
        const char *a = c + 1, *b = close;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(b - a), a);
        if (add_entry(p, name, NULL, NULL) == 0)
            return NULL;
    }
    return r;
}

static int add_entry(Parse *p, const char *section, const char *name, const char *value)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        Entry *grown = realloc(p->entries, cap * sizeof(*grown));
        if (!grown) {
            p->oom = true;
            return 0;
        }
        p->entries = grown;
        p->cap = cap;
    }
    Entry *e = &p->entries[p->n];
    e->section = strdup(section);
    e->key = name ? strdup(name) : NULL;
    e->value = strdup(value ? value : "");
    e->line = p->line;
    if (!e->section || (name && !e->key) || !e->value) {
        free(e->section);
        free(e->key);
        free(e->value);
        p->oom = true;
        return 0;
    }
    for (char *c = e->key; c && *c; c++)
        if (*c == '_')
            *c = '-';
    p->n++;
    return 1;
}

/* libinih's handler: records each key (a section header alone comes with
 * a NULL name where the library calls for it; headers are noted by the
 * reader instead). */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    if (!name)
        return 1;
    return add_entry(user, section, name, value);
}

static void free_entries(Parse *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->entries[i].section);
        free(p->entries[i].key);
        free(p->entries[i].value);
    }
    free(p->entries);
    p->entries = NULL;
    p->n = p->cap = 0;
}

/* Applies entry en to target base: for a per-table setting, the template
 * is moved to base.  Returns 0 or -1 with err filled. */
static int apply(const char *path, const Entry *en, const Setting *table, size_t n,
                 const void *template, size_t template_size, void *base, bool process, char *err,
                 size_t errlen)
{
    const Setting *s = settings_find(table, n, en->key, strlen(en->key));
    if (!s || !strcmp(en->key, "config"))
        return err_printf(err, errlen, "%s:%d: unknown key '%s' in [%s]", path, en->line, en->key,
                          en->section);
    bool per_table = s->flags & SETTING_PER_TABLE;
    if (!process && !per_table)
        return err_printf(err, errlen, "%s:%d: '%s' is a process setting: put it in [%s]", path,
                          en->line, en->key, CONFIG_PROCESS_SECTION);
    if (process && !strcmp(en->key, "table"))
        return err_printf(err, errlen,
                          "%s:%d: 'table' belongs in a table's section (the section names the "
                          "table)",
                          path, en->line);
    void *target = s->target;
    if (per_table) {
        size_t off = (size_t)((const char *)s->target - (const char *)template);
        if ((const char *)s->target < (const char *)template || off >= template_size)
            return err_printf(err, errlen, "%s: --%s is per table but lies outside its struct",
                              path, s->name);
        target = (char *)base + off;
    }
    char origin[256];
    snprintf(origin, sizeof(origin), "%s:%d: %s", path, en->line, en->key);
    return settings_assign(s, target, en->value, origin, err, errlen);
}

/* Fails on a key given twice in one section, or a section header twice. */
static int check_repeats(const char *path, const Parse *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        const Entry *b = &p->entries[i];
        for (size_t j = 0; j < i; j++) {
            const Entry *a = &p->entries[j];
            if (strcmp(a->section, b->section) != 0 || (a->key == NULL) != (b->key == NULL))
                continue;
            if (!b->key)
                return err_printf(err, errlen, "%s:%d: section [%s] appears twice (also line %d)",
                                  path, b->line, b->section, a->line);
            if (!strcmp(a->key, b->key))
                return err_printf(err, errlen, "%s:%d: '%s' is set twice in [%s] (also line %d)",
                                  path, b->line, b->key, b->section, a->line);
        }
    }
    return 0;
}

/* Reads the file into p.  Returns 0 or -1 with err filled. */
static int read_all(const char *path, Parse *p, char *err, size_t errlen)
{
    /* Debian's libinih takes its options at run time: no continuation
     * lines (an indented line is an error, not a silent part of the value
     * above), and lines as long as a connection string may need. */
    ini_allow_multiline = false;
    ini_use_stack = false;
    ini_max_line = CONFIG_LINE_MAX + 3;
    p->f = fopen(path, "r");
    if (!p->f)
        return err_printf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    int rc = ini_parse_stream(read_line, p, on_key, p);
    fclose(p->f);
    p->f = NULL;
    if (p->oom)
        return err_printf(err, errlen, "%s: out of memory", path);
    if (p->too_long)
        return err_printf(err, errlen, "%s:%d: line too long (at most %d bytes)", path, p->line,
                          CONFIG_LINE_MAX);
    if (rc > 0)
        return err_printf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
                          path, rc);
    if (rc < 0)
        return err_printf(err, errlen, "%s: cannot read", path);
    for (size_t i = 0; i < p->n; i++) {
        if (p->entries[i].key && !p->entries[i].section[0])
            return err_printf(err, errlen, "%s:%d: '%s' comes before any [section]", path,
                              p->entries[i].line, p->entries[i].key);
    }
    return check_repeats(path, p, err, errlen);
}

/* Adds a table section named section (its first key at line) to cfg with a
 * copy of the template.  Returns the new table, or NULL when out of memory. */
static ConfigTable *add_table(Config *cfg, const char *section, int line, const void *template,
                              size_t template_size)
{
    ConfigTable *grown = realloc(cfg->tables, (cfg->n_tables + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    cfg->tables = grown;
    ConfigTable *t = &cfg->tables[cfg->n_tables];
    t->values = malloc(template_size);
    if (!t->values)
        return NULL;
    memcpy(t->values, template, template_size);
    t->name = section;
    t->line = line;
    cfg->n_tables++;
    return t;
}

int config_load(const char *path, const Setting *table, size_t n, void *template,
                size_t template_size, Config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    Parse *p = calloc(1, sizeof(*p));
    if (!p)
        return err_printf(err, errlen, "%s: out of memory", path);
    cfg->priv = p;
    if (read_all(path, p, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        const Entry *en = &p->entries[i];
        if (en->key && !strcmp(en->section, CONFIG_PROCESS_SECTION) &&
            apply(path, en, table, n, template, template_size, template, true, err, errlen) < 0)
            return -1;
    }
    ConfigTable *cur = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const Entry *en = &p->entries[i];
        if (!strcmp(en->section, CONFIG_PROCESS_SECTION))
            continue;
        if (!en->key) {
            cur = add_table(cfg, en->section, en->line, template, template_size);
            if (!cur)
                return err_printf(err, errlen, "%s: out of memory", path);
            continue;
        }
        if (!cur || strcmp(cur->name, en->section) != 0)
            return err_printf(err, errlen, "%s:%d: key outside its section", path, en->line);
        if (apply(path, en, table, n, template, template_size, cur->values, false, err, errlen) < 0)
            return -1;
    }
    if (cfg->n_tables == 0)
        return err_printf(err, errlen,
                          "%s: no table section (add one per table, e.g. [public.orders])", path);
    return 0;
}

bool config_table_sets(const Config *cfg, size_t i, const char *key)
{
    const Parse *p = cfg->priv;
    if (!p || i >= cfg->n_tables)
        return false;
    for (size_t k = 0; k < p->n; k++) {
        const Entry *en = &p->entries[k];
        if (en->key && !strcmp(en->key, key) && !strcmp(en->section, cfg->tables[i].name))
            return true;
    }
    return false;
}

void config_free(Config *cfg)
{
    for (size_t i = 0; i < cfg->n_tables; i++)
        free(cfg->tables[i].values);
    free(cfg->tables);
    if (cfg->priv) {
        free_entries(cfg->priv);
        free(cfg->priv);
    }
    memset(cfg, 0, sizeof(*cfg));
}
