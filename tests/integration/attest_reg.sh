#!/usr/bin/env bash
# Attested registration through the CMG (issue 18, server half), with the
# real server, the real agent and two swtpms (the device's TPM and a second
# device TPM). The site trusts the device TPM maker's root
# (`attest roots add`) and requires attestation: a TPM-key device installs
# with a bulk token and is recorded as TPM-attested with its EK hash; a
# file-key device is refused 403 attestation_required. Bad input, each
# refused with its reason and audited: an EK not chaining to a trusted root,
# a replayed nonce, a software (file) key presented with TPM evidence, a TLS
# certificate whose key is not the attested key, evidence whose EK is not the
# TPM that answers the activation.
TEST_NAME=attest_reg
. "$(dirname "$0")/harness.sh" server
device_tpms

# mark: remember the audit log's end; audited REASON: a refused
# device.register* record with this reason was appended since.
mark() { AUDIT_MARK=$(sqlite3 "$SITE/site.db" "SELECT coalesce(max(seq), 0) FROM audit"); }
audited() {
	local n
	n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE seq > $AUDIT_MARK
		AND outcome = 'refused' AND event LIKE 'device.register%'
		AND substr(detail, 1, ${#1} + 1) = '$1:'")
	[ "$n" -ge 1 ] || fail "refusal '$1' not audited"
}
# cmg_post STATE PATH JSON_FILE: a CMG POST with a file-key device's certificate.
cmg_post() { cmg_call POST "$2" "$1" "" --data-binary @"$3"; }
nonce_for() { # nonce_for STATE -> hex nonce issued to that certificate
	echo '{}' > "$T/empty.json"
	cmg_post "$1" attest/nonce "$T/empty.json" > "$T/nonce.out"
	http_body < "$T/nonce.out" | json_get nonce || fail "attest/nonce: $(cat "$T/nonce.out")"
}
# evidence_body NONCE OUT: the TPM device's evidence over NONCE, wrapped in
# an attest/register body with the bulk token.
evidence_body() {
	agent devT 0 --tcti "$DEV_TCTI" attest --nonce "$1" --out "$T/ev.json" >/dev/null || fail "agent attest"
	python3 -c 'import json,sys; print(json.dumps({"bulk_token": open(sys.argv[1]).read().strip(), "evidence": json.load(open(sys.argv[2]))}))' \
		"$T/bulk.tok" "$T/ev.json" > "$2"
}
attest_refused() { # attest_refused WHAT "STATUS REASON" PATH JSON_FILE: devF's POST, audited
	mark
	cmg_expect "$2" "$1" POST "$3" devF "" --data-binary @"$4"
	audited "${2#* }"
}

serve_site
swtpm_up "$DEV_TPM" DEV_TCTI EK_CA

# A site that trusts no maker has no attested registration.
agent devF 0 register --mp "$MP" >/dev/null || fail "file device key"
echo '{}' > "$T/empty.json"
cmg_expect "404 attestation_unavailable" "nonce without roots" POST attest/nonce devF "" \
	--data-binary @"$T/empty.json"
sqlite3 "$SITE/site.db" "DELETE FROM devices"
ok "no trusted root: attest/nonce is 404 attestation_unavailable"

# ---- roots: add, list, remove, audited; bad files change nothing ----------
"$STK" attest roots add "$EK_CA" | has "^1 attestation root(s) added" || fail "roots add"
"$STK" attest roots add "$EK_CA" | has "^0 attestation root(s) added" || fail "roots add twice"
ca_sha=$(openssl x509 -in "$EK_CA" -outform DER | sha256sum | cut -d' ' -f1)
"$STK" attest roots list --json | python3 -c 'import json,sys; l=json.load(sys.stdin); assert [r["sha256"] for r in l]==[sys.argv[1]], l' "$ca_sha" ||
	fail "roots list: $("$STK" attest roots list)"
dev_cert leaf -days 10 -subj /CN=not-a-ca -addext basicConstraints=critical,CA:FALSE
rc=0; "$STK" attest roots add "$T/leaf.crt" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q "not a CA certificate" "$T/err" || fail "leaf as root: $rc $(cat "$T/err")"
rc=0; "$STK" attest roots remove "$T/leaf.crt" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "remove of a leaf: exit $rc"
[ "$("$STK" attest roots list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] || fail "a bad file changed the roots"
"$STK" audit show | has "attest.root.add .*$ca_sha" || fail "roots add not audited"
ok "attest roots add|list|remove: CA certificates only, idempotent add, audited"

# ---- policy: the site requires attestation ---------------------------------
"$STK" settings set require-attestation on >/dev/null
"$STK" settings show --json | has '"require-attestation": "on"' || fail "settings show"
bguid=$(new_bulk "$T/bulk.tok")

# A file-key device is refused: 403 attestation_required, audited, no device.
mark
expect_refusal 1 attestation_required "file-key device under require-attestation" -- \
	agent devF 0 install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC \
	/regtoken:- < "$T/bulk.tok"
[ "$(count_devices)" = 0 ] || fail "file-key device was registered"
audited attestation_required
grep -q "attestation_required" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log lacks the refusal"
ok "require-attestation on: a file-key device is refused 403 attestation_required (audited)"

# A TPM-key device installs through the CMG with the bulk token.
out=$(agent devT 0 --key tpm --tcti "$DEV_TCTI" install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" \
	SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok") || fail "tpm install: $out"
echo "$out" | has "installed: device" || fail "tpm install: $out"
guid=$(agent devT 0 status --json | json_get device_guid)
grep -q "credential activated by the TPM" "$T/devT/ClientIDManagerStartup.log" || fail "agent did not run the attested registration"
# The EK certificate's hash, from the device's own evidence.
agent devT 0 --tcti "$DEV_TCTI" attest --nonce 00112233445566778899aabbccddeeff --out "$T/ev0.json" >/dev/null
ek_sha=$(python3 -c 'import json,sys,base64,hashlib; e=json.load(open(sys.argv[1]))["ekCert"]; print(hashlib.sha256(base64.urlsafe_b64decode(e+"="*(-len(e)%4))).hexdigest())' "$T/ev0.json")
attestation_of() { # attestation_of GUID: its (attestation, ek_sha256) in devices list --json
	"$STK" devices list --json |
		json "[(x['attestation'], x.get('ek_sha256')) for x in d if x['guid'] == '$1']"
}
expect_eq "$(attestation_of "$guid")" "[('tpm', '$ek_sha')]" "devices list --json: tpm, EK hash"
"$STK" devices list | has "^$guid .* tpm *$" || fail "devices list: $("$STK" devices list)"
grep -q "TPM-attested EK sha256=$ek_sha" "$SITE/logs/MP_RegistrationManager.log" || fail "registration log"
# The token works at the gateway with the TPM-held key and says "att":"tpm";
# renewal keeps the claim.
claim_att() { # claim_att STATE -> the att claim of its client token ("-" when absent)
	python3 -c 'import json,sys,base64; p=open(sys.argv[1]).read().split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4))).get("att","-"))' "$T/$1/client.token"
}
SITETOKEN_TCTI=$DEV_TCTI agent devT 0 policy | has "\"device_guid\":\"$guid\"" || fail "policy"
[ "$(claim_att devT)" = tpm ] || fail "client token att: $(claim_att devT)"
SITETOKEN_TCTI=$DEV_TCTI agent devT 31 renew >/dev/null || fail "renew"
[ "$(claim_att devT)" = tpm ] || fail "renewed token att: $(claim_att devT)"
ok "a TPM-key device installs through the CMG while the site requires attestation; devices list shows tpm and its EK hash; its token (and the renewed one) carries att=tpm"

# Per bulk token: with the site default off, a token made with
# --require-attestation still refuses the file-key device; a plain one lets it in.
"$STK" settings set require-attestation off >/dev/null
new_bulk "$T/bulk2.tok" 60 --require-attestation >/dev/null
expect_refusal 1 attestation_required "per-token policy" -- \
	agent devF 0 install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC \
	/regtoken:- < "$T/bulk2.tok"
agent devF 0 install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC /regtoken:- \
	< "$T/bulk.tok" >/dev/null 2>"$T/err" || fail "file device with the site default off: $(cat "$T/err")"
fguid=$(agent devF 0 status --json | json_get device_guid)
expect_eq "$(attestation_of "$fguid")" "[('none', None)]" "file device attestation"
[ "$(claim_att devF)" = - ] || fail "file device token has att: $(claim_att devF)"
"$STK" audit show | has "bulk.policy .*require-attestation=on" || fail "bulk policy not audited"
ok "bulk new --require-attestation refuses an unattested device whatever the site default; others are recorded attestation none"
"$STK" settings set require-attestation on >/dev/null

# ---- the gateway enforces the att claim (threat model 2) -------------------
# devF registered unattested while the site did not require attestation: a
# thief holding a copy of its file key and client token is this agent. With
# attestation required again, the gateway refuses its requests and its
# renewal 403 attestation_required (ClientAuth.log, audited); the TPM
# device's token says "att":"tpm" and passes, twice in a row (the second
# answer comes from the gateway's verified-token cache).
mark
expect_refusal 1 attestation_required "unattested token at the gateway" -- agent devF 0 policy
expect_refusal 1 attestation_required "unattested renewal" -- agent devF 31 renew
[ "$(claim_att devF)" = - ] || fail "devF got a new token"
grep -q "attestation_required" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log lacks the gateway refusal"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE seq > $AUDIT_MARK
	AND event LIKE 'gateway%' AND outcome = 'refused' AND subject = '$fguid'
	AND substr(detail, 1, 21) = 'attestation_required:'")" -ge 1 ] ||
	fail "gateway refusal not audited"
for i in 1 2; do
	out=$(SITETOKEN_TCTI=$DEV_TCTI agent devT 0 policy) || fail "attested device at the gateway (request $i): $out"
	grep -q "\"device_guid\":\"$guid\"" <<<"$out" || fail "attested device at the gateway (request $i): $out"
done
ok "require-attestation: the gateway refuses a token without att (request and renewal, 403 attestation_required, audited) and accepts att=tpm, also from its token cache"

# ---- bad input (threat model 1: a network attacker with a software key) ----
# A software (file) key presented with a TPM's evidence: the attested key is
# not the key of the TLS client certificate.
n=$(nonce_for devF)
[ ${#n} = 64 ] || fail "nonce: '$n'"
evidence_body "$n" "$T/body1.json"
attest_refused "file key with TPM evidence" "403 attestation_key_mismatch" attest/register "$T/body1.json"
# The same evidence again: its nonce was used once.
attest_refused "replayed nonce" "403 attestation_nonce" attest/register "$T/body1.json"
# A nonce this gateway never issued.
evidence_body "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" "$T/body2.json"
attest_refused "unknown nonce" "403 attestation_nonce" attest/register "$T/body2.json"
# A nonce issued to another certificate (devT's nonce used by devF) is
# covered by the binding; here: EK not chaining to a trusted root.
dev_cert other-ca -days 10 -subj /CN=another-maker -addext basicConstraints=critical,CA:TRUE
"$STK" attest roots add "$T/other-ca.crt" >/dev/null
"$STK" attest roots remove "$EK_CA" >/dev/null
n=$(nonce_for devF); evidence_body "$n" "$T/body3.json"
attest_refused "untrusted EK" "403 attestation_invalid" attest/register "$T/body3.json"
"$STK" attest roots add "$EK_CA" >/dev/null
# A pending registration that does not exist / a wrong secret for it.
printf '{"pending_id":"%s","secret":"%s","bulk_token":"%s"}' "00112233445566778899aabbccddeeff" \
	"$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" "$(cat "$T/bulk.tok")" > "$T/act.json"
attest_refused "unknown pending registration" "403 attestation_nonce" attest/activate "$T/act.json"
ok "refused and audited: software key with TPM evidence (attestation_key_mismatch), replayed and unknown nonces, EK of an untrusted root (attestation_invalid), unknown pending registration"

# Evidence from another TPM than the one answering the activation. The
# attacker (agent_attest_evil: the real agent, fault injection) has its key
# and AK in a second TPM whose maker the site does not trust, and presents
# the trusted device TPM's EK certificate (public). The evidence verifies,
# but the credential is sealed to that EK: the attacker's TPM cannot open it.
swtpm_up "$OTHER_TPM" OTHER_TCTI
EVIL=$STK_BIN/agent_attest_evil
n_before=$(count_devices)
# Its own EK first: not chaining to a trusted root. The attested exchange is
# refused; the agent then tries a plain registration, refused by the policy.
mark
expect_refusal 1 attestation_required "untrusted TPM" -- $EVIL --state "$T/devO" --ca "$T/tls.crt" \
	--key tpm --tcti "$OTHER_TCTI" install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC \
	/regtoken:- < "$T/bulk.tok"
grep -q "Attested registration refused (attestation_invalid)" "$T/devO/ClientIDManagerStartup.log" || fail "devO log"
audited attestation_invalid
audited attestation_required
# Then the trusted TPM's EK certificate.
mark
STK_EVIL_EK_FROM=$T/ev0.json expect_refusal 1 attestation_required "another TPM answering" -- $EVIL \
	--state "$T/devO" --ca "$T/tls.crt" --tcti "$OTHER_TCTI" \
	install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok"
expect_in "evil: presenting another TPM's EK certificate" "$ERR" "evil agent swapped the EK"
expect_in "evil: this TPM cannot activate the credential" "$ERR" "the other TPM did not open the credential"
grep -q "Attested registration refused (attestation_activation_failed)" "$T/devO/ClientIDManagerStartup.log" || fail "devO log: activation"
audited attestation_activation_failed
[ "$(count_devices)" = "$n_before" ] || fail "the attacker was registered"
ok "refused and audited: a TPM of an untrusted maker (attestation_invalid), and evidence naming another TPM's EK that this TPM cannot activate (attestation_activation_failed)"

# Junk is refused as bad input, nothing registered.
echo '{"bulk_token":"x","evidence":{"fmt":"none"}}' > "$T/junk.json"
n_before=$(count_devices)
expect_eq "$(cmg_post devF attest/register "$T/junk.json" | http_status)" 401 "bad bulk token"
echo '{"nope":1}' > "$T/junk2.json"
expect_eq "$(cmg_post devF attest/register "$T/junk2.json" | http_status)" 400 "unknown members"
[ "$(count_devices)" = "$n_before" ] || fail "junk registered something"
ok "malformed attested-registration bodies: 400/401, nothing registered"

assert_no_tokens_in_logs
stop_server
