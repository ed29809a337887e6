#!/usr/bin/env bash
# Make a throw-away SoftHSM token for tests, CI and the demo.
#   eval "$(swtpm-setup/softhsm-token.sh DIR [LABEL])"
# DIR gets its own softhsm2.conf and token directory, so parallel runs with
# different DIRs never see each other's tokens. Random SO and user PINs are
# written to DIR/so.pin and DIR/user.pin (mode 0600); the user PIN reaches
# sitetoken through SITETOKEN_PKCS11_PIN_FILE, never through argv.
# Prints `export` lines for SOFTHSM2_CONF, SITETOKEN_PKCS11_MODULE and
# SITETOKEN_PKCS11_PIN_FILE (and SITETOKEN_PKCS11_TOKEN, the label).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 DIR [LABEL]" >&2
  exit 2
fi
DIR=$1
LABEL=${2:-sitetoken}

find_module() {
  local m arch
  [ -n "${SOFTHSM2_MODULE:-}" ] && [ -f "$SOFTHSM2_MODULE" ] && { echo "$SOFTHSM2_MODULE"; return; }
  arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null || true)
  for m in /usr/lib/softhsm/libsofthsm2.so "/usr/lib/$arch/softhsm/libsofthsm2.so" \
      /usr/lib64/pkcs11/libsofthsm2.so /usr/lib/pkcs11/libsofthsm2.so \
      /usr/local/lib/softhsm/libsofthsm2.so; do
    [ -f "$m" ] && { echo "$m"; return; }
  done
  return 1
}

command -v softhsm2-util >/dev/null || { echo "$0: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 1; }
MODULE=$(find_module) || { echo "$0: libsofthsm2.so not found (apt-get install softhsm2)" >&2; exit 1; }

umask 077
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ -e "$DIR/softhsm2.conf" ]; then
  echo "$0: $DIR already holds a token; use a fresh directory" >&2
  exit 1
fi
mkdir "$DIR/tokens"
cat >"$DIR/softhsm2.conf" <<CONF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF

# 16 random hex digits each; SoftHSM accepts 4..255 bytes.
SO_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
USER_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$SO_PIN" >"$DIR/so.pin"
printf '%s\n' "$USER_PIN" >"$DIR/user.pin"
chmod 600 "$DIR/so.pin" "$DIR/user.pin"

# softhsm2-util only takes PINs as options or from a terminal; this token is
# a throw-away one in a private directory, so the brief argv exposure of its
# random PINs during initialisation is accepted here (and only here).
SOFTHSM2_CONF="$DIR/softhsm2.conf" softhsm2-util --init-token --free \
  --label "$LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN" >"$DIR/init.log" 2>&1 || {
  echo "$0: softhsm2-util --init-token failed:" >&2; cat "$DIR/init.log" >&2; exit 1; }

printf 'export SOFTHSM2_CONF=%q\n' "$DIR/softhsm2.conf"
printf 'export SITETOKEN_PKCS11_MODULE=%q\n' "$MODULE"
printf 'export SITETOKEN_PKCS11_PIN_FILE=%q\n' "$DIR/user.pin"
printf 'export SITETOKEN_PKCS11_TOKEN=%q\n' "$LABEL"
