# Shim: the harness for the swtpm tests (sourced after TEST_NAME=...):
# set -e, $W with $TPM_A and $TPM_B, both swtpms stopped on exit.
: "${STK_TEST_TMP:?}" "${TEST_NAME:?}"
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
set -e
tpm_pair
