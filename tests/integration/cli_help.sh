#!/usr/bin/env bash
# Every command and subcommand of sitetoken, sitetoken-agent and
# BulkRegistrationTokenTool answers -h and --help on stdout with exit 0,
# and each help names exactly the options the command parses:
#  - sitetoken: `CMD SUB --list-options` prints the command's getopt table
#    (cli/help.c cli_getopt), compared with the options in `CMD SUB --help`;
#  - sitetoken-agent: the options agent/main.c parses (getopt tables and
#    strcmp literals) against the options in its helps;
#  - README: every `sitetoken CMD SUB --opt` in README names an option the
#    command accepts.
. "$(dirname "$0")/harness.sh"
set -e
# No site: help must not need one, and nothing may be created.
export SITETOKEN_SITE=$T/nosite
unset SITETOKEN_AGENT_STATE

HELP_FLAGS=(--help -h)
opts_in() { grep -oE -- '--[a-z][a-z0-9-]*' | grep -vxE -- '--help' | sort -u; }
# same_opts PARSED HELP WHAT: the option lists are equal (a diff on stderr).
same_opts() {
	diff -u "$1" "$2" >&2 || fail "$3: options parsed (-) and options in the help (+) differ"
}

# help_ok NAME CMD...: -h and --help (or the flags in HELP_FLAGS) all exit 0
# with a usage text on stdout only.
help_ok() {
	local name=$1 flag rc
	shift
	for flag in "${HELP_FLAGS[@]}"; do
		rc=0
		"$@" "$flag" >"$T/out" 2>"$T/err" || rc=$?
		[ "$rc" -eq 0 ] || fail "$name $flag exited $rc: $(cat "$T/err")"
		[ -s "$T/out" ] || fail "$name $flag printed nothing on stdout"
		[ ! -s "$T/err" ] || fail "$name $flag wrote to stderr: $(cat "$T/err")"
		grep -qi usage "$T/out" || fail "$name $flag has no usage line"
	done
}

# --- sitetoken ---
help_ok "sitetoken" "$STK"
mapfile -t cmds < <("$STK" --list-commands)
[ "${#cmds[@]}" -ge 20 ] || fail "only ${#cmds[@]} commands listed"
n=0
for cmd in "${cmds[@]}"; do
	# shellcheck disable=SC2086 # cmd is "command subcommand"
	help_ok "sitetoken $cmd" "$STK" $cmd
	# shellcheck disable=SC2086
	"$STK" $cmd --help | opts_in > "$T/help.opts"
	# shellcheck disable=SC2086
	"$STK" $cmd --list-options | sort -u > "$T/table.opts" ||
		fail "sitetoken $cmd --list-options failed"
	[ -s "$T/table.opts" ] || fail "sitetoken $cmd: empty option table"
	same_opts "$T/table.opts" "$T/help.opts" "sitetoken $cmd"
	n=$((n + 1))
done
ok "sitetoken: $n commands answer -h/--help; each help names exactly its getopt table"
# The manuals name every option too: serve's in sitetoken-serve(8), the
# rest in sitetoken(1).
for cmd in "${cmds[@]}"; do
	man=$STK_SRC/docs/man/sitetoken.1.scd
	[ "$cmd" = serve ] && man=$STK_SRC/docs/man/sitetoken-serve.8.scd
	# shellcheck disable=SC2086
	for o in $("$STK" $cmd --list-options); do
		grep -qF -- "*$o*" "$man" || fail "$(basename "$man") lacks $o of '$cmd'"
	done
done
ok "man pages name every option of every command"
# The top-level commands answer too (list of their subcommands).
for c in $(printf '%s\n' "${cmds[@]}" | awk '{print $1}' | sort -u); do
	help_ok "sitetoken $c" "$STK" "$c"
done
ok "sitetoken: every command (without subcommand) answers --help"
# The case from the issue: was a usage error.
grep -q -- '--lifetime MINUTES' <<<"$("$STK" bulk new --help)" || fail "bulk new --help"
# --help wins over any other argument, and nothing ran: no site was made.
"$STK" site init --backend nonsense --help >/dev/null || fail "site init --help with a bad value"
[ ! -e "$T/nosite" ] || fail "a --help run created the site directory"
ok "sitetoken bulk new --help; --help runs nothing"
# An unknown option is still a usage error (2) with a message on stderr.
expect_exit 2 "unknown option: usage error" -- "$STK" bulk new --no-such-option
expect_exit 2 "unknown command --help: usage error" -- "$STK" nosuchcommand --help

# README: each `sitetoken CMD [SUB] ... --opt` names an option CMD accepts.
checked=0
while IFS= read -r line; do
	set -f
	# shellcheck disable=SC2086
	set -- $line
	set +f
	shift # sitetoken
	while [ "${1:-}" = "--site" ]; do shift 2; done
	c=${1:-}; s=${2:-}
	if printf '%s\n' "${cmds[@]}" | has -xF "$c $s"; then path="$c $s"
	elif printf '%s\n' "${cmds[@]}" | has -xF "$c"; then path=$c
	else continue; fi
	# shellcheck disable=SC2086
	"$STK" $path --list-options > "$T/table.opts"
	for o in $(printf '%s\n' "$line" | sed 's/#.*//' | opts_in); do
		[ "$o" = --site ] && continue
		grep -qxF -- "$o" "$T/table.opts" ||
			fail "README: 'sitetoken $path' has no option $o ($line)"
		checked=$((checked + 1))
	done
done < <(grep -oE '^(\$ )?sitetoken [a-z].*' "$STK_SRC/README.md" | sed 's/^\$ //')
[ "$checked" -ge 15 ] || fail "README check found only $checked options"
ok "README: $checked options in sitetoken examples exist"

# --- sitetoken-agent ---
help_ok "sitetoken-agent" "$AGENT"
src=$STK_SRC/agent/main.c
# Options the agent parses: getopt table names and "--x" literals compared
# with strcmp.
{ grep -oE '\{ "[a-z][a-z0-9-]*", (required|no)_argument' "$src" | sed -E 's/\{ "([^"]*)".*/--\1/'
  grep -oE 'strcmp\(argv\[[a-z0-9 +]*\], "--[a-z][a-z0-9-]*"\)' "$src" | grep -oE -- '--[a-z0-9-]+'
  grep -oE 'strcmp\(argv\[1\], "--[a-z]+"\)' "$src" | grep -oE -- '--[a-z0-9-]+'
} | grep -vxF -- --help | sort -u > "$T/agent.parsed"
[ "$(wc -l < "$T/agent.parsed")" -ge 8 ] || fail "agent option scan found too little"
"$AGENT" --help | opts_in > "$T/agent.help"
for c in install register renew run policy status; do
	help_ok "sitetoken-agent $c" "$AGENT" "$c"
	"$AGENT" "$c" --help | opts_in >> "$T/agent.help"
	h=$("$AGENT" "$c" --help)
	grep -q " $c" <<<"${h%%$'\n'*}" || fail "agent $c --help is not about $c"
done
sort -u -o "$T/agent.help" "$T/agent.help"
same_opts "$T/agent.parsed" "$T/agent.help" "sitetoken-agent"
for o in $(cat "$T/agent.parsed"); do
	grep -qF -- "*$o*" "$STK_SRC/docs/man/sitetoken-agent.8.scd" || fail "sitetoken-agent(8) lacks $o"
done
ok "sitetoken-agent: every command answers --help; helps and man page name exactly the parsed options"

# --- BulkRegistrationTokenTool ---
HELP_FLAGS=('/?' -h --help /help)
help_ok BulkRegistrationTokenTool "$BRT"
for o in /new /lifetime /site; do
	grep -qF -- "$o" "$T/out" || fail "BulkRegistrationTokenTool help lacks $o"
done
ok "BulkRegistrationTokenTool answers /? -h --help /help"
