# Install rules, man pages and the Debian package (CPack), included from the
# top CMakeLists.txt. `./run package` (or `cmake --build build --target
# package`) makes build/sitetoken_<version>_<arch>.deb; tests/ops.cmake
# checks it (contents, lintian).
include(GNUInstallDirs)

# Man pages, written in scdoc (docs/man/*.scd), compressed as Debian wants.
find_program(SCDOC scdoc REQUIRED)
set(STK_MAN_PAGES sitetoken.1 BulkRegistrationTokenTool.1 sitetoken-agent.8
  sitetoken-serve.8)
set(STK_MAN_OUT)
foreach(page ${STK_MAN_PAGES})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" sec ${page})
  set(src ${CMAKE_SOURCE_DIR}/docs/man/${page}.scd)
  set(out ${CMAKE_BINARY_DIR}/man/man${sec}/${page})
  add_custom_command(OUTPUT ${out} ${out}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man/man${sec}
    COMMAND sh -c "\"$0\" < \"$1\" > \"$2\" && gzip -9n < \"$2\" > \"$2.gz\""
      ${SCDOC} ${src} ${out}
    DEPENDS ${src} COMMENT "Man page ${page}" VERBATIM)
  list(APPEND STK_MAN_OUT ${out} ${out}.gz)
  install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sec})
endforeach()
add_custom_target(man ALL DEPENDS ${STK_MAN_OUT})

# Debian's hardening flags on the installed programs (lintian checks them):
# not with the sanitizers or fuzzers; FORTIFY needs an optimised build.
option(STK_HARDEN "Build the installed programs with FORTIFY_SOURCE and full RELRO" ON)
if(STK_HARDEN AND NOT STK_SANITIZE AND NOT STK_FUZZ)
  foreach(t sitetoken-cli sitetoken-agent BulkRegistrationTokenTool)
    target_compile_options(${t} PRIVATE
      $<$<CONFIG:Release,RelWithDebInfo,MinSizeRel>:-D_FORTIFY_SOURCE=2> -fstack-protector-strong)
    target_link_options(${t} PRIVATE -Wl,-z,relro -Wl,-z,now)
  endforeach()
endif()

install(TARGETS sitetoken-cli sitetoken-agent BulkRegistrationTokenTool
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Debian 12 keeps units in /lib/systemd/system (not /usr/lib).
set(STK_UNITDIR /lib/systemd/system CACHE PATH "systemd system unit directory")
set(D ${CMAKE_CURRENT_LIST_DIR})
install(FILES ${D}/sitetoken.service ${D}/sitetoken-agent.service ${D}/sitetoken-agent.timer
  DESTINATION ${STK_UNITDIR})
install(FILES ${D}/sitetoken.logrotate DESTINATION /etc/logrotate.d RENAME sitetoken)
install(FILES ${D}/sitetoken-agent.default DESTINATION /etc/default RENAME sitetoken-agent)
install(FILES ${D}/serve.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
foreach(cmd sitetoken sitetoken-agent BulkRegistrationTokenTool)
  install(FILES ${D}/sitetoken.bash-completion
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions RENAME ${cmd})
endforeach()
install(FILES ${D}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${D}/debian/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
  RENAME sitetoken)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/changelog.gz
  COMMAND sh -c "gzip -9n < \"$0\" > \"$1\""
    ${CMAKE_CURRENT_LIST_DIR}/changelog ${CMAKE_BINARY_DIR}/changelog.gz
  DEPENDS ${CMAKE_CURRENT_LIST_DIR}/changelog VERBATIM)
add_custom_target(changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sitetoken)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "sitetoken maintainers <maintainers@users.noreply.r-seed-822bc5e0.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "hardware-backed signed tokens for device registration")
# CPack puts the summary first and indents these lines itself.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "A device-management site issues its own signed tokens (JWS) to devices that
cannot get a PKI client certificate; the site key stays in a TPM 2.0 or a
PKCS#11 token. This package holds the administration tool (sitetoken), the
registration service (sitetoken serve: management point, cloud gateway and
admin console) with its systemd unit, the device agent with a renewal
timer, and BulkRegistrationTokenTool.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/sitetoken")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
  ${CMAKE_CURRENT_LIST_DIR}/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Directories the package does not own (lintian: no /usr/share/man etc. mode
# surprises); CPack lists only what it installs.
include(CPack)
