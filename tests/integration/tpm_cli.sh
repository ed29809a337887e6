#!/usr/bin/env bash
# The CLI on a TPM site key, through a real swtpm: site init + bulk new +
# verify on RS256 and ES256, key show reads the TPM attributes back, a
# restart of swtpm keeps the key, and the errors an operator meets (TPM
# unreachable, wrong key auth, key blob from another TPM) are clear and
# exit 3.
TEST_NAME=tpm_cli
. "$(dirname "$0")/tpm_lib.sh"

eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_A")"
[ -n "${SITETOKEN_TCTI:-}" ] && [ -n "${SWTPM_PID:-}" ] || fail "swtpm-start printed no exports"
[ "$(cat "$TPM_A/tcti")" = "$SITETOKEN_TCTI" ] || fail "tcti file differs from the export"
kill -0 "$SWTPM_PID" || fail "swtpm pid $SWTPM_PID not running"

token_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }

check_site() { # check_site DIR ALG
  local dir=$1 alg=$2 tok out
  tok=$("$ST" --site "$dir" bulk new --json | token_of)
  out=$(printf '%s' "$tok" | "$ST" --site "$dir" verify --type bulk --json) ||
    fail "$alg token from the TPM key does not verify"
  echo "$out" | grep -q "\"$alg\"" || fail "verify output does not show $alg: $out"
}

for kt in rsa2048:RS256 p256:ES256; do
  type=${kt%%:*} alg=${kt##*:}
  site="$W/site-$type"
  "$ST" --site "$site" site init --backend tpm --key-type "$type" >/dev/null
  [ "$(stat -c %a "$site/site.tpmkey")" = 600 ] || fail "key blob is not mode 0600"
  check_site "$site" "$alg"
  "$ST" --site "$site" key show --json >"$W/show.json"
  python3 - "$W/show.json" "$alg" <<'EOF' || fail "key show --json for $type"
import json, sys
j = json.load(open(sys.argv[1]))
a = j["attributes"]
assert j["backend"] == "tpm", j
assert j["alg"] == sys.argv[2], j
assert j["non_exportable"] is True, j
assert j["location"].startswith("tpm:blob=/"), j
for k in ("fixedTPM", "fixedParent", "sensitiveDataOrigin", "userWithAuth", "sign"):
    assert a[k] == "true", (k, a)
for k in ("decrypt", "restricted"):
    assert a[k] == "false", (k, a)
assert "fixedTPM|fixedParent" in a["objectAttributes"], a
EOF
done

# --tcti on the command line wins over the environment.
good_tcti=$SITETOKEN_TCTI
SITETOKEN_TCTI=swtpm:host=127.0.0.1,port=1 "$ST" --site "$W/site-tcti" site init \
  --backend tpm --key-type p256 --tcti "$good_tcti" >/dev/null ||
  fail "--tcti was not used"

# Restart swtpm on the same state (on new ports): the keys still sign.
old_tcti=$SITETOKEN_TCTI
bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM_A"
kill -0 "$SWTPM_PID" 2>/dev/null && fail "swtpm-stop left swtpm running"
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_A")"
check_site "$W/site-rsa2048" RS256
check_site "$W/site-p256" ES256

# TPM unreachable (the port of the stopped instance): clear error, exit 3.
set +e
SITETOKEN_TCTI=$old_tcti "$ST" --site "$W/site-p256" bulk new >/dev/null 2>"$W/err"
rc=$?
set -e
[ $rc -eq 3 ] || fail "unreachable TPM: exit $rc, want 3"
grep -q "TPM unreachable" "$W/err" || fail "unreachable TPM: message: $(cat "$W/err")"

# Key auth value: from the environment or a 0600 file; a wrong one is
# refused with a clear message (and not retried), exit 3.
SITETOKEN_TPM_KEY_AUTH='s3cret pass' "$ST" --site "$W/site-auth" site init \
  --backend tpm --key-type p256 >/dev/null
SITETOKEN_TPM_KEY_AUTH='s3cret pass' check_site "$W/site-auth" ES256
set +e
SITETOKEN_TPM_KEY_AUTH=Wr0ngValue "$ST" --site "$W/site-auth" bulk new >/dev/null 2>"$W/err"
rc=$?
set -e
[ $rc -eq 3 ] || fail "wrong key auth: exit $rc, want 3"
grep -q "wrong auth value" "$W/err" || fail "wrong key auth: message: $(cat "$W/err")"
grep -q "Wr0ngValue" "$W/err" && fail "an auth value appears in the error output"
# No auth value given for a key made with one: "auth value required", and
# no wrong guess reaches the TPM (its lockout counter does not move).
lockout() { TPM2TOOLS_TCTI="$SITETOKEN_TCTI" tpm2_getcap properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ {print $2}'; }
l0=$(lockout)
set +e
"$ST" --site "$W/site-auth" bulk new >/dev/null 2>"$W/err"
rc=$?
set -e
[ $rc -eq 3 ] || fail "no key auth: exit $rc, want 3"
grep -q "auth value required" "$W/err" || fail "no key auth: message: $(cat "$W/err")"
[ -n "$l0" ] && [ "$(lockout)" = "$l0" ] || fail "no key auth: lockout counter moved ($l0 -> $(lockout))"
printf 's3cret pass\n' >"$W/auth"
chmod 600 "$W/auth"
SITETOKEN_TPM_KEY_AUTH_FILE="$W/auth" check_site "$W/site-auth" ES256
if [ "$(id -u)" = 0 ]; then # attacker 5: an auth file another user owns
  cp "$W/auth" "$W/auth-other"; chmod 600 "$W/auth-other"; chown 65534 "$W/auth-other"
  set +e
  SITETOKEN_TPM_KEY_AUTH_FILE="$W/auth-other" "$ST" --site "$W/site-auth" bulk new >/dev/null 2>"$W/err"
  rc=$?
  set -e
  [ $rc -eq 3 ] && grep -q "belongs to uid 65534" "$W/err" || fail "foreign auth file: exit $rc $(cat "$W/err")"
fi

# key rotate on tpm without --key-uri (as --help shows it optional): a new
# key blob in the site directory; the new key signs, the old one verifies.
old_tok=$("$ST" --site "$W/site-p256" bulk new --json | token_of)
"$ST" --site "$W/site-p256" key rotate --json >"$W/rot" 2>"$W/err" || fail "tpm key rotate without --key-uri: $(cat "$W/err")"
grep -q '"key_uri":"tpm:blob=.*site-[0-9]*.tpmkey"' "$W/rot" || fail "rotated key URI: $(cat "$W/rot")"
check_site "$W/site-p256" ES256
printf '%s' "$old_tok" | "$ST" --site "$W/site-p256" verify --type bulk >/dev/null || fail "the old TPM key's token no longer verifies"

# A key blob is bound to the TPM that made it.
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_B")"
set +e
"$ST" --site "$W/site-p256" bulk new >/dev/null 2>"$W/err"
rc=$?
set -e
[ $rc -eq 3 ] || fail "blob on another TPM: exit $rc, want 3"
grep -q "made by another TPM" "$W/err" || fail "blob on another TPM: message: $(cat "$W/err")"
pid_b=$SWTPM_PID
bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM_B"
kill -0 "$pid_b" 2>/dev/null && fail "swtpm B still running"

echo "tpm_cli: all checks passed"
