/*
 * consistency-check: compares the tracked table in Postgres with the index,
 * key by key.  Not written yet: it only parses its settings.
 */
#include <stdio.h>

#include "settings.h"
#include "version.h"

int main(int argc, char **argv)
{
    const char *es_url = NULL, *index = NULL;
    const Setting table[] = {
        {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL", "Elasticsearch/OpenSearch base URL", NULL, 0, 0, &es_url},
        {"index", SETTING_STRING, "some_table", NULL, "NAME", "index to compare", NULL, 0, 0, &index},
    };
    char err[256];
    SettingsResult r = settings_parse(table, sizeof(table) / sizeof(table[0]), "consistency-check",
                                      TXIDSYNC_VERSION,
                                      "Compares the tracked table in Postgres with the index, key by key.",
                                      argc, argv, err, sizeof(err));
    if (r == SETTINGS_EXIT)
        return 0;
    if (r == SETTINGS_ERROR) {
        fprintf(stderr, "consistency-check: %s\n", err);
        return 2;
    }
    fprintf(stderr, "consistency-check: not implemented yet\n");
    return 2;
}
