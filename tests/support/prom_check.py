#!/usr/bin/python3
"""Checks scrapes of txidsync's /metrics, given as files in scrape order:
every one parses with prometheus_client's text-format parser, and no
counter (nor histogram bucket, count or sum) of any series ever goes
down.  Prints the number of scrapes and series, and the first and last
value of txidsync_changes_applied_total per table.  Exit 1 on a failure."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def samples(path):
    with open(path) as f:
        text = f.read()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            grows = fam.type in ("counter", "histogram")
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = (s.value, grows)
    return out


def main(paths):
    prev = None
    first = last = None
    for p in paths:
        cur = samples(p)
        if not cur:
            sys.exit(f"{p}: no samples")
        if prev:
            for key, (value, grows) in cur.items():
                if grows and key in prev and value < prev[key][0]:
                    sys.exit(f"{p}: {key} went down from {prev[key][0]} to {value}")
            gone = set(prev) - set(cur)
            if gone:
                sys.exit(f"{p}: series disappeared: {sorted(gone)[:3]}")
        applied = {k: v for k, (v, _) in cur.items() if k[0] == "txidsync_changes_applied_total"}
        first = first or applied
        last = applied
        prev = cur
    print(f"{len(paths)} scrapes, {len(prev)} series parsed, counters never went down")
    for k, v in last.items():
        print(f"changes applied {dict(k[1]).get('table')}: {first.get(k, 0):.0f} -> {v:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
