#!/usr/bin/env bash
# The CLI on each key backend (ctest backend_cli_file, _pkcs11 on a SoftHSM
# token, _tpm on a real swtpm): site init, key show read back from the
# device, bulk new signed by the key and verified with the public key only,
# the site certificate's self-signature; then what an operator of that
# backend meets (PINs, TPM auth values, restarts, missing devices), each
# refusal with a clear message and exit 3 (2 for usage).
# Usage: backend_cli.sh file|pkcs11|tpm
B=${1:?usage: backend_cli.sh file|pkcs11|tpm}
TEST_NAME=backend_cli_$B
. "$(dirname "$0")/harness.sh"
unset SITETOKEN_SITE SITETOKEN_PKCS11_PIN SITETOKEN_TPM_KEY_AUTH SITETOKEN_TPM_KEY_AUTH_FILE
export SITETOKEN_TIME_OFFSET=0

case $B in
file) no_device=() ;;
pkcs11)
	eval "$(bash "$STK_SRC/swtpm-setup/softhsm-token.sh" "$T/hsm" cli)" || die "make a SoftHSM token"
	# Verification needs only the public key: no module, no PIN.
	no_device=(-u SITETOKEN_PKCS11_MODULE -u SITETOKEN_PKCS11_PIN_FILE) ;;
tpm)
	tpm_pair
	eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_A")"
	[ -n "${SITETOKEN_TCTI:-}" ] && [ "$(cat "$TPM_A/tcti")" = "$SITETOKEN_TCTI" ] ||
		die "swtpm-start printed no TCTI (or not its tcti file's)"
	kill -0 "$SWTPM_PID" || die "swtpm pid $SWTPM_PID not running"
	no_device=(SITETOKEN_TCTI=swtpm:host=127.0.0.1,port=1) ;;
*) die "unknown backend $B" ;;
esac

# bulk_ok SITE ALG [env...]: a bulk token signed there verifies as ALG.
bulk_ok() {
	local s=$1 alg=$2 tok
	shift 2
	tok=$(env "$@" "$ST" --site "$s" bulk new --json | json 'd["token"]')
	expect_in "\"alg\":\"$alg\"" "$(jws_header "$tok")" "$s: token header says $alg"
	expect_exit 0 "$s: the token verifies" -- bash -c "printf '%s' '$tok' | '$ST' --site '$s' verify --type bulk"
}

for kt in rsa2048:RS256 p256:ES256; do
	type=${kt%%:*} alg=${kt##*:} S=$T/site-$type
	init=()
	[ "$B" = pkcs11 ] && init=(--pkcs11-uri "pkcs11:token=cli;object=site-$type")
	expect_exit 0 "$type: site init" -- "$ST" --site "$S" site init --backend "$B" --key-type "$type" "${init[@]}" --json
	uri=$(json 'd["key_uri"]' <<<"$OUT")
	case $B in
	file) expect_in "$S/site.key" "$uri" "$type: the key URI names the key file" ;;
	pkcs11) expect_in "pkcs11:token=cli;object=site-$type;id=" "$uri" "$type: the key URI names token, object and id"
		if grep -qi pin <<<"$uri"; then bad "$type: the stored URI mentions a PIN"; else ok "$type: no PIN in the URI"; fi ;;
	tpm) expect_in "tpm:blob=/" "$uri" "$type: the key URI names the blob"
		expect_eq "$(stat -c %a "$S/site.tpmkey")" 600 "$type: key blob mode 0600" ;;
	esac
	expect_exit 0 "$type: key show --json" -- "$ST" --site "$S" key show --json
	expect_eq "$(json 'd["backend"]+" "+d["alg"]' <<<"$OUT")" "$B $alg" "$type: key show: backend $B, alg $alg"
	attrs=$(json '" ".join(k+"="+v for k, v in sorted(d["attributes"].items()))' <<<"$OUT")
	case $B in
	file) expect_eq "$(json 'd["non_exportable"]' 1 <<<"$OUT")" false "$type: a file key is exportable" ;;
	pkcs11) expect_eq "$(json 'd["non_exportable"]' 1 <<<"$OUT")" true "$type: non-exportable"
		for a in CKA_SENSITIVE=true CKA_EXTRACTABLE=false CKA_ALWAYS_SENSITIVE=true CKA_NEVER_EXTRACTABLE=true CKA_TOKEN=true; do
			expect_in "$a" "$attrs" "$type: $a read from the token"
		done
		expect_eq "$(json 'd["attestation"]' <<<"$OUT")" none "$type: no attestation on PKCS#11"
		# PKCS#11 has no standard key attestation: a plain explanation, exit 2.
		expect_exit 2 "$type: key attest refused" -- "$ST" --site "$S" key attest --nonce 00112233445566778899aabbccddeeff
		expect_in "PKCS#11 defines no standard" "$ERR" "$type: key attest says why" ;;
	tpm) expect_eq "$(json 'd["non_exportable"]' 1 <<<"$OUT")" true "$type: non-exportable"
		for a in fixedTPM=true fixedParent=true sensitiveDataOrigin=true userWithAuth=true sign=true decrypt=false restricted=false; do
			expect_in "$a" "$attrs" "$type: $a read from the TPM"
		done
		expect_in "fixedTPM|fixedParent" "$(json 'd["attributes"]["objectAttributes"]' <<<"$OUT")" "$type: objectAttributes" ;;
	esac
	bulk_ok "$S" "$alg"
	[ ${#no_device[@]} -gt 0 ] && bulk_tok=$("$ST" --site "$S" bulk new --json | json 'd["token"]') &&
		expect_exit 0 "$type: verify without the key device" -- env "${no_device[@]}" \
			bash -c "printf '%s' '$bulk_tok' | '$ST' --site '$S' verify --type bulk"
	# The public key agrees with the signing key: openssl verifies the site
	# certificate's self-signature made by the backend.
	expect_exit 0 "$type: site certificate self-signature verifies" -- \
		openssl verify -check_ss_sig -CAfile "$S/site.crt" "$S/site.crt"
done

if [ "$B" = pkcs11 ]; then
	S=$T/site-rsa2048
	pin=$(cat "$SITETOKEN_PKCS11_PIN_FILE")
	# Wrong PIN: exit 3, a message that names the cause, the PIN not echoed.
	expect_exit 3 "wrong PIN refused" -- env SITETOKEN_PKCS11_PIN=9999-wrong "$ST" --site "$S" bulk new
	expect_in "wrong PIN for PKCS#11 token 'cli'" "$ERR" "wrong PIN: clear message"
	expect_in "CKR_PIN_INCORRECT" "$ERR" "wrong PIN: names CKR_PIN_INCORRECT"
	if grep -q 9999-wrong <<<"$ERR$OUT"; then bad "wrong PIN echoed"; else ok "wrong PIN not echoed"; fi
	for i in 1 2 3 4 5; do env SITETOKEN_PKCS11_PIN=9999-wrong "$ST" --site "$S" bulk new >/dev/null 2>&1; done
	expect_exit 0 "token not locked after six wrong PINs: right PIN works" -- "$ST" --site "$S" bulk new
	flags=$(pkcs11-tool --module "$SITETOKEN_PKCS11_MODULE" -L 2>/dev/null | sed -n '/token label *: cli/,/^Slot/p')
	if grep -qi "locked" <<<"$flags"; then bad "token reports a locked PIN: $flags"; else ok "token flags show no lock"; fi
	# No PIN in the environment: prompted for on a terminal (a pty), not
	# echoed; without a terminal, a clear refusal. The PIN is typed once the
	# prompt turned echo off (typed before, the pty echoes it and the
	# prompt's TCSAFLUSH drops it: a sleep made that a race).
	out=$(printf '%s\n' "$pin" | env -u SITETOKEN_PKCS11_PIN_FILE timeout 20 python3 -c '
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
while termios.tcgetattr(fd)[3] & termios.ECHO:
    time.sleep(0.02)
os.write(fd, sys.stdin.buffer.readline())
try:
    while b := os.read(fd, 4096):
        sys.stdout.buffer.write(b)
except OSError:
    pass' "$ST" --site "$S" bulk new 2>&1)
	expect_in "PIN for PKCS#11 token 'cli':" "$out" "PIN prompt on a terminal"
	expect_in "Token GUID:" "$out" "prompted PIN works"
	if grep -qF -- "$pin" <<<"$out"; then bad "prompted PIN echoed"; else ok "prompted PIN not echoed"; fi
	expect_exit 3 "no PIN and no terminal" -- env -u SITETOKEN_PKCS11_PIN_FILE "$ST" --site "$S" bulk new </dev/null
	expect_in "needs a user PIN" "$ERR" "no PIN: says how to give one"
	# PIN file with loose permissions, or owned by another user (attacker 5
	# could replace it): refused.
	cp "$SITETOKEN_PKCS11_PIN_FILE" "$T/loose.pin"; chmod 644 "$T/loose.pin"
	expect_exit 3 "PIN file readable by others refused" -- env SITETOKEN_PKCS11_PIN_FILE="$T/loose.pin" "$ST" --site "$S" bulk new
	expect_in "chmod 600" "$ERR" "loose PIN file: says chmod 600"
	if [ "$(id -u)" = 0 ]; then
		cp "$SITETOKEN_PKCS11_PIN_FILE" "$T/other.pin"; chmod 600 "$T/other.pin"; chown 65534 "$T/other.pin"
		expect_exit 3 "PIN file owned by another user refused" -- env SITETOKEN_PKCS11_PIN_FILE="$T/other.pin" "$ST" --site "$S" bulk new
		expect_in "belongs to uid 65534" "$ERR" "foreign PIN file: says whose it is"
	fi
	expect_exit 3 "module that will not load" -- env SITETOKEN_PKCS11_MODULE=/nonexistent/libnone.so "$ST" --site "$S" bulk new
	expect_in "cannot load PKCS#11 module /nonexistent/libnone.so" "$ERR" "module: clear message"
	expect_exit 3 "missing token" -- "$ST" --site "$T/site-none" site init --backend pkcs11 \
		--pkcs11-uri "pkcs11:token=no-such-token;object=k"
	expect_in "no PKCS#11 token labelled 'no-such-token'" "$ERR" "missing token: clear message"
	[ -e "$T/site-none/site.db" ] && bad "missing token left a site behind" || ok "missing token: nothing created"
	# A PIN in the URI: refused before anything happens.
	expect_exit 2 "pin-value in the URI refused" -- "$ST" --site "$T/site-pv" site init --backend pkcs11 \
		--pkcs11-uri "pkcs11:token=cli;object=k?pin-value=123456"
	expect_in "pin-value is refused" "$ERR" "pin-value: clear message"
	# The key deleted from the token under the site (pkcs11-tool only takes
	# the PIN as an option; a throw-away test token).
	pkcs11-tool --module "$SITETOKEN_PKCS11_MODULE" --token-label cli --login --pin "$pin" \
		--delete-object --type privkey --label site-p256 >/dev/null 2>&1 || bad "delete key with pkcs11-tool"
	expect_exit 3 "missing object" -- "$ST" --site "$T/site-p256" bulk new
	expect_in "no private key object 'site-p256'" "$ERR" "missing object: clear message"
fi

if [ "$B" = tpm ]; then
	# --tcti on the command line wins over the environment.
	expect_exit 0 "--tcti wins over SITETOKEN_TCTI" -- env SITETOKEN_TCTI=swtpm:host=127.0.0.1,port=1 \
		"$ST" --site "$T/site-tcti" site init --backend tpm --key-type p256 --tcti "$SITETOKEN_TCTI"
	# Restart swtpm on the same state (on new ports): the keys still sign.
	old_tcti=$SITETOKEN_TCTI
	bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM_A"
	kill -0 "$SWTPM_PID" 2>/dev/null && bad "swtpm-stop left swtpm running"
	eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_A")"
	bulk_ok "$T/site-rsa2048" RS256
	bulk_ok "$T/site-p256" ES256
	expect_exit 3 "unreachable TPM" -- env SITETOKEN_TCTI="$old_tcti" "$ST" --site "$T/site-p256" bulk new
	expect_in "TPM unreachable" "$ERR" "unreachable TPM: clear message"
	# Key auth value: from the environment or a 0600 file; a wrong one is
	# refused with a clear message (and not retried).
	A=$T/site-auth
	expect_exit 0 "site init with a key auth value" -- env SITETOKEN_TPM_KEY_AUTH='s3cret pass' \
		"$ST" --site "$A" site init --backend tpm --key-type p256
	bulk_ok "$A" ES256 SITETOKEN_TPM_KEY_AUTH='s3cret pass'
	expect_exit 3 "wrong key auth" -- env SITETOKEN_TPM_KEY_AUTH=Wr0ngValue "$ST" --site "$A" bulk new
	expect_in "wrong auth value" "$ERR" "wrong key auth: clear message"
	if grep -q Wr0ngValue <<<"$ERR$OUT"; then bad "an auth value appears in the output"; else ok "auth value not echoed"; fi
	# No auth value for a key made with one: "auth value required", and no
	# wrong guess reaches the TPM (its lockout counter does not move).
	lockout() { TPM2TOOLS_TCTI="$SITETOKEN_TCTI" tpm2_getcap properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ {print $2}'; }
	l0=$(lockout)
	expect_refusal 3 "auth value required" "no key auth" -- "$ST" --site "$A" bulk new
	[ -n "$l0" ] && expect_eq "$(lockout)" "$l0" "no key auth: lockout counter unchanged"
	printf 's3cret pass\n' >"$T/auth"
	chmod 600 "$T/auth"
	bulk_ok "$A" ES256 SITETOKEN_TPM_KEY_AUTH_FILE="$T/auth"
	if [ "$(id -u)" = 0 ]; then # attacker 5: an auth file another user owns
		cp "$T/auth" "$T/auth-other"; chmod 600 "$T/auth-other"; chown 65534 "$T/auth-other"
		expect_exit 3 "auth file owned by another user" -- env SITETOKEN_TPM_KEY_AUTH_FILE="$T/auth-other" "$ST" --site "$A" bulk new
		expect_in "belongs to uid 65534" "$ERR" "foreign auth file: says whose it is"
	fi
	# key rotate without --key-uri (--help shows it optional): a new blob in
	# the site directory; the new key signs, the old key's token verifies.
	old_tok=$("$ST" --site "$T/site-p256" bulk new --json | json 'd["token"]')
	expect_exit 0 "key rotate without --key-uri" -- "$ST" --site "$T/site-p256" key rotate --json
	[[ $(json 'd["key_uri"]' <<<"$OUT") =~ tpm:blob=.*/site-[0-9][^/]*\.tpmkey$ ]] &&
		ok "rotated key: a new blob file" || bad "rotated key URI: $OUT"
	bulk_ok "$T/site-p256" ES256
	expect_exit 0 "the old key's token still verifies" -- bash -c "printf '%s' '$old_tok' | '$ST' --site '$T/site-p256' verify --type bulk"
	# A key blob is bound to the TPM that made it.
	eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_B")"
	expect_exit 3 "blob on another TPM" -- "$ST" --site "$T/site-p256" bulk new
	expect_in "made by another TPM" "$ERR" "blob on another TPM: clear message"
fi
finish
