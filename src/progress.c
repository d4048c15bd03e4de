/*
 * progress: the text of a progress report (see progress.h).
 */
#include "progress.h"

#include <stdbool.h>
#include <stdio.h>

void progress_duration(char *out, size_t len, double s)
{
    long long t = s < 0 ? 0 : (long long)(s + 0.5);
    if (t < 60)
        snprintf(out, len, "%llds", t);
    else if (t < 3600)
        snprintf(out, len, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(out, len, "%lldh%02lldm", t / 3600, t / 60 % 60);
}

void progress_text(char *out, size_t len, long long done, long long total, double rate)
{
    if (len == 0)
        return;
    int n = snprintf(out, len, "%lld rows", done);
    bool ahead = total > 0 && done < total;
    if (ahead && n >= 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, " of ~%lld (%d%%)", total,
                      (int)(100.0 * (double)done / (double)total));
    if (rate > 0 && n >= 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, ", %.0f rows/s", rate);
    if (ahead && rate > 0 && n >= 0 && (size_t)n < len) {
        char eta[32];
        progress_duration(eta, sizeof(eta), (double)(total - done) / rate);
        snprintf(out + n, len - (size_t)n, ", ETA %s", eta);
    }
}
