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

# x5t#S256 of a PEM certificate file.
cert_x5t() {
	openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '=\n'
}

# mp_pop_body CERT SIGNING_KEY [NONCE] -> $T/body: an HTTP MP register body
# with CERT and its proof of possession (docs/api.md): the MP's challenge
# (or NONCE) signed by SIGNING_KEY, as any third-party agent can do it with
# openssl. The nonce used is left in $T/nonce.
mp_pop_body() {
	local crt=$1 key=$2 nonce=${3:-}
	[ -n "$nonce" ] || nonce=$(curl -s -H 'Content-Type: application/json' -d '{}' \
		"$MP/sitetoken/v1/challenge" | json_get nonce)
	printf '%s' "$nonce" > "$T/nonce"
	printf 'sitetoken-register-v1\n%s\n%s' "$nonce" "$(cert_x5t "$crt")" |
		openssl dgst -sha256 -sign "$key" | basenc --base64url | tr -d '=\n' > "$T/proof"
	python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(),
	    "nonce": open(sys.argv[2]).read(), "proof": open(sys.argv[3]).read()}))' \
		"$crt" "$T/nonce" "$T/proof" > "$T/body"
}
