#!/usr/bin/env bash
# The Debian package (CPack, as `./run package` makes it): what it installs,
# lintian clean (every remaining tag overridden in dist/debian/
# lintian-overrides with its reason), stripped programs that run, man pages
# that render, the packaged units verified against the packaged programs
# and man pages, and bash completion driven by the packaged program.
. "$(dirname "$0")/harness.sh"
set -e

# A package of the current build, made in the test's own directory.
(cd "$STK_BIN" && cpack -G DEB -B "$T/out" > "$T/cpack.log" 2>&1) ||
	{ cat "$T/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$T"/out/sitetoken_*_*.deb)
[ "$(dpkg-deb -f "$deb" Package)" = sitetoken ] || fail "package name"
dpkg-deb -f "$deb" Depends | has 'adduser' || fail "Depends lacks adduser"
dpkg-deb -f "$deb" Depends | has 'libssl3' || fail "Depends lacks the shared libraries (shlibdeps)"
ok "built $(basename "$deb")"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | sort > "$T/files"
for f in /usr/bin/sitetoken /usr/bin/sitetoken-agent /usr/bin/BulkRegistrationTokenTool \
	/lib/systemd/system/sitetoken.service /lib/systemd/system/sitetoken-agent.service \
	/lib/systemd/system/sitetoken-agent.timer /etc/logrotate.d/sitetoken \
	/etc/default/sitetoken-agent /usr/share/doc/sitetoken/examples/serve.conf \
	/usr/share/doc/sitetoken/copyright /usr/share/doc/sitetoken/changelog.gz \
	/usr/share/man/man1/sitetoken.1.gz /usr/share/man/man1/BulkRegistrationTokenTool.1.gz \
	/usr/share/man/man8/sitetoken-agent.8.gz /usr/share/man/man8/sitetoken-serve.8.gz \
	/usr/share/bash-completion/completions/sitetoken \
	/usr/share/bash-completion/completions/sitetoken-agent \
	/usr/share/bash-completion/completions/BulkRegistrationTokenTool \
	/usr/share/lintian/overrides/sitetoken; do
	grep -qxF "$f" "$T/files" || fail "package lacks $f"
done
# Nothing a user would not expect: no headers, static libraries, tests.
if grep -E '\.(a|h|o)$|/include/|/tests?/' "$T/files"; then fail "unexpected files"; fi
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$T/conffiles"
diff <(sort "$T/conffiles") <(grep '^/etc/.*[^/]$' "$T/files") ||
	fail "every file in /etc must be a conffile"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst > "$T/postinst"
sh -n "$T/postinst" || fail "postinst syntax"
ok "contents: programs, units, logrotate, example config, man pages, completion; /etc files are conffiles"

# lintian: no error or warning, and no tag left unexplained (overridden
# tags are not shown; an override that no longer matches is reported).
lintian --fail-on error,warning -I --no-tag-display-limit "$deb" > "$T/lintian" 2>&1 ||
	{ cat "$T/lintian" >&2; fail "lintian"; }
if grep -E '^[EWIPX]: ' "$T/lintian"; then fail "lintian tags not explained in dist/debian/lintian-overrides"; fi
ok "lintian clean (info tags included)"

# The installed tree: stripped programs that run, man pages that render.
dpkg-deb -x "$deb" "$T/root"
R=$T/root
for p in sitetoken sitetoken-agent BulkRegistrationTokenTool; do
	readelf -S "$R/usr/bin/$p" | has '\.debug_info' && fail "$p is not stripped"
	# The help text whole first: `| grep -q` stops reading early, and a help
	# longer than one pipe write then dies of SIGPIPE under pipefail.
	grep -qi usage <<<"$("$R/usr/bin/$p" --help)" || fail "packaged $p --help"
done
grep -q -- --lifetime <<<"$("$R/usr/bin/sitetoken" bulk new --help)" || fail "packaged bulk new --help"
for m in "$R"/usr/share/man/man*/*.gz; do
	MANWIDTH=80 man --warnings -l "$m" > "$T/man.txt" 2> "$T/man.err" || fail "man $m"
	[ ! -s "$T/man.err" ] || { cat "$T/man.err" >&2; fail "man warnings in $m"; }
	grep -q '^NAME' "$T/man.txt" || fail "$m has no NAME"
done
zcat "$R/usr/share/man/man8/sitetoken-serve.8.gz" | has 'config' || fail "serve man page lacks --config"
ok "stripped programs answer --help; every man page renders without warnings"

# The packaged units, with the packaged programs and man pages.
for u in sitetoken.service sitetoken-agent.service sitetoken-agent.timer; do
	sed "s#/usr/bin/#$R/usr/bin/#g" "$R/lib/systemd/system/$u" > "$T/$u"
done
MANPATH=$R/usr/share/man systemd-analyze verify "$T/sitetoken.service" \
	"$T/sitetoken-agent.service" "$T/sitetoken-agent.timer" > "$T/verify" 2>&1 ||
	{ cat "$T/verify" >&2; fail "systemd-analyze verify (packaged units)"; }
[ ! -s "$T/verify" ] || { cat "$T/verify" >&2; fail "systemd-analyze warnings"; }
ok "packaged units pass systemd-analyze verify"

# Bash completion, as bash-completion loads it, with the packaged program.
BC=/usr/share/bash-completion/bash_completion
[ -r "$BC" ] || fail "$BC missing (./run deps installs bash-completion)"
complete_words() { # complete_words WORDS... (last may be empty): COMPREPLY
	PATH=$R/usr/bin:$PATH bash -c '
		. "$1"; . "$2"; shift 2
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_sitetoken; printf "%s\n" "${COMPREPLY[@]}" | sort' sh "$BC" \
		"$R/usr/share/bash-completion/completions/sitetoken" "$@"
}
[ "$(complete_words sitetoken bulk '' | tr '\n' ' ')" = "block new unblock " ] ||
	fail "completion of 'sitetoken bulk ': $(complete_words sitetoken bulk '')"
complete_words sitetoken bulk new --li | has -x -- --lifetime || fail "completion of --li"
complete_words sitetoken se | has -x serve || fail "completion of 'se'"
complete_words sitetoken serve --con | has -x -- --config || fail "completion of serve --con"
ok "bash completion: commands, subcommands and options from the program"
