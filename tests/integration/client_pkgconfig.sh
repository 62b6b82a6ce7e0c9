#!/usr/bin/env bash
# libtally as a producer's build sees it: installed into a scratch root, the
# example of client/README.md compiles and links with nothing but
# `pkg-config --cflags --libs libtally`, and the shared library exports the
# public API of tally.h and nothing else.
. "$(dirname "$0")/lib.sh"
meson install -C "$build" --destdir "$work/root" --no-rebuild --quiet > "$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "meson install failed"; }
pc=$(find "$work/root" -name libtally.pc | head -1)
[ -n "$pc" ] || fail "no libtally.pc installed"
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$work/root
awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' "$src/client/README.md" > "$work/example.c"
[ -s "$work/example.c" ] || fail "no C example in client/README.md"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$work/example" "$work/example.c" \
  $(pkg-config --cflags --libs libtally) || fail "the README example does not build against libtally.pc"
echo "ok: the README example builds with pkg-config libtally"
lib=$(find "$work/root" -name 'libtally.so' | head -1)
exports=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | sort)
want=$(grep -o 'TALLY_API [a-z ]*[*]*tally_[a-z_]*' "$src/client/tally.h" | grep -o 'tally_[a-z_]*$' | sort)
[ "$exports" = "$want" ] || fail "libtally.so exports $(echo $exports), tally.h declares $(echo $want)"
echo "ok: libtally.so exports exactly the $(echo "$want" | wc -l) functions of tally.h"
echo "PASS client-pkgconfig"
