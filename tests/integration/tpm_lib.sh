# Shared preamble of the swtpm integration tests (sourced after
# TEST_NAME=...): strict mode, the CLI as $ST, a scratch directory $W with
# two swtpm state directories $TPM_A and $TPM_B, both swtpms stopped and $W
# removed on exit, and no TPM key auth or site from the caller's environment.
set -euo pipefail
: "${STK_BIN:?}" "${STK_SRC:?}" "${STK_TEST_TMP:?}" "${TEST_NAME:?}"
ST="$STK_BIN/sitetoken"
mkdir -p "$STK_TEST_TMP"
W=$(mktemp -d "$STK_TEST_TMP/$TEST_NAME.XXXXXX")
TPM_A="$W/tpm-a"
TPM_B="$W/tpm-b"

cleanup() {
  bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM_A" || true
  bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM_B" || true
  rm -rf "$W"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
unset SITETOKEN_TPM_KEY_AUTH SITETOKEN_TPM_KEY_AUTH_FILE SITETOKEN_SITE
