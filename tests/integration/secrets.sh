#!/usr/bin/env bash
# Secret hygiene of the demo flow with the site key in SoftHSM: bulk token
# made, device installed through the CMG (/regtoken:- from stdin), a second
# device registered with the MP, an authenticated request, a renewal, and
# `sitetoken-agent run` left running. Then every log, the site database
# (site.db and WAL, or the PostgreSQL schema and cluster files), the agent state directories, the outputs, and /proc/<pid>/
# environ + cmdline of the running server and agent are searched for the HSM
# PINs, the bulk token and its signature, the client tokens and their
# signatures, and private key material (PEM "PRIVATE KEY", the device keys'
# DER and private scalars): none may appear. Expected exceptions: the
# agent's own device.key and client.token, which must be mode 0600 in a
# 0700 directory. Also: loose key files refused (file backend, agent,
# server TLS key).
TEST_NAME=secrets
. "$(dirname "$0")/harness.sh"
server_env
AGENT_PID=

# --- site key in SoftHSM (PIN only in a 0600 file) ---
eval "$(bash "$STK_SRC/swtpm-setup/softhsm-token.sh" "$T/hsm" sitetoken)" || fail "softhsm token"
unset SITETOKEN_PKCS11_PIN
$STK site init --site "$SITE" --backend pkcs11 --key-type rsa2048 \
	--pkcs11-uri "pkcs11:token=sitetoken;object=site" > "$T/init.out" 2>&1 || fail "site init: $(cat "$T/init.out")"
dev_cert tls -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost
start_server
on_exit '[ -z "$AGENT_PID" ] || { kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID"; }'

# --- the demo flow ---
new_bulk "$T/secret.bulk" >/dev/null || fail "bulk new"
agent dev 0 install /mp:"$CMG" CCMHOSTNAME="127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER" \
	SMSSiteCode=ABC /regtoken:- < "$T/secret.bulk" > "$T/install.out" 2>&1 || fail "install: $(cat "$T/install.out")"
cp "$T/dev/client.token" "$T/secret.client1"
agent dev 0 policy > "$T/policy.out" 2>&1 || fail "policy: $(cat "$T/policy.out")"
agent dev 0 renew --force > "$T/renew.out" 2>&1 || fail "renew: $(cat "$T/renew.out")"
cp "$T/dev/client.token" "$T/secret.client2"
cmp -s "$T/secret.client1" "$T/secret.client2" && fail "renewal did not change the token"
agent mpdev 0 register --mp "$MP" > "$T/mpdev.out" 2>&1 || fail "MP register: $(cat "$T/mpdev.out")"
cp "$T/mpdev/client.token" "$T/secret.client3"
# The agent keeps running (renews when due) while we look at it.
# (Not through the agent() function: $! must be the agent itself, for
# /proc and for stopping it.)
$AGENT --state "$T/dev" --ca "$T/tls.crt" run --interval 3600 > "$T/run.out" 2>&1 &
AGENT_PID=$!
sleep 1
kill -0 "$AGENT_PID" || fail "agent run exited: $(cat "$T/run.out")"
ok "demo flow with the site key in SoftHSM: install, policy, renew, MP register, agent running"

# Process dumps while both run.
[ "$(readlink "/proc/$AGENT_PID/exe")" = "$(readlink -f "$AGENT")" ] || fail "agent pid is not the agent"
[ "$(readlink "/proc/$SERVER_PID/exe")" = "$(readlink -f "$STK")" ] || fail "server pid is not the server"
for p in server:"$SERVER_PID" agent:"$AGENT_PID"; do
	tr '\0' '\n' < "/proc/${p#*:}/environ" > "$T/proc.${p%%:*}.environ"
	tr '\0' ' ' < "/proc/${p#*:}/cmdline" > "$T/proc.${p%%:*}.cmdline"
done

# --- what must not appear ---
python3 - "$T" "$SITE" <<'PY' > "$T/needles"
import base64, binascii, os, subprocess, sys
T, SITE = sys.argv[1:3]
def emit(name, b):
    print(name, binascii.hexlify(b).decode())
for pin in ("user.pin", "so.pin"):
    emit("pin:" + pin, open(os.path.join(T, "hsm", pin)).read().strip().encode())
for f in ("secret.bulk", "secret.client1", "secret.client2", "secret.client3"):
    t = open(os.path.join(T, f)).read().strip()
    emit("token:" + f, t.encode())
    emit("signature:" + f, t.rsplit(".", 1)[1].encode())
emit("pem", b"PRIVATE KEY")
for k in ("dev/device.key", "mpdev/device.key", "tls.key"):
    der = subprocess.run(["openssl", "pkey", "-in", os.path.join(T, k), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    emit("der:" + k, der)
    emit("der-b64:" + k, base64.b64encode(der)[8:48])
    txt = subprocess.run(["openssl", "pkey", "-in", os.path.join(T, k), "-noout", "-text"],
                         capture_output=True, check=True, text=True).stdout
    # the private scalar (EC "priv:") as raw bytes and as hex text
    lines, on = [], False
    for ln in txt.splitlines():
        if ln.startswith("priv:"): on = True; continue
        if on and ln.startswith("    "): lines.append(ln.strip())
        elif on: break
    priv = bytes.fromhex("".join(lines).replace(":", "")).lstrip(b"\0")
    emit("scalar:" + k, priv)
    emit("scalar-hex:" + k, priv.hex().encode())
PY
[ "$(wc -l < "$T/needles")" -ge 20 ] || fail "needles: $(cat "$T/needles")"

# --- where to look: everything the flow wrote, except the expected secrets ---
# The site database: site.db and its WAL, or on a PostgreSQL site a dump of
# the site's schema and every file of the cluster (its tables and its WAL).
PGDATA_DIR=
if [ -e "$SITE/site.db" ]; then
	DBFILES=("$SITE/site.db" "$SITE/site.db-wal")
else
	PGDATA_DIR=$(dirname "$PGSERVICEFILE")/data
	schema=$(sed -n 's/^schema=//p' "$SITE/site.conf")
	pg_dump -d "$SITETOKEN_DB" -n "$schema" > "$T/site.pgdump" || fail "pg_dump of $schema"
	grep -q "CREATE TABLE $schema.devices" "$T/site.pgdump" || fail "the dump holds no devices table"
	DBFILES=("$T/site.pgdump")
fi
{
	find "$SITE" "$T/dev" "$T/mpdev" -type f
	ls "$T"/*.out "$T"/server.stderr "$T"/proc.* "${DBFILES[@]}"
	[ -z "$PGDATA_DIR" ] || find "$PGDATA_DIR" -type f
} | grep -v -e "^$T/dev/device.key$" -e "^$T/dev/client.token$" \
	-e "^$T/mpdev/device.key$" -e "^$T/mpdev/client.token$" | sort -u > "$T/haystack"
for f in "${DBFILES[@]}" "$SITE/logs/CCM_STS.log" "$SITE/logs/MP_RegistrationManager.log" \
	"$SITE/logs/ClientAuth.log" "$T/dev/ccmsetup.log" "$T/dev/ClientIDManagerStartup.log" \
	"$T/dev/state.json" "$T/proc.server.environ" "$T/proc.agent.cmdline"; do
	grep -qxF "$f" "$T/haystack" || bad "expected to search $f (not written?)"
done
python3 - "$T/needles" "$T/haystack" "$PGDATA_DIR" <<'PY'
import binascii, sys
needles = [(l.split()[0], binascii.unhexlify(l.split()[1])) for l in open(sys.argv[1])]
found = 0
files = [l.strip() for l in open(sys.argv[2]) if l.strip()]
pgdata = sys.argv[3] + "/" if sys.argv[3] else None
for f in files:
    try:
        data = open(f, "rb").read()
    except FileNotFoundError:
        # The running cluster removes and recycles its own files (WAL
        # segments, temporary files) between the listing and the read.
        if pgdata and f.startswith(pgdata):
            continue
        raise
    for name, n in needles:
        if n and n in data:
            print(f"FAIL - {name} found in {f}")
            found += 1
if not found:
    print(f"ok - none of {len(needles)} secrets in {len(files)} files (logs, site database, "
          "agent state, outputs, /proc environ and cmdline of server and agent)")
sys.exit(1 if found else 0)
PY
[ $? = 0 ] || bad "a secret found where it must not be (listed above)"
# Control: the same search finds the secrets where they are expected.
printf '%s\n' "$T/dev/device.key" "$T/dev/client.token" "$T/secret.bulk" > "$T/expected"
python3 - "$T/needles" "$T/expected" <<'PY' && ok "control: the search finds the device key, the client token and the bulk token where they are kept" || bad "control search"
import binascii, sys
needles = [(l.split()[0], binascii.unhexlify(l.split()[1])) for l in open(sys.argv[1])]
data = b"".join(open(l.strip(), "rb").read() for l in open(sys.argv[2]))
want = ("pem", "token:secret.client2", "signature:secret.client2", "token:secret.bulk")
sys.exit(0 if all(n in data for name, n in needles if name in want) else 1)
PY
# The server's environment names the PIN file, never the PIN.
grep -q '^SITETOKEN_PKCS11_PIN_FILE=' "$T/proc.server.environ" && ok "server environment has the PIN file's name only" ||
	bad "server environment: no SITETOKEN_PKCS11_PIN_FILE"

# --- the expected secrets: owner-only ---
for f in dev/device.key dev/client.token mpdev/device.key mpdev/client.token \
	dev/ mpdev/ hsm/user.pin; do
	want=600
	[[ $f == */ ]] && want=700
	expect_eq "$(stat -c %a "$T/$f")" $want "$f mode 0$want"
done
kill "$AGENT_PID"; wait "$AGENT_PID"; AGENT_PID=

# --- loose key files refused ---
# Agent: group-readable device key (0640; 0644 is in server_register_mp.sh).
chmod 640 "$T/dev/device.key"
expect_refusal 3 "mode 0640" "agent refuses a group-readable device key" -- agent dev 0 renew --force
chmod 600 "$T/dev/device.key"
chmod 604 "$T/dev/client.token"
expect_refusal 3 "mode 0604" "agent refuses an other-readable client token" -- agent dev 0 policy
chmod 600 "$T/dev/client.token"
# File backend: group-readable site key refused by the CLI and by serve.
F=$T/fsite
$STK site init --site "$F" --backend file > /dev/null || fail "file site init"
chmod 640 "$F/site.key"
expect_exit 3 "file backend refuses a 0640 site key (bulk new)" -- $STK --site "$F" bulk new
# serve_f TLSKEY: serve of $F, which must exit 3 at start-up (one that
# started anyway is stopped by the timeout: exit 124).
serve_f() {
	timeout 20 "$STK" serve --site "$F" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
		--tls-cert "$T/tls.crt" --tls-key "$1"
}
expect_refusal 3 "mode 0640" "serve refuses a 0640 site key" -- serve_f "$T/tls.key"
chmod 600 "$F/site.key"
# The server's TLS key.
cp "$T/tls.key" "$T/loose.key"; chmod 644 "$T/loose.key"
expect_refusal 3 "mode 0644" "serve refuses a 0644 TLS key" -- serve_f "$T/loose.key"

stop_server
finish
