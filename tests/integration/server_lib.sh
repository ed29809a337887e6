# Shim: the harness for the server/agent tests (set -e, $SITE and the
# server helpers).
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
set -e
server_env
