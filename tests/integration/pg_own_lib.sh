# Shim (sourced after server_lib.sh): the test's own PostgreSQL clusters
# (pgo_* in the harness), stopped by pid on exit.
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
pgo_init
