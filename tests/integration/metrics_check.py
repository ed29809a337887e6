#!/usr/bin/python3
"""Parse a Prometheus text exposition with the Python client's parser
(Debian python3-prometheus-client) and print its samples as JSON:
{"name{label=value,...}": value}. Fails (exit 1) on anything the parser
refuses, a sample whose family has no TYPE, a histogram whose buckets are
not cumulative or whose _count is not its +Inf bucket."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def key(name, labels):
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


def main():
    text = sys.stdin.read()
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            base = name
            for suf in ("_bucket", "_sum", "_count", "_total"):
                if name.endswith(suf) and name[: -len(suf)] in typed:
                    base = name[: -len(suf)]
            if base not in typed and name not in typed:
                sys.exit(f"sample {name} has no # TYPE line before it")
    out = {}
    for fam in text_string_to_metric_families(text):
        buckets = {}
        for s in fam.samples:
            if math.isnan(s.value):
                sys.exit(f"{s.name}: NaN")
            out[key(s.name, s.labels)] = s.value
            if fam.type == "histogram" and s.name.endswith("_bucket"):
                rest = {k: v for k, v in s.labels.items() if k != "le"}
                buckets.setdefault(key(fam.name, rest), []).append(
                    (float(s.labels["le"]), s.value))
        for series, bs in buckets.items():
            vals = [v for _, v in sorted(bs)]
            if vals != sorted(vals):
                sys.exit(f"{series}: buckets are not cumulative")
            if sorted(bs)[-1][0] != math.inf:
                sys.exit(f"{series}: no +Inf bucket")
            labels = series[len(fam.name):]
            if out.get(fam.name + "_count" + labels) != vals[-1]:
                sys.exit(f"{series}: _count differs from the +Inf bucket")
    if not out:
        sys.exit("no samples")
    json.dump(out, sys.stdout, indent=0, sort_keys=True)


main()
