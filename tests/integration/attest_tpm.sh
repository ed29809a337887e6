#!/usr/bin/env bash
# Key attestation against real swtpms provisioned with EK certificates
# (swtpm-setup/swtpm-start.sh: swtpm_setup --create-ek-cert, a local CA per
# TPM). The site side (`key attest`, `key activate-credential`) runs on TPM A;
# the auditor's side (`attest verify`, `attest challenge`) runs offline.
#
# Success: RS256 and ES256 site keys attest and verify; tpm2-tools'
# `tpm2_makecredential -T none` and our own `attest challenge` both round-trip
# through `key activate-credential`.
#
# Refusals: the attacker is a site operator or an intruder on the site host
# (threat model 3/5: holds the site's files, wants an auditor to believe a
# key is TPM-bound) or a network attacker (1) replaying or editing evidence
# in transit. Each forged or stale piece of evidence must be refused with a
# reason on stderr and exit 1; malformed input must not crash anything.
TEST_NAME=attest_tpm
. "$(dirname "$0")/harness.sh" tpm
command -v tpm2_makecredential >/dev/null || fail "tpm2-tools is not installed (./run deps)"

# A second TPM with its own manufacturer CA: the "other TPM".
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_B")"
TCTI_B=$SITETOKEN_TCTI CA_B=$SITETOKEN_EK_CA
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM_A")"
TCTI_A=$SITETOKEN_TCTI CA_A=$SITETOKEN_EK_CA
[ "$CA_A" = "$TPM_A/ca/swtpm-localca-rootca-cert.pem" ] || fail "SITETOKEN_EK_CA is not the CA under the state dir: $CA_A"
openssl x509 -in "$CA_A" -noout -subject | has swtpm-localca-rootca || fail "EK CA is not the local root"
cmp -s "$CA_A" "$CA_B" && fail "two TPM state dirs share one CA"

# edit IN OUT PYTHON: rewrite evidence fields; d()/e() decode/encode base64url.
edit() {
  python3 - "$1" "$2" "$3" <<'EOF'
import base64, json, sys
src, dst, code = sys.argv[1:4]
ev = json.load(open(src))
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def e(b): return base64.urlsafe_b64encode(b).decode().rstrip("=")
exec(code)
json.dump(ev, open(dst, "w"))
EOF
}
# refuse_ev WHAT REASON FILE: evidence FILE is refused against A's root and
# $N (exit 1, REASON); refuse_edit WHAT REASON PYTHON: $EV edited by PYTHON is.
refuse_ev() { expect_refusal 1 "$2" "$1" -- "$ST" attest verify "$3" --ek-ca "$CA_A" --nonce "$N"; }
refuse_edit() {
  edit "$EV" "$W/ev-edit.json" "$3"
  refuse_ev "$1" "$2" "$W/ev-edit.json"
}

# ---- success: RS256 and ES256 site keys ----------------------------------
for type in rsa2048 p256; do
  site="$W/site-$type"
  SITETOKEN_TCTI=$TCTI_A "$ST" --site "$site" site init --backend tpm --key-type "$type" >/dev/null
  SITETOKEN_TCTI=$TCTI_A "$ST" --site "$site" key show >"$W/show"
  grep -q "^Attestation: *available (TPM)" "$W/show" || fail "key show does not offer attestation: $(cat "$W/show")"
  SITETOKEN_TCTI=$TCTI_A "$ST" --site "$site" key show --json | has '"attestation": "tpm"' ||
    fail "key show --json has no attestation member"
  n=$(nonce)
  SITETOKEN_TCTI=$TCTI_A "$ST" --site "$site" key attest --nonce "$n" --out "$W/ev-$type.json"
  echo "$n" >"$W/nonce-$type"
  python3 - "$W/ev-$type.json" "$n" <<'EOF' || fail "evidence JSON shape ($type)"
import json, sys, re
ev = json.load(open(sys.argv[1]))
assert ev["fmt"] == "tpm" and ev["attStmt"]["ver"] == "2.0", ev
assert ev["attStmt"]["alg"] == -257, ev["attStmt"]["alg"]  # RSA EK -> RSA AK
for k in ("sig", "certInfo", "pubArea"):
    assert re.fullmatch(r"[A-Za-z0-9_-]+", ev["attStmt"][k]), k
assert ev["nonce"] == sys.argv[2]
assert len(ev["ekChain"]) == 1, "the intermediate from NV 0x01c00100"
EOF
  "$ST" attest verify "$W/ev-$type.json" --ek-ca "$CA_A" --nonce "$n" \
      --cert "$site/site.crt" >"$W/verify" || fail "$type evidence does not verify: $(cat "$W/verify")"
  grep -q "^Result: *pass" "$W/verify" || fail "verify output: $(cat "$W/verify")"
  grep -q "^Key: *$type, fixedTPM" "$W/verify" || fail "verify names the key type: $(cat "$W/verify")"
done
# The auditor needs no TPM and no site: verify ran above without
# SITETOKEN_TCTI or --site; make sure no TPM is reachable for it either.
n=$(cat "$W/nonce-p256")
SITETOKEN_TCTI=swtpm:host=127.0.0.1,port=1 "$ST" attest verify "$W/ev-p256.json" \
    --ek-ca "$CA_A" --nonce "$n" --json | has '"result":"pass"' || fail "verify needs a TPM"

# ---- credential activation: stock tpm2-tools, then our own challenge ------
EV="$W/ev-rsa2048.json" SITE="$W/site-rsa2048" N=$(cat "$W/nonce-rsa2048")
python3 -c 'import base64,json,sys; s=json.load(open(sys.argv[1]))["ekCert"]; sys.stdout.buffer.write(base64.urlsafe_b64decode(s+"="*(-len(s)%4)))' \
    "$EV" >"$W/ek.der"
openssl x509 -inform DER -in "$W/ek.der" -pubkey -noout >"$W/ek.pem"
akname=$("$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce "$N" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["ak_name"])')
[[ "$akname" =~ ^000b[0-9a-f]{64}$ ]] || fail "AK name: $akname"
head -c 32 /dev/urandom >"$W/secret.bin"
want=$(od -An -tx1 "$W/secret.bin" | tr -d ' \n')
tpm2_makecredential -T none -u "$W/ek.pem" -G rsa -s "$W/secret.bin" -n "$akname" \
    -o "$W/cred.tools" >/dev/null 2>&1 || fail "tpm2_makecredential"
got=$(SITETOKEN_TCTI=$TCTI_A "$ST" --site "$SITE" key activate-credential --in "$W/cred.tools")
expect_eq "$got" "$want" "activate-credential returns the secret"
got=$(SITETOKEN_TCTI=$TCTI_A "$ST" --site "$SITE" key activate-credential <"$W/cred.tools")
expect_eq "$got" "$want" "activate-credential from stdin"

"$ST" attest challenge "$EV" --out "$W/cred" >/dev/null
[ "$(stat -c %a "$W/cred.secret")" = 600 ] || fail "the expected secret file is not 0600"
got=$(SITETOKEN_TCTI=$TCTI_A "$ST" --site "$SITE" key activate-credential --in "$W/cred")
"$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce "$N" --secret "$got" --challenge "$W/cred" \
    >"$W/verify" || fail "round trip: $(cat "$W/verify")"
grep -q "AK in the EK's TPM: yes" "$W/verify" || fail "round trip not reported: $(cat "$W/verify")"
# The credential's format is tpm2-tools': the same magic and layout.
[ "$(head -c 8 "$W/cred" | od -An -tx1 | tr -d ' \n')" = "$(head -c 8 "$W/cred.tools" | od -An -tx1 | tr -d ' \n')" ] ||
  fail "credential header differs from tpm2_makecredential's"

# ---- refusals ---------------------------------------------------------------
# Evidence from another TPM: TPM B's EK chains to B's manufacturer, not A's.
siteb="$W/site-b"
SITETOKEN_TCTI=$TCTI_B "$ST" --site "$siteb" site init --backend tpm --key-type p256 >/dev/null
nb=$(nonce)
SITETOKEN_TCTI=$TCTI_B "$ST" --site "$siteb" key attest --nonce "$nb" --out "$W/ev-b.json"
"$ST" attest verify "$W/ev-b.json" --ek-ca "$CA_B" --nonce "$nb" >/dev/null || fail "TPM B evidence against B's root"
expect_refusal 1 "does not chain to a trusted EK root" "other TPM" -- \
  "$ST" attest verify "$W/ev-b.json" --ek-ca "$CA_A" --nonce "$nb"
# ... and with the EK certificate and chain swapped in from TPM A, the AK
# is still TPM B's: activation through A's EK fails (credential for A's EK
# and B's AK name is refused by TPM A).
edit "$W/ev-b.json" "$W/ev-b-ekA.json" "
a = json.load(open('$EV'))
ev['ekCert'] = a['ekCert']; ev['ekChain'] = a['ekChain']"
"$ST" attest verify "$W/ev-b-ekA.json" --ek-ca "$CA_A" --nonce "$nb" >/dev/null ||
  fail "spliced evidence should pass the static checks (only activation binds AK to EK)"
"$ST" attest challenge "$W/ev-b-ekA.json" --out "$W/cred-b" >/dev/null
expect_refusal 1 "not made for this TPM's AK" "credential for another AK name" -- \
  env SITETOKEN_TCTI="$TCTI_A" "$ST" --site "$SITE" key activate-credential --in "$W/cred-b"
# A credential for TPM B's EK is refused by TPM A too.
"$ST" attest challenge "$W/ev-b.json" --out "$W/cred-bb" >/dev/null
expect_refusal 1 "refused by the TPM" "credential for another EK" -- \
  env SITETOKEN_TCTI="$TCTI_A" "$ST" --site "$SITE" key activate-credential --in "$W/cred-bb"
# The auditor's challenge for one AK does not vouch for another evidence's AK.
expect_refusal 1 "made for another AK" "challenge of another AK" -- \
  "$ST" attest verify "$W/ev-b.json" --ek-ca "$CA_B" --nonce "$nb" --secret "$got" --challenge "$W/cred"
# A wrong secret (the site did not activate) fails.
expect_refusal 1 "activated secret is not the challenge's" "wrong secret" -- \
  "$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce "$N" --secret "00$got" --challenge "$W/cred"

# Wrong or reused nonce: old evidence against a fresh challenge.
expect_refusal 1 "answers another nonce" "wrong nonce" -- \
  "$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce "$(nonce)" --cert "$SITE/site.crt"
# Reused: the JSON's nonce rewritten to the fresh one, certInfo still old.
fresh=$(nonce)
edit "$EV" "$W/ev-replay.json" "ev['nonce'] = '$fresh'"
expect_refusal 1 "extraData is not the nonce" "reused nonce" -- \
  "$ST" attest verify "$W/ev-replay.json" --ek-ca "$CA_A" --nonce "$fresh"

# certInfo of another key: the ES256 key's pubArea with the RS256 certify.
refuse_edit "certInfo of another key" "certifies another key" "
ev['attStmt']['pubArea'] = json.load(open('$W/ev-p256.json'))['attStmt']['pubArea']"
# Genuine evidence, but about a key that is not the site certificate's.
expect_refusal 1 "not the expected key" "not the site's key" -- \
  "$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce "$N" --cert "$W/site-p256/site.crt"

# AK not restricted: same key bits, restricted cleared (an unrestricted key
# could sign any TPMS_ATTEST the attacker writes).
refuse_edit "AK not restricted" "AK is not a restricted key" "
b = bytearray(d(ev['akPub'])); a = int.from_bytes(b[4:8], 'big') & ~0x10000
b[4:8] = a.to_bytes(4, 'big'); ev['akPub'] = e(bytes(b))"

# A key without fixedTPM (duplicable): made here with tpm2-tools, persisted,
# and attested through --key-uri; the TPM certifies it honestly and the
# verifier must refuse it.
# No resource manager in front of swtpm: flush tpm2-tools' leftovers.
export TPM2TOOLS_TCTI=$TCTI_A
tpm2_flushcontext -t
tpm2_createprimary -Q -C o -G ecc256 -c "$W/prim.ctx"
tpm2_flushcontext -t
tpm2_create -Q -C "$W/prim.ctx" -G ecc256:ecdsa-sha256 \
    -a "sign|userwithauth|sensitivedataorigin|noda" -u "$W/dup.pub" -r "$W/dup.priv"
tpm2_flushcontext -t
tpm2_load -Q -C "$W/prim.ctx" -u "$W/dup.pub" -r "$W/dup.priv" -c "$W/dup.ctx"
tpm2_evictcontrol -Q -C o -c "$W/dup.ctx" 0x81000123 >/dev/null
tpm2_flushcontext -t
unset TPM2TOOLS_TCTI
nd=$(nonce)
SITETOKEN_TCTI=$TCTI_A "$ST" key attest --key-uri tpm:handle=0x81000123 --nonce "$nd" --out "$W/ev-dup.json"
expect_refusal 1 "lacks fixedTPM fixedParent" "key without fixedTPM" -- \
  "$ST" attest verify "$W/ev-dup.json" --ek-ca "$CA_A" --nonce "$nd"

# Truncated and padded blobs.
refuse_edit "truncated pubArea" "pubArea is not a TPMT_PUBLIC (truncated" "ev['attStmt']['pubArea'] = e(d(ev['attStmt']['pubArea'])[:-1])"
refuse_edit "padded pubArea" "after its TPMT_PUBLIC (padded)" "ev['attStmt']['pubArea'] = e(d(ev['attStmt']['pubArea']) + b'\\0')"
refuse_edit "truncated akPub" "akPub is not a TPMT_PUBLIC" "ev['akPub'] = e(d(ev['akPub'])[:10])"
refuse_edit "padded ekCert" "ekCert is not one DER" "ev['ekCert'] = e(d(ev['ekCert']) + b'\\0\\0')"
refuse_edit "truncated certInfo" "signature over certInfo does not verify" "ev['attStmt']['certInfo'] = e(d(ev['attStmt']['certInfo'])[:-2])"
refuse_edit "edited signature" "signature over certInfo does not verify" "
s = bytearray(d(ev['attStmt']['sig'])); s[10] ^= 1; ev['attStmt']['sig'] = e(bytes(s))"
refuse_edit "padded base64url" "not strict base64url" "ev['akPub'] = ev['akPub'] + '='"
printf '{"fmt":"tpm","fmt":"tpm"}' >"$W/ev-dup-member.json"
refuse_ev "duplicate member" "not a JSON object" "$W/ev-dup-member.json"
head -c 300 "$EV" >"$W/ev-cut.json"
refuse_ev "cut JSON" "not a JSON object" "$W/ev-cut.json"

# Credential files: truncated and padded ones are usage errors (exit 2),
# refused before the TPM is asked.
head -c 40 "$W/cred.tools" >"$W/cred.short"
{ cat "$W/cred.tools"; printf 'x'; } >"$W/cred.long"
for c in short:truncated long:padded; do
  expect_refusal 2 "${c#*:}" "${c#*:} credential" -- \
    env SITETOKEN_TCTI="$TCTI_A" "$ST" --site "$SITE" key activate-credential --in "$W/cred.${c%%:*}"
done

# Bad nonces are usage errors.
expect_refusal 2 "nonce must be" "odd nonce" -- env SITETOKEN_TCTI="$TCTI_A" "$ST" --site "$SITE" key attest --nonce abc
expect_exit 2 "short nonce" -- "$ST" attest verify "$EV" --ek-ca "$CA_A" --nonce 0011

# ---- a file-backend site has no attestation ---------------------------------
"$ST" --site "$W/site-file" site init --backend file >/dev/null
"$ST" --site "$W/site-file" key show | has "^Attestation: *none" || fail "file key show"
expect_refusal 2 "file backend has no key attestation" "file backend key attest" -- \
  "$ST" --site "$W/site-file" key attest --nonce "$(nonce)"

echo "attest_tpm: all checks passed"
