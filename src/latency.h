/*
 * latency: a fixed-size histogram of durations with about 3 % relative
 * resolution, for the syncer's commit-to-acknowledgement latency.
 *
 * Values are kept in microseconds in log-linear buckets (32 per power of
 * two), so recording is a few instructions and the memory is constant
 * (about 10 KiB) however many values are recorded.  Pure logic, no I/O.
 */
#ifndef TXIDSYNC_LATENCY_H
#define TXIDSYNC_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define LATENCY_SUB     32 /* buckets per power of two */
#define LATENCY_BUCKETS (LATENCY_SUB * 38)

typedef struct LatencyHist {
    uint64_t counts[LATENCY_BUCKETS];
    uint64_t n;
    double max_s; /* the largest value recorded */
} LatencyHist;

/* Empties h. */
void latency_reset(LatencyHist *h);

/* Records one duration in seconds; negative values (clock steps) count as
 * 0 and values beyond about 50 days as the largest bucket. */
void latency_record(LatencyHist *h, double seconds);

/* Adds every value of src to dst. */
void latency_merge(LatencyHist *dst, const LatencyHist *src);

/*
 * The q-quantile (0 < q <= 1) in seconds: the upper edge of the bucket
 * holding the value of rank ceil(q * n), but never more than the largest
 * value recorded.  0 when h is empty.
 */
double latency_quantile(const LatencyHist *h, double q);

#endif
