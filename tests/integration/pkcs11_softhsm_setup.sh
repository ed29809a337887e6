#!/usr/bin/env bash
# swtpm-setup/softhsm-token.sh: parallel runs get separate tokens, PIN
# files are 0600, the output is eval-able, a used directory is refused.
. "$STK_SRC/tests/integration/harness.sh"
SH="$STK_SRC/swtpm-setup/softhsm-token.sh"

for i in 1 2 3 4; do bash "$SH" "$T/h$i" "tok$i" >"$T/env$i" 2>"$T/err$i" & done
wait
for i in 1 2 3 4; do
  if ( eval "$(cat "$T/env$i")"
       [ "$SOFTHSM2_CONF" = "$T/h$i/softhsm2.conf" ] || exit 1
       [ -f "$SITETOKEN_PKCS11_MODULE" ] || exit 1
       [ "$(stat -c %a "$SITETOKEN_PKCS11_PIN_FILE")" = 600 ] || exit 1
       [ "$(stat -c %a "$T/h$i/so.pin")" = 600 ] || exit 1
       labels=$(softhsm2-util --show-slots | sed -n 's/^ *Label: *\([^ ]*\).*/\1/p' | grep -v '^$' | sort -u | tr '\n' ' ')
       [ "$labels" = "tok$i " ] || { echo "token $i sees: $labels" >&2; exit 1; }
     ) 2>>"$T/err$i"; then ok "parallel token $i: own conf, own token, 0600 PINs"
  else bad "parallel token $i: $(cat "$T/err$i")"; fi
done
# Two runs never share PINs.
if [ "$(cat "$T/h1/user.pin")" != "$(cat "$T/h2/user.pin")" ]; then ok "random user PINs differ"; else bad "same user PIN twice"; fi
expect_exit 1 "a directory that already holds a token is refused" -- bash "$SH" "$T/h1" again
expect_in "already holds a token" "$ERR" "reuse: clear message"
expect_exit 2 "usage without DIR" -- bash "$SH"
finish
