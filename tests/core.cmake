# Signing core, file backend, site database, bulk tokens, audit, CLI.
stk_unit_test(test_b64url)
stk_unit_test(test_jws)
stk_unit_test(test_refusal)
stk_unit_test(test_file_backend)
stk_unit_test(test_key_caps)
stk_unit_test(test_cert)
stk_unit_test(test_site STORES "sqlite;pg")
stk_script_test(cli_roundtrip integration/cli_roundtrip.sh STORES "sqlite;pg")
stk_script_test(cli_bulk integration/cli_bulk.sh)
stk_script_test(cli_audit_tamper integration/cli_audit_tamper.sh)
# The database writer's forgeries (attacker 3), on both stores.
stk_script_test(audit_forge integration/audit_forge.sh STORES "sqlite;pg")
