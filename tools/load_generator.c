/*
 * load-generator: N connections of concurrent, colliding transactions
 * against the tracked table (see --help).  Not written yet: it only parses
 * its settings, so the build and the README can already name it.
 */
#include <stdio.h>

#include "settings.h"
#include "version.h"

int main(int argc, char **argv)
{
    long long connections = 32, duration = 0, seed = 1;
    const Setting table[] = {
        {"connections", SETTING_INT, "32", NULL, "N", "number of concurrent connections", NULL, 1, 1000, &connections},
        {"duration", SETTING_INT, "0", NULL, "SECONDS", "stop after this many seconds; 0 runs until SIGINT or SIGTERM", NULL, 0, 1e9, &duration},
        {"seed", SETTING_INT, "1", NULL, "N", "seed of the random choices", NULL, 0, 9e18, &seed},
    };
    char err[256];
    SettingsResult r = settings_parse(table, sizeof(table) / sizeof(table[0]), "load-generator",
                                      TXIDSYNC_VERSION,
                                      "Runs N connections of concurrent transactions against the tracked table.",
                                      argc, argv, err, sizeof(err));
    if (r == SETTINGS_EXIT)
        return 0;
    if (r == SETTINGS_ERROR) {
        fprintf(stderr, "load-generator: %s\n", err);
        return 2;
    }
    fprintf(stderr, "load-generator: not implemented yet\n");
    return 2;
}
