#!/usr/bin/env bash
# The device key in hardware (issue 18): `sitetoken-agent --key tpm` on a
# second swtpm (the device's TPM, distinct from none the site uses) and
# `--key pkcs11:URI` on SoftHSM. Each device installs through the CMG with a
# bulk token (TLS client authentication signed inside the TPM / token),
# renews, and reads its policy; the state directory never holds a private
# key. Refusals: --key contradicting the state, a PIN in argv, an
# unreachable TPM, a certificate that is not the held key's.
TEST_NAME=agent_devkey
. "$(dirname "$0")/harness.sh" server
device_tpms

# No private key anywhere in a state directory (PEM or DER PKCS#8/SEC1).
assert_no_private_key() {
	local d=$1 f
	[ ! -e "$d/device.key" ] || fail "$d/device.key exists"
	for f in "$d"/*; do
		if grep -qa "PRIVATE KEY" "$f"; then fail "private key in $f"; fi
		if openssl pkey -inform DER -in "$f" -noout 2>/dev/null; then fail "DER private key in $f"; fi
	done
}

serve_site
bguid=$(new_bulk "$T/bulk.tok")

# ---- TPM ----------------------------------------------------------------
swtpm_up "$DEV_TPM" DEV_TCTI
out=$(agent devT 0 --key tpm --tcti "$DEV_TCTI" install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" \
	SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok") || fail "tpm install: $out"
echo "$out" | has "installed: device" || fail "tpm install: $out"
guid=$(agent devT 0 status --json | json_get device_guid)
row=$(sqlite3 "$SITE/site.db" "SELECT via, bulk_guid FROM devices WHERE guid='$guid'")
[ "$row" = "cmg|$bguid" ] || fail "tpm device row: $row"
grep -q "^tpm:blob=$T/devT/device.tpmkey$" "$T/devT/device.keyref" || fail "keyref: $(cat "$T/devT/device.keyref")"
[ "$(stat -c %a "$T/devT/device.keyref")" = 600 ] || fail "keyref mode"
grep -q "Created the device key (P-256) inside the TPM, non-exportable" "$T/devT/ccmsetup.log" || fail "ccmsetup.log key line"
grep -q "signed by the tpm-held device key" "$T/devT/ccmsetup.log" || fail "ccmsetup.log cert line"
assert_no_private_key "$T/devT"
ok "--key tpm: key made in the device TPM, installed through the CMG (TLS client auth signed in the TPM), no private key in the state"

# The certificate is signed by the TPM key, and the TPM object is fixed to it.
openssl x509 -in "$T/devT/device.crt" -noout -pubkey > "$T/devT.pub"
openssl verify -CAfile "$T/devT/device.crt" "$T/devT/device.crt" >/dev/null 2>&1 || fail "self-signature"
# The blob: magic, version, algorithm (10 bytes), then TPM2B_PUBLIC.
python3 -c '
import sys,struct
b=open(sys.argv[1],"rb").read()[10:]
n=struct.unpack(">H",b[:2])[0]; open(sys.argv[2],"wb").write(b[:2+n])' "$T/devT/device.tpmkey" "$T/devT.tpmpub"
tpm2_print -t TPM2B_PUBLIC "$T/devT.tpmpub" > "$T/tpmpub.txt" || fail "tpm2_print of the blob's public area"
for attr in fixedtpm fixedparent sensitivedataorigin sign; do
	grep -qi "$attr" "$T/tpmpub.txt" || fail "TPM key lacks $attr: $(cat "$T/tpmpub.txt")"
done
ok "TPM key attributes: fixedTPM|fixedParent|sensitiveDataOrigin|sign"

# Authenticated requests and renewal keep using the TPM key (SITETOKEN_TCTI this time).
SITETOKEN_TCTI=$DEV_TCTI agent devT 0 policy | has "\"device_guid\":\"$guid\"" || fail "tpm policy"
old=$(agent devT 0 status --json | json_get jti)
SITETOKEN_TCTI=$DEV_TCTI agent devT 31 renew >/dev/null || fail "tpm renew"
new=$(agent devT 31 status --json | json_get jti)
[ "$old" != "$new" ] || fail "renewal kept jti $old"
assert_no_private_key "$T/devT"
ok "policy and renewal through the CMG with the TPM-held key (SITETOKEN_TCTI)"

# A pinned gateway with the TPM-held key: the pin check and the held key's
# TLS client authentication share libcurl's SSL_CTX hook (agent/pin.c).
pin=sha256:$(openssl x509 -in "$T/tls.crt" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
out=$($AGENT --state "$T/devTP" --key tpm --tcti "$DEV_TCTI" install /mp:"$CMG" /cahash:"$pin" \
	/regtoken:- < "$T/bulk.tok") || fail "tpm install with /cahash: $out"
SITETOKEN_TCTI=$DEV_TCTI $AGENT --state "$T/devTP" policy >/dev/null || fail "tpm policy with the kept pin"
ok "a TPM-held device key with a pinned gateway (no --ca): install and policy"

agent devF 0 register --mp "$MP" >/dev/null || fail "file device"

# ---- the device half of attested registration ----------------------------
# Evidence that the device key is in this device's TPM, checked offline by
# `sitetoken attest verify` against the TPM maker's root, the verifier's
# nonce and the device (TLS client) certificate, then the credential
# activation round trip.
EK_CA=$DEV_TPM/ca/swtpm-localca-rootca-cert.pem
n=$(nonce)
agent devT 31 --tcti "$DEV_TCTI" attest --nonce "$n" --out "$T/ev.json" || fail "agent attest"
"$STK" attest verify "$T/ev.json" --ek-ca "$EK_CA" --nonce "$n" --cert "$T/devT/device.crt" >"$T/verify" ||
	fail "device evidence does not verify: $(cat "$T/verify")"
grep -q "^Result: *pass" "$T/verify" && grep -q "^Key: *p256, fixedTPM" "$T/verify" || fail "verify: $(cat "$T/verify")"
"$STK" attest challenge "$T/ev.json" --out "$T/cred" >/dev/null || fail "attest challenge"
secret=$(agent devT 31 --tcti "$DEV_TCTI" activate-credential --in "$T/cred") || fail "activate-credential"
"$STK" attest verify "$T/ev.json" --ek-ca "$EK_CA" --nonce "$n" --cert "$T/devT/device.crt" \
	--secret "$secret" --challenge "$T/cred" >/dev/null || fail "verify with the activated secret"
grep -q "Attested the TPM-held device key over nonce $n" "$T/devT/ccmsetup.log" || fail "attest not logged"
ok "device TPM evidence verifies against the maker's root, nonce and device.crt; credential activated by the device TPM"

# Threat model 1 (network attacker sending forged or replayed evidence) and
# 2 (a thief who copied the device's files): each piece of evidence below
# must be refused with its reason.
dev_cert other-ca -days 10 -subj /CN=not-the-maker
expect_refusal 1 "EK certificate" "EK not chaining to a trusted root" -- \
	"$STK" attest verify "$T/ev.json" --ek-ca "$T/other-ca.crt" --nonce "$n"
expect_refusal 1 "nonce" "replayed nonce" -- \
	"$STK" attest verify "$T/ev.json" --ek-ca "$EK_CA" --nonce "$(nonce)"
expect_refusal 1 "pubArea is not the expected key" "attested key is not the TLS certificate's key" -- \
	"$STK" attest verify "$T/ev.json" --ek-ca "$EK_CA" --nonce "$n" --cert "$T/devF/device.crt"
expect_refusal 2 "cannot be presented as a TPM key" "a file key presented as a TPM key" -- \
	agent devF 0 attest --nonce "$n"
# Evidence from another TPM: a second device TPM cannot answer this
# device's challenge (the credential is bound to this TPM's EK and AK).
swtpm_up "$OTHER_TPM" OTHER_TCTI
agent devO 0 --key tpm --tcti "$OTHER_TCTI" register --mp "$MP" >/dev/null || fail "second TPM device"
expect_refusal 3 ActivateCredential "another TPM answering the challenge" -- \
	agent devO 0 --tcti "$OTHER_TCTI" activate-credential --in "$T/cred"
[ -z "$OUT" ] || fail "another TPM answered the challenge: $OUT"
# Threat model 2: the whole state directory copied to another machine
# (another TPM) is no device identity there: the blob loads only under the
# TPM that made it, so no TLS handshake and no token use happen.
cp -a "$T/devT" "$T/devStolen"
expect_refusal 3 TPM "a copied state directory cannot use the device key with another TPM" -- \
	agent devStolen 31 --tcti "$OTHER_TCTI" policy
[ -z "$OUT" ] || fail "copied state used the key on another TPM: $OUT"
bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$OTHER_TPM" >/dev/null 2>&1 || true
expect_refusal 1 "secret" "another TPM's secret" -- \
	"$STK" attest verify "$T/ev.json" --ek-ca "$EK_CA" --nonce "$n" --secret "$(nonce)$(nonce)" --challenge "$T/cred"
ok "refused: EK of an untrusted maker, replayed nonce, key not the TLS certificate's, file key as TPM key, another TPM answering the challenge"

# A TPM reset (swtpm restart: volatile state gone) is recovered from the blob.
bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$DEV_TPM" >/dev/null
swtpm_up "$DEV_TPM" DEV_TCTI
agent devT 31 --tcti "$DEV_TCTI" policy | has "\"device_guid\":\"$guid\"" || fail "policy after TPM restart"
ok "the TPM key blob loads again after a TPM restart"

# Unreachable TPM: a clear error, exit 3, nothing lost.
expect_refusal 3 "TPM unreachable" "unreachable TPM" -- \
	agent devT 31 --tcti "swtpm:host=127.0.0.1,port=1" policy
[ -s "$T/devT/device.keyref" ] && [ -s "$T/devT/device.tpmkey" ] || fail "state lost"
ok "unreachable TPM: exit 3 'TPM unreachable', state kept"

# --key contradicting the state directory.
expect_refusal 2 "not --key file" "--key file on a TPM state" -- agent devT 31 --key file policy
expect_refusal 2 "already holds a file key" "--key tpm on a file state" -- \
	agent devF 0 --key tpm --tcti "$DEV_TCTI" register --mp "$MP"

# A certificate that is not the held key's is refused before any TLS.
cp "$T/devT/device.crt" "$T/devT.crt.bak"
cp "$T/devF/device.crt" "$T/devT/device.crt"
expect_refusal 3 "is not the certificate of the device key" "a device.crt that is not the held key's certificate" -- \
	agent devT 31 --tcti "$DEV_TCTI" policy
cp "$T/devT.crt.bak" "$T/devT/device.crt"

expect_refusal 2 "file, tpm or pkcs11:URI" "--key bogus" -- agent devX 0 --key bogus status
expect_refusal 2 "never goes in argv" "a PIN in --key" -- agent devX 0 --key "pkcs11:token=x;pin-value=1234" status

# ---- PKCS#11 (SoftHSM) ----------------------------------------------------
eval "$(bash "$STK_SRC/swtpm-setup/softhsm-token.sh" "$T/hsm" devtok)"
out=$(agent devP 0 --key "pkcs11:token=devtok" install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" \
	SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok") || fail "pkcs11 install: $out"
pguid=$(agent devP 0 status --json | json_get device_guid)
[ -n "$pguid" ] && [ "$pguid" != "$guid" ] || fail "pkcs11 guid"
grep -q "^pkcs11:.*object=sitetoken-device" "$T/devP/device.keyref" || fail "pkcs11 keyref: $(cat "$T/devP/device.keyref")"
if grep -qi "pin" "$T/devP/device.keyref"; then fail "PIN reference in keyref"; fi
grep -q "inside the PKCS#11 token, non-exportable" "$T/devP/ccmsetup.log" || fail "pkcs11 ccmsetup line"
assert_no_private_key "$T/devP"
# The token says so too: sensitive, never extractable.
attrs=$(pkcs11-tool --module "$SITETOKEN_PKCS11_MODULE" --token-label devtok --login \
	--pin "$(cat "$SITETOKEN_PKCS11_PIN_FILE")" --list-objects --type privkey 2>/dev/null || true)
if [ -n "$attrs" ]; then
	echo "$attrs" | has "sitetoken-device" || fail "no device key in the token: $attrs"
	echo "$attrs" | has -i "never extractable" || echo "$attrs" | has -i "sensitive" || fail "token key attributes: $attrs"
fi
agent devP 0 policy | has "\"device_guid\":\"$pguid\"" || fail "pkcs11 policy"
agent devP 31 renew >/dev/null || fail "pkcs11 renew"
ok "--key pkcs11: key generated non-extractable in SoftHSM, CMG install, policy and renewal"

expect_refusal 2 "in a PKCS#11 token" "a PKCS#11 key presented as a TPM key" -- \
	agent devP 0 attest --nonce "$(nonce)"

# Without a PIN source the token cannot be used: clear message, nothing lost.
expect_refusal 3 "needs a user PIN" "pkcs11 without a PIN source" -- \
	env -u SITETOKEN_PKCS11_PIN_FILE "$AGENT" --state "$T/devP" --ca "$T/tls.crt" policy

assert_no_tokens_in_logs
stop_server
