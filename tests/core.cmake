# Signing core, file backend, site database, bulk tokens, audit, CLI.
foreach(t test_b64url test_jws test_refusal test_file_backend test_key_caps test_cert)
  stk_unit_test(${t})
endforeach()
stk_unit_test(test_site STORES "sqlite;pg")
stk_script_test(cli_roundtrip integration/cli_roundtrip.sh STORES "sqlite;pg")
stk_script_test(cli_bulk integration/cli_bulk.sh)
stk_script_test(cli_audit_tamper integration/cli_audit_tamper.sh)
# The database writer's forgeries (attacker 3), on both stores.
stk_script_test(audit_forge integration/audit_forge.sh STORES "sqlite;pg")
# The syslog copy of checkpoints (SITETOKEN_AUDIT_SYSLOG), to a socket of its own.
stk_script_test(audit_syslog integration/audit_syslog.sh)
