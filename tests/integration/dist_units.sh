#!/usr/bin/env bash
# The systemd units in dist/ pass `systemd-analyze verify` (which needs no
# systemd as PID 1): syntax, every directive known to this systemd, the
# ExecStart programs present and executable, and the Documentation= man
# pages present (the ones CMake built from docs/man). The units name the
# installed /usr/bin programs; here they point at the build tree's.
. "$(dirname "$0")/harness.sh"
set -e
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (./run deps installs systemd)"

units=(sitetoken.service sitetoken-agent.service sitetoken-agent.timer)
for u in "${units[@]}"; do
	sed "s#/usr/bin/#$STK_BIN/#g" "$STK_SRC/dist/$u" > "$T/$u"
done
grep -q "ExecStart=$STK_BIN/sitetoken serve --config" "$T/sitetoken.service" || fail "rewrite"
if ! MANPATH=$STK_BIN/man systemd-analyze verify "${units[@]/#/$T/}" > "$T/out" 2>&1; then
	cat "$T/out" >&2
	fail "systemd-analyze verify"
fi
[ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify: ${units[*]}"

# The verifier is not a rubber stamp: a unit with a typo (a warning, hence
# the "no output" check above), or a program
# that is not there, fails it.
sed 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$T/sitetoken.service" > "$T/bad1.service"
MANPATH=$STK_BIN/man systemd-analyze verify "$T/bad1.service" > "$T/out" 2>&1 || true
grep -q "Unknown key 'NoNewPrivilege'" "$T/out" || { cat "$T/out" >&2; fail "typo not caught"; }
sed "s#$STK_BIN/sitetoken serve#$T/nothing serve#" "$T/sitetoken.service" > "$T/bad2.service"
rc=0; MANPATH=$STK_BIN/man systemd-analyze verify "$T/bad2.service" > "$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a missing ExecStart program passed"
ok "a unit with an unknown directive or a missing program is reported"

# The hardening the server unit promises is there.
for d in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
	StateDirectory=sitetoken CapabilityBoundingSet= LimitCORE=0 UMask=0077 \
	"ExecReload=/bin/kill -HUP \$MAINPID" User=sitetoken; do
	grep -qxF -- "$d" "$STK_SRC/dist/sitetoken.service" || fail "sitetoken.service lacks $d"
done
grep -qx 'ExecStart=/usr/bin/sitetoken-agent $SITETOKEN_AGENT_OPTS run --once' \
	"$STK_SRC/dist/sitetoken-agent.service" || fail "agent service ExecStart"
grep -qx 'Persistent=true' "$STK_SRC/dist/sitetoken-agent.timer" || fail "agent timer"
ok "server unit hardening, agent service and timer as documented"

# The agent's command line in the unit is accepted by the agent itself:
# `run --once` with no state directory is a usage error naming the state
# (not an unknown option), and the server's is `serve --config FILE`.
expect_refusal 2 "state directory" "agent run --once without a state directory" -- \
	env -u SITETOKEN_AGENT_STATE "$STK_BIN/sitetoken-agent" run --once
"$STK_BIN/sitetoken" serve --list-options | has -x -- --config || fail "serve has no --config"
ok "the units' command lines are ones the programs accept"
