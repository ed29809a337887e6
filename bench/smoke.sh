#!/usr/bin/env bash
# CI smoke for the bench: a very short run (a few hundred operations per
# figure) that must print every figure, text and JSON. No timing is
# asserted: the numbers of so short a run mean nothing.
#   bench/smoke.sh BUILD_DIR
set -euo pipefail
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
out=$(bash "$HERE/run.sh" "$BUILD" --quick)
echo "$out"
missing=0
for fig in "verify RS256 1t" "verify RS256 2t" "verify ES256 1t" "verify ES256 2t" \
    "issue file RS256 1t" "issue file RS256 2t" "issue file ES256 1t" "issue file ES256 2t" \
    "memory verify RS256" "memory growth RS256" \
    "issue pkcs11 RS256 1t" "issue pkcs11 RS256 2t" "issue tpm RS256 1t" \
    "gateway policy keep-alive" "gateway policy cache warm" "gateway policy 100k devices" \
    "gateway rss" "register cmg file c8" "register cmg softhsm c1" \
    "register cmg softhsm c2" "register cmg softhsm c8" \
    "registrations during refusal flood" "site-key signatures per 10000 refusals"; do
	if ! grep -q "^$fig[^:]*: [0-9]" <<<"$out"; then
		echo "FAIL: figure '$fig' not printed" >&2
		missing=1
	fi
done
[ "$missing" = 0 ] || exit 1
# The JSON form parses and holds the same number of figures.
json=$("$BUILD/bench/sitetoken-bench" --quick --json --only tokens)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d) == 10, d; print("json ok:", len(d), "figures")' "$json"
echo "ok - every figure printed"
