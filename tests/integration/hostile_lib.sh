# Shared set-up for the hostile-input, crash and secret tests (sourced after
# server_lib.sh): a database fingerprint to prove a refusal changed nothing,
# audit counters, raw HTTP calls with any body/certificate.

# Devices and bulk tokens, every column: equal before and after a refusal.
db_state() {
	sqlite3 "$SITE/site.db" "SELECT * FROM devices ORDER BY guid; SELECT * FROM bulk_tokens ORDER BY guid;" | sha256sum | cut -c1-16
}
audit_count() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit"; }
audit_last() { sqlite3 "$SITE/site.db" "SELECT outcome || ' ' || event || ' ' || detail FROM audit ORDER BY seq DESC LIMIT 1"; }

# A self-signed device identity made with openssl: dev_identity NAME -> $T/NAME.{crt,key}
dev_identity() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -out "$T/$1.crt" -days 30 -subj "/CN=$1" 2>/dev/null
	chmod 600 "$T/$1.key"
}

# post_json URL BODY_FILE|- [curl args...] -> "STATUS ERROR" (ERROR '-' without
# one); response body in $T/resp. BODY_FILE '-': no body (a GET).
post_json() {
	local url=$1 body=$2; shift 2
	local code data=()
	: > "$T/resp"
	[ "$body" = - ] || data=(-H 'Content-Type: application/json' --data-binary @"$body")
	code=$(curl -s --max-time 20 --cacert "$T/tls.crt" -o "$T/resp" -w '%{http_code}' \
		"${data[@]}" "$@" "$url") || code=${code:-000}
	echo "$code $(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("error","-"))
except Exception: print("?")' "$T/resp")"
}

# bearer_hdr TOKEN_FILE -> a curl header file (0600), so no token is on argv
bearer_hdr() {
	( umask 077; printf 'Authorization: Bearer %s' "$(cat "$1")" > "$T/bearer.hdr" )
	echo "$T/bearer.hdr"
}
