/*
 * settings: one table per program drives its flags, its environment
 * variables and its --help, so the three cannot disagree.
 *
 * Precedence: built-in default < environment variable < command-line flag.
 * Flags are long options, "--name VALUE" or "--name=VALUE"; a boolean flag
 * takes no value.  Every error is one line naming the flag (or variable),
 * what was expected and what was given.  The module knows nothing of the
 * programs that use it.
 */
#ifndef TXIDSYNC_SETTINGS_H
#define TXIDSYNC_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum SettingType {
    SETTING_STRING, /* target: const char ** (borrowed from argv, environ or def) */
    SETTING_INT,    /* target: long long *, within [min, max] */
    SETTING_DOUBLE, /* target: double *, within [min, max] */
    SETTING_BOOL,   /* target: bool *; a flag without value, env "1/0/true/false" */
    SETTING_ENUM,   /* target: int *, index into choices ("stop|dead-letter") */
} SettingType;

typedef struct Setting {
    const char *name; /* flag without dashes, e.g. "batch-size" */
    SettingType type;
    const char *def;     /* default as text, NULL for none */
    const char *env;     /* environment variable, NULL for none */
    const char *metavar; /* shown in --help, e.g. "N" */
    const char *help;    /* one sentence */
    const char *choices; /* SETTING_ENUM only: "a|b|c" */
    double min, max;     /* SETTING_INT and SETTING_DOUBLE bounds */
    void *target;
    unsigned flags; /* SETTING_PER_TABLE, ... */
} Setting;

/* A setting of each table rather than of the process: with a config file
 * it is set per table section (see config.h), not on the command line. */
#define SETTING_PER_TABLE 1u
/* A secret: no command-line flag (ps would show it), only its
 * environment variable or a key of the config file. */
#define SETTING_NO_FLAG 2u

typedef enum SettingsResult {
    SETTINGS_OK = 0,     /* run the program */
    SETTINGS_EXIT = 1,   /* --help or --version was printed: exit 0 */
    SETTINGS_ERROR = -1, /* err holds a one-line message: exit 2 */
} SettingsResult;

/*
 * Applies defaults, then the environment, then argv[1..] to the targets of
 * the n settings in table.  "--help"/"-h" prints the usage to stdout,
 * "--version" prints "<prog> <version>" and "--man" the manual page
 * (settings_man, with the summary up to its first ':' or '.' as the
 * NAME); all three
 * return SETTINGS_EXIT.
 * summary is the one-paragraph description shown at the top of --help.
 */
SettingsResult settings_parse(const Setting *table, size_t n, const char *prog, const char *version,
                              const char *summary, int argc, char **argv, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The first two steps of settings_parse: defaults, then the environment.
 * Returns SETTINGS_OK or SETTINGS_ERROR. */
SettingsResult settings_apply_defaults(const Setting *table, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The last step of settings_parse: the command line (--help and --version
 * included).  Returns as settings_parse does. */
SettingsResult settings_apply_args(const Setting *table, size_t n, const char *prog,
                                   const char *version, const char *summary, int argc, char **argv,
                                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Converts text into s's target, as the command line would; origin names
 * where the text came from, for the message.  Returns 0, or -1 with err
 * filled. */
int settings_assign(const Setting *s, void *target, const char *text, const char *origin, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* The first setting of table with a flag in mask that is given on the
 * command line argv[1..], or NULL. */
const Setting *settings_first_given(const Setting *table, size_t n, unsigned mask, int argc,
                                    char **argv);

/* The setting named name (a flag without dashes), or NULL. */
const Setting *settings_find(const Setting *table, size_t n, const char *name, size_t name_len);

/* The exit status of every program here after bad usage. */
#define SETTINGS_EXIT_USAGE 2

/*
 * settings_parse for a main(): an error is printed to stderr as
 * "<prog>: <message>".  Returns -1 when the program is to run, 0 after
 * --help or --version, SETTINGS_EXIT_USAGE after an error; the last two
 * are main's exit status.
 */
int settings_parse_main(const Setting *table, size_t n, const char *prog, const char *version,
                        const char *summary, int argc, char **argv)
    __attribute__((warn_unused_result));

/* Prints the manual page (roff, section 1) generated from the table:
 * name_line is the NAME section's "does what" after the dash, summary
 * the description, as for settings_usage. */
void settings_man(FILE *out, const Setting *table, size_t n, const char *prog, const char *version,
                  const char *name_line, const char *summary);

/* Prints the usage generated from the table. */
void settings_usage(FILE *out, const Setting *table, size_t n, const char *prog,
                    const char *summary);

#endif
