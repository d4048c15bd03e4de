/*
 * target_name: default target names (see target_name.h).
 */
#include "target_name.h"

#include <ctype.h>
#include <string.h>

void target_default_name(const char *table, char *out, size_t outlen)
{
    if (strncmp(table, "public.", 7) == 0)
        table += 7;
    else if (strncmp(table, "\"public\".", 9) == 0)
        table += 9;
    size_t w = 0;
    for (const char *p = table; *p && w + 1 < outlen; p++) {
        if (*p != '"')
            out[w++] = (char)tolower((unsigned char)*p);
    }
    if (outlen > 0)
        out[w] = '\0';
}
