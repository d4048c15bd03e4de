/*
 * settings: table-driven flags, environment and --help (see settings.h).
 */
#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Finds the index of value among the '|'-separated choices, or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

/*
 * Converts text into the setting's target.  origin names where the text
 * came from ("--batch-size", "TXIDSYNC_BATCH_SIZE" or "default of ...")
 * for the error message.  Returns 0 or -1 with err filled.
 */
int settings_assign(const Setting *s, void *target, const char *text, const char *origin, char *err,
                    size_t errlen)
{
    char *end;
    switch (s->type) {
    case SETTING_STRING:
        *(const char **)target = text;
        return 0;
    case SETTING_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end || v < (long long)s->min || v > (long long)s->max)
            return err_printf(err, errlen, "%s: expected an integer from %.0f to %.0f, got '%s'",
                              origin, s->min, s->max, text);
        *(long long *)target = v;
        return 0;
    }
    case SETTING_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v) || v < s->min || v > s->max)
            return err_printf(err, errlen, "%s: expected a number from %g to %g, got '%s'", origin,
                              s->min, s->max, text);
        *(double *)target = v;
        return 0;
    }
    case SETTING_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes") ||
            !strcmp(text, "on"))
            *(bool *)target = true;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") ||
                 !strcmp(text, "off") || !strcmp(text, ""))
            *(bool *)target = false;
        else
            return err_printf(err, errlen, "%s: expected true or false, got '%s'", origin, text);
        return 0;
    case SETTING_ENUM: {
        int i = choice_index(s->choices, text);
        if (i < 0)
            return err_printf(err, errlen, "%s: expected one of %s, got '%s'", origin, s->choices,
                              text);
        *(int *)target = i;
        return 0;
    }
    }
    return err_printf(err, errlen, "%s: unknown setting type", origin);
}

/* Prints text word-wrapped to end before column 80, continuation lines
 * indented by indent columns; the first line starts at column col. */
static void wrap(FILE *out, const char *text, int col, int indent)
{
    const int width = 79;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        int len = 0;
        while (p[len] && p[len] != ' ')
            len++;
        if (len == 0)
            break;
        if (col > indent && col + 1 + len > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", len, p);
        col += len;
        p += len;
    }
    fputc('\n', out);
}

void settings_usage(FILE *out, const Setting *table, size_t n, const char *prog,
                    const char *summary)
{
    const int indent = 30;
    fprintf(out, "usage: %s [OPTION]...\n\n%s\n\noptions:\n", prog, summary);
    for (size_t i = 0; i < n; i++) {
        const Setting *s = &table[i];
        char flag[128], text[1024];
        if (s->flags & SETTING_NO_FLAG)
            snprintf(flag, sizeof(flag), "  %s=VALUE", s->env ? s->env : s->name);
        else if (s->type == SETTING_BOOL)
            snprintf(flag, sizeof(flag), "  --%s", s->name);
        else
            snprintf(flag, sizeof(flag), "  --%s %s", s->name,
                     s->type == SETTING_ENUM ? s->choices : (s->metavar ? s->metavar : "VALUE"));
        int len = snprintf(text, sizeof(text), "%s", s->help);
        if (s->def && *s->def && s->type != SETTING_BOOL && len < (int)sizeof(text))
            len += snprintf(text + len, sizeof(text) - (size_t)len, " (default: %s)", s->def);
        if (s->flags & SETTING_NO_FLAG && len < (int)sizeof(text))
            snprintf(text + len, sizeof(text) - (size_t)len,
                     " [environment, or the config file's key %s; no flag]", s->name);
        else if (s->env && len < (int)sizeof(text))
            snprintf(text + len, sizeof(text) - (size_t)len, " [env %s]", s->env);
        fputs(flag, out);
        int col = (int)strlen(flag);
        if (col >= indent - 1) {
            fprintf(out, "\n%*s", indent, "");
        } else {
            fprintf(out, "%*s", indent - col, "");
        }
        wrap(out, text, indent, indent);
    }
    fprintf(out, "  --help%*s%s\n  --version%*s%s\n  --man%*s%s\n", indent - 8, "",
            "print this help and exit", indent - 11, "", "print the version and exit", indent - 7,
            "", "print the manual page (roff) and exit");
}

/* Writes text for roff: backslashes doubled as \e, dashes as \-, and a
 * line that would start with a control character guarded. */
static void roff(FILE *out, const char *text, size_t len)
{
    bool line_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (line_start && (c == '.' || c == '\''))
            fputs("\\&", out);
        if (c == '\\')
            fputs("\\e", out);
        else if (c == '-')
            fputs("\\-", out);
        else
            fputc(c, out);
        line_start = c == '\n';
    }
}

static void roff_str(FILE *out, const char *text)
{
    roff(out, text, strlen(text));
}

/* One option of the OPTIONS section. */
static void man_option(FILE *out, const Setting *s)
{
    fputs(".TP\n", out);
    if (s->flags & SETTING_NO_FLAG) {
        fputs("\\fB", out);
        roff_str(out, s->env ? s->env : s->name);
        fputs("\\fR=\\fIVALUE\\fR", out);
    } else {
        fputs("\\fB\\-\\-", out);
        roff_str(out, s->name);
        fputs("\\fR", out);
        if (s->type != SETTING_BOOL) {
            fputs(" \\fI", out);
            roff_str(out, s->type == SETTING_ENUM ? s->choices : s->metavar ? s->metavar : "VALUE");
            fputs("\\fR", out);
        }
    }
    fputc('\n', out);
    roff_str(out, s->help);
    if (s->def && *s->def && s->type != SETTING_BOOL) {
        fputs(" (default: ", out);
        roff_str(out, s->def);
        fputc(')', out);
    }
    if (s->flags & SETTING_NO_FLAG) {
        fputs(". Environment or config file key ", out);
        roff_str(out, s->name);
        fputs(" only: no flag, so that ps never shows it", out);
    } else if (s->env) {
        fputs(" [env ", out);
        roff_str(out, s->env);
        fputc(']', out);
    }
    fputs(".\n", out);
}

void settings_man(FILE *out, const Setting *table, size_t n, const char *prog, const char *version,
                  const char *name_line, const char *summary)
{
    fprintf(out, ".\\\" generated by %s --man from its settings table\n.TH ", prog);
    for (const char *p = prog; *p; p++)
        fputc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, out);
    fputs(" 1 \"\" \"", out);
    roff_str(out, prog);
    fprintf(out, " %s\" \"User Commands\"\n.SH NAME\n", version);
    roff_str(out, prog);
    fputs(" \\- ", out);
    roff_str(out, name_line);
    fputs("\n.SH SYNOPSIS\n.B ", out);
    roff_str(out, prog);
    fputs("\n[\\fIOPTION\\fR]...\n.SH DESCRIPTION\n", out);
    /* Paragraphs of the summary, separated by its empty lines. */
    for (const char *p = summary; *p;) {
        const char *blank = strstr(p, "\n\n");
        size_t len = blank ? (size_t)(blank - p) : strlen(p);
        fputs(".PP\n", out);
        roff(out, p, len);
        fputc('\n', out);
        p += len;
        while (*p == '\n')
            p++;
    }
    fputs(".SH OPTIONS\n", out);
    for (size_t i = 0; i < n; i++)
        man_option(out, &table[i]);
    fputs(".TP\n\\fB\\-\\-help\\fR, \\fB\\-\\-version\\fR, \\fB\\-\\-man\\fR\n"
          "Print the usage, the version or this page, and exit.\n.SH ENVIRONMENT\n",
          out);
    for (size_t i = 0; i < n; i++) {
        if (!table[i].env)
            continue;
        fputs(".TP\n.B ", out);
        roff_str(out, table[i].env);
        fputs("\nAs ", out);
        if (table[i].flags & SETTING_NO_FLAG)
            fputs("the config file's key ", out);
        else
            fputs("\\fB\\-\\-", out);
        roff_str(out, table[i].name);
        fputs(table[i].flags & SETTING_NO_FLAG ? ".\n" : "\\fR; a flag given wins.\n", out);
    }
}

SettingsResult settings_apply_defaults(const Setting *table, size_t n, char *err, size_t errlen)
{
    char origin[96];
    for (size_t i = 0; i < n; i++) {
        const Setting *s = &table[i];
        if (!s->def)
            continue;
        snprintf(origin, sizeof(origin), "default of --%s", s->name);
        if (settings_assign(s, s->target, s->def, origin, err, errlen) < 0)
            return SETTINGS_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        const Setting *s = &table[i];
        const char *v = s->env ? getenv(s->env) : NULL;
        if (!v)
            continue;
        if (settings_assign(s, s->target, v, s->env, err, errlen) < 0)
            return SETTINGS_ERROR;
    }
    return SETTINGS_OK;
}

const Setting *settings_find(const Setting *table, size_t n, const char *name, size_t name_len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].name) == name_len && !strncmp(table[i].name, name, name_len))
            return &table[i];
    }
    return NULL;
}

const Setting *settings_first_given(const Setting *table, size_t n, unsigned mask, int argc,
                                    char **argv)
{
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0)
            continue;
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        const Setting *s = settings_find(table, n, name, eq ? (size_t)(eq - name) : strlen(name));
        if (s && (s->flags & mask))
            return s;
        if (s && s->type != SETTING_BOOL && !eq)
            a++; /* its value */
    }
    return NULL;
}

SettingsResult settings_apply_args(const Setting *table, size_t n, const char *prog,
                                   const char *version, const char *summary, int argc, char **argv,
                                   char *err, size_t errlen)
{
    char origin[96];
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            settings_usage(stdout, table, n, prog, summary);
            return SETTINGS_EXIT;
        }
        if (!strcmp(arg, "--version")) {
            printf("%s %s\n", prog, version);
            return SETTINGS_EXIT;
        }
        if (!strcmp(arg, "--man")) {
            /* The NAME: the summary up to its first ':' or '.', on one line. */
            char name_line[256];
            size_t first = strcspn(summary, ":.");
            snprintf(name_line, sizeof(name_line), "%.*s", (int)first, summary);
            for (char *c = name_line; *c; c++)
                *c = *c == '\n' ? ' ' : *c;
            settings_man(stdout, table, n, prog, version, name_line, summary);
            return SETTINGS_EXIT;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            err_printf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return SETTINGS_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const Setting *s = settings_find(table, n, name, name_len);
        if (!s) {
            err_printf(err, errlen, "unknown option '--%.*s' (see --help)", (int)name_len, name);
            return SETTINGS_ERROR;
        }
        if (s->flags & SETTING_NO_FLAG) {
            err_printf(err, errlen,
                       "--%s cannot be given on the command line, where ps shows it: set %s or "
                       "the config file's key %s, or use --%s-file",
                       s->name, s->env ? s->env : "(none)", s->name, s->name);
            return SETTINGS_ERROR;
        }
        snprintf(origin, sizeof(origin), "--%s", s->name);
        const char *value;
        if (s->type == SETTING_BOOL) {
            value = eq ? eq + 1 : "true";
        } else if (eq) {
            value = eq + 1;
        } else if (a + 1 < argc) {
            value = argv[++a];
        } else {
            err_printf(err, errlen, "--%s: missing value", s->name);
            return SETTINGS_ERROR;
        }
        if (settings_assign(s, s->target, value, origin, err, errlen) < 0)
            return SETTINGS_ERROR;
    }
    return SETTINGS_OK;
}

SettingsResult settings_parse(const Setting *table, size_t n, const char *prog, const char *version,
                              const char *summary, int argc, char **argv, char *err, size_t errlen)
{
    if (settings_apply_defaults(table, n, err, errlen) != SETTINGS_OK)
        return SETTINGS_ERROR;
    return settings_apply_args(table, n, prog, version, summary, argc, argv, err, errlen);
}

int settings_parse_main(const Setting *table, size_t n, const char *prog, const char *version,
                        const char *summary, int argc, char **argv)
{
    char err[512];
    switch (settings_parse(table, n, prog, version, summary, argc, argv, err, sizeof(err))) {
    case SETTINGS_OK:
        return -1;
    case SETTINGS_EXIT:
        return 0;
    case SETTINGS_ERROR:
        break;
    }
    fprintf(stderr, "%s: %s\n", prog, err);
    return SETTINGS_EXIT_USAGE;
}
