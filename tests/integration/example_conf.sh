#!/usr/bin/env bash
# deploy/tally.conf says it holds every key with its default: it must list
# exactly the keys of `tallyd --help-config`, each once, with the default that
# table prints (so the file parses: every value is a default).
. "$(dirname "$0")/lib.sh"
conf=$src/deploy/tally.conf
"$tallyd" --help-config > "$work/ref.md" || fail "tallyd --help-config failed"
# "| `key` | `default` | ..." -> "key=default"
sed -n 's/^| `\([a-z0-9_]*\)` | `\(.*\)` | .* | .* | .* |$/\1=\2/p' "$work/ref.md" | sort > "$work/want"
[ -s "$work/want" ] || fail "could not read tallyd --help-config"
sed -n 's/^\([a-z0-9_]*\) *= *\(.*\)$/\1=\2/p' "$conf" | sed 's/ *$//' | sort > "$work/have"
diff -u "$work/want" "$work/have" || fail "deploy/tally.conf differs from the defaults (- table, + file)"
dups=$(cut -d= -f1 "$work/have" | uniq -d)
[ -z "$dups" ] || fail "deploy/tally.conf repeats $dups"
echo "PASS deploy/tally.conf holds every key with its default ($(wc -l < "$work/want") keys)"
