#!/usr/bin/env bash
# Start a software TPM 2.0 (swtpm) on free loopback ports for tests, CI and
# the demo.
#
#   eval "$(swtpm-setup/swtpm-start.sh STATE_DIR)"
#
# Prints, for eval:
#   export SITETOKEN_TCTI='swtpm:host=127.0.0.1,port=N'
#   export SITETOKEN_EK_CA='STATE_DIR/ca/swtpm-localca-rootca-cert.pem'
#   export SWTPM_PID=N
# and writes STATE_DIR/swtpm.pid and STATE_DIR/tcti. Stop it with
# swtpm-setup/swtpm-stop.sh STATE_DIR. Starting again with the same
# STATE_DIR keeps the TPM's keys and seeds (only the volatile state is reset,
# as on a reboot).
#
# A new STATE_DIR is first manufactured like a real TPM: swtpm_setup
# --create-ek-cert makes the RSA-2048 and ECC EKs (persistent at 0x81010001
# and 0x81010016) and their EK certificates in NV (0x01c00002, 0x01c00016),
# issued by a local CA whose root plays the TPM manufacturer. The CA lives in
# STATE_DIR/ca with its own swtpm-localca.conf (statedir, signingkey,
# issuercert, certserial), so nothing is written to /etc, /var/lib or /tmp
# (TMPDIR points into STATE_DIR while swtpm_setup runs). The CA's
# intermediate (issuer) certificate is then stored in NV index 0x01c00100,
# the first index the TCG EK profile reserves for the EK chain, so the
# evidence of `sitetoken key attest` carries the whole chain to the root.
#
# Ports: we pick a random pair above the ephemeral-looking range and let
# swtpm itself tell us whether it could bind them; on a collision (another
# test run picked the same port in the meantime) we try another pair. That
# avoids the "check then bind" race a port scan alone would have.
set -euo pipefail

die() { echo "swtpm-start: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
command -v swtpm >/dev/null || die "swtpm is not installed (apt-get install swtpm swtpm-tools)"
STATE=$1
mkdir -p "$STATE"
chmod 700 "$STATE"
STATE=$(cd "$STATE" && pwd)

# manufacture: first start of a new STATE_DIR only.
manufacture() {
  command -v swtpm_setup >/dev/null || die "swtpm_setup is not installed (apt-get install swtpm-tools)"
  mkdir -p "$STATE/ca" "$STATE/tmp"
  cat >"$STATE/ca/swtpm-localca.conf" <<CONF
statedir = $STATE/ca
signingkey = $STATE/ca/signkey.pem
issuercert = $STATE/ca/issuercert.pem
certserial = $STATE/ca/certserial
CONF
  cat >"$STATE/ca/swtpm-localca.options" <<CONF
--platform-manufacturer sitetoken
--platform-version 2.1
--platform-model swtpm
CONF
  cat >"$STATE/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca || echo /usr/bin/swtpm_localca)
create_certs_tool_config = $STATE/ca/swtpm-localca.conf
create_certs_tool_options = $STATE/ca/swtpm-localca.options
active_pcr_banks = sha256
CONF
  TMPDIR="$STATE/tmp" swtpm_setup --tpm2 --tpmstate "$STATE" --create-ek-cert \
      --config "$STATE/swtpm_setup.conf" --logfile "$STATE/setup.log" >/dev/null 2>&1 ||
    die "swtpm_setup --create-ek-cert failed: $(tail -5 "$STATE/setup.log" 2>/dev/null)"
  rmdir "$STATE/tmp" 2>/dev/null || true
  [ -s "$STATE/ca/swtpm-localca-rootca-cert.pem" ] || die "swtpm_localca made no root CA in $STATE/ca"
  NEED_CHAIN=1
}

# store_chain TCTI: put the CA's intermediate certificate (DER) into NV
# 0x01c00100, readable without a password (authread, empty auth), as TPM
# makers do for the EK chain.
store_chain() {
  local der="$STATE/ca/issuercert.der" size
  command -v tpm2_nvdefine >/dev/null || die "tpm2-tools is not installed (apt-get install tpm2-tools)"
  openssl x509 -in "$STATE/ca/issuercert.pem" -outform DER -out "$der" ||
    die "cannot convert $STATE/ca/issuercert.pem"
  size=$(stat -c %s "$der")
  TPM2TOOLS_TCTI="$1" tpm2_nvdefine 0x01c00100 -C o -s "$size" \
      -a "ownerwrite|ownerread|authread|authwrite|no_da" >/dev/null 2>>"$STATE/setup.log" &&
    TPM2TOOLS_TCTI="$1" tpm2_nvwrite 0x01c00100 -C o -i "$der" >/dev/null 2>>"$STATE/setup.log" ||
    die "cannot store the EK chain in NV 0x01c00100 (see $STATE/setup.log)"
  : >"$STATE/ca/chain-stored"
}

NEED_CHAIN=""
if [ ! -e "$STATE/tpm2-00.permall" ]; then
  manufacture
elif [ -d "$STATE/ca" ] && [ ! -e "$STATE/ca/chain-stored" ]; then
  NEED_CHAIN=1
fi

if [ -f "$STATE/swtpm.pid" ]; then
  old=$(cat "$STATE/swtpm.pid" 2>/dev/null || true)
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null &&
      grep -q swtpm "/proc/$old/cmdline" 2>/dev/null; then
    die "swtpm already running for $STATE (pid $old); stop it first"
  fi
  rm -f "$STATE/swtpm.pid"
fi

port_busy() { # port_busy PORT: something listens on it already
  ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  return 1
}

# Send TPM2_GetRandom(8) on the command port and expect TPM_RC_SUCCESS:
# "it answers" means the TPM itself executes commands, not just that a
# socket accepts connections.
tpm_answers() { # tpm_answers PORT
  local out
  out=$(timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
    printf "\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08" >&3
    head -c 10 <&3 | od -An -tx1' 2>/dev/null) || return 1
  [ "$(echo $out)" = "80 01 00 00 00 14 00 00 00 00" ]
}

started=""
for attempt in $(seq 1 20); do
  port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  port=$(( port - port % 2 ))
  ctrl=$(( port + 1 ))
  if port_busy "$port" || port_busy "$ctrl"; then
    continue
  fi
  rm -f "$STATE/swtpm.pid"
  : >"$STATE/swtpm.log"
  # --daemon returns only after the sockets are bound, so a bind failure
  # shows up as a non-zero exit here and we retry with other ports.
  if swtpm socket --tpm2 \
      --tpmstate dir="$STATE",mode=0600 \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port="$ctrl",bindaddr=127.0.0.1 \
      --flags not-need-init,startup-clear \
      --pid file="$STATE/swtpm.pid" \
      --log file="$STATE/swtpm.log",level=1 \
      --daemon 2>>"$STATE/swtpm.log"; then
    for _ in $(seq 1 50); do
      [ -s "$STATE/swtpm.pid" ] && break
      sleep 0.1
    done
    pid=$(cat "$STATE/swtpm.pid" 2>/dev/null || true)
    [ -n "$pid" ] || die "swtpm started but wrote no pid file (see $STATE/swtpm.log)"
    for _ in $(seq 1 50); do
      if tpm_answers "$port"; then
        started=1
        break
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$started" ] && break
    # Bound but not answering: stop it and try afresh.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$STATE/swtpm.pid"
  fi
  grep -qiE "address already in use|bind" "$STATE/swtpm.log" ||
    die "swtpm failed to start: $(tail -5 "$STATE/swtpm.log")"
done
[ -n "$started" ] || die "could not start swtpm on a free port after 20 tries"

tcti="swtpm:host=127.0.0.1,port=$port"
echo "$tcti" >"$STATE/tcti"
[ -z "$NEED_CHAIN" ] || store_chain "$tcti"
echo "export SITETOKEN_TCTI='$tcti'"
[ ! -s "$STATE/ca/swtpm-localca-rootca-cert.pem" ] ||
  echo "export SITETOKEN_EK_CA='$STATE/ca/swtpm-localca-rootca-cert.pem'"
echo "export SWTPM_PID=$pid"
