/*
 * latency: log-linear histogram of durations (see latency.h).
 *
 * Bucket i < LATENCY_SUB holds exactly i microseconds.  Above that, a
 * value v with highest set bit e (e >= 5) falls in the group of shift
 * s = e - 4, which splits [2^e, 2^(e+1)) into LATENCY_SUB buckets of
 * 2^(e-5) microseconds each.
 */
#include "latency.h"

#include <math.h>
#include <string.h>

void latency_reset(LatencyHist *h)
{
    memset(h, 0, sizeof(*h));
}

/* The bucket of v microseconds. */
static size_t bucket_of(uint64_t v)
{
    if (v < LATENCY_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v); /* >= 5 */
    int shift = e - 5;
    size_t i = (size_t)(shift + 1) * LATENCY_SUB + (size_t)((v >> shift) - LATENCY_SUB);
    return i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS - 1;
}

/* The first microsecond value above bucket i. */
static uint64_t bucket_upper(size_t i)
{
    if (i < LATENCY_SUB)
        return (uint64_t)i + 1;
    size_t shift = i / LATENCY_SUB - 1;
    uint64_t m = (uint64_t)(i % LATENCY_SUB) + LATENCY_SUB;
    return (m + 1) << shift;
}

void latency_record(LatencyHist *h, double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    double us = seconds * 1e6;
    uint64_t v = us >= 9.0e18 ? UINT64_MAX : (uint64_t)us;
    h->counts[bucket_of(v)]++;
    h->n++;
    if (seconds > h->max_s)
        h->max_s = seconds;
}

void latency_merge(LatencyHist *dst, const LatencyHist *src)
{
    for (size_t i = 0; i < LATENCY_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    if (src->max_s > dst->max_s)
        dst->max_s = src->max_s;
}

double latency_quantile(const LatencyHist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double upper = (double)bucket_upper(i) / 1e6;
            return upper < h->max_s ? upper : h->max_s;
        }
    }
    return h->max_s;
}
