#!/usr/bin/env bash
# The README's configuration reference is what tallyd --help-config prints from
# the one config table: a key, default, range or help text changed in the code
# must be changed in the docs too.
. "$(dirname "$0")/lib.sh"
"$tallyd" --help-config > "$work/ref.md" || fail "tallyd --help-config failed"
awk '/^\| key \| default \| range \| runtime \| meaning \|$/ { on = 1 } on && /^$/ { exit } on' \
  "$src/README.md" > "$work/readme.md"
[ -s "$work/readme.md" ] || fail "README.md has no configuration reference table"
diff -u "$work/readme.md" "$work/ref.md" || fail "README.md's config table differs from tallyd --help-config"
echo "PASS README config reference matches tallyd --help-config ($(grep -c '^| `' "$work/ref.md") keys)"
