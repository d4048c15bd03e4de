/*
 * txidsync: the sync daemon.  Not written yet: it parses its settings.
 */
#include <stdio.h>

#include "settings.h"
#include "version.h"

int main(int argc, char **argv)
{
    const char *es_url = NULL;
    const Setting table[] = {
        {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL", "Elasticsearch/OpenSearch base URL", NULL, 0, 0, &es_url},
    };
    char err[256];
    SettingsResult r = settings_parse(table, sizeof(table) / sizeof(table[0]), "txidsync",
                                      TXIDSYNC_VERSION,
                                      "Copies a tracked PostgreSQL table into Elasticsearch/OpenSearch.",
                                      argc, argv, err, sizeof(err));
    if (r == SETTINGS_EXIT)
        return 0;
    if (r == SETTINGS_ERROR) {
        fprintf(stderr, "txidsync: %s\n", err);
        return 2;
    }
    fprintf(stderr, "txidsync: not implemented yet\n");
    return 2;
}
