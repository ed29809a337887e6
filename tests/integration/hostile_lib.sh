# Shim (sourced after server_lib.sh): db_state, audit_count, audit_last,
# dev_identity, post_json, bearer_hdr, cert_x5t and mp_pop_body are in the
# harness.
. "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
