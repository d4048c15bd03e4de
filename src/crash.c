/*
 * crash: SIGKILL of itself at named points with a set probability.
 */
#include "crash.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static double probability;
static uint64_t state = 0x9e3779b97f4a7c15ull;

void crash_configure(double p, uint64_t seed)
{
    probability = p;
    state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

/* splitmix64: a small, good enough generator for a coin toss. */
static uint64_t next(void)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void crash_point(const char *where)
{
    if (probability <= 0)
        return;
    double u = (double)(next() >> 11) / (double)(1ull << 53);
    if (u >= probability)
        return;
    char line[160];
    int n = snprintf(line, sizeof(line), "crash injection: killing myself %s\n", where);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    kill(getpid(), SIGKILL);
}
