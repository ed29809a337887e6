# Issue 15 (network attacker, wrong clock, local user): TLS policy of every
# listener, device key strength and validity, key retirement that no single
# clock decides, site directory/log/process hardening. Each script stops
# what it starts, by pid.
foreach(t key_clock device_cert_policy)
  stk_script_test(${t} integration/${t}.sh STORES "sqlite;pg" LABELS "integration;server;hardening" TIMEOUT 180)
endforeach()
foreach(t server_tls_policy site_files newuser)
  stk_script_test(${t} integration/${t}.sh LABELS "integration;server;hardening" TIMEOUT 180)
endforeach()
