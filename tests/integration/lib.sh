# Shim: the harness for the CLI tests (count and continue, no set -e).
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
