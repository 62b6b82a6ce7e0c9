#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Embeds a text file in the binary as a C string (the status page): no npm, no
# page build step, and the page served is exactly the file in the repository.
# usage: embed.py INPUT OUTPUT.c SYMBOL
import sys

src, out, sym = sys.argv[1:4]
data = open(src, 'rb').read()
with open(out, 'w') as f:
    f.write('/* Generated from %s by embed.py: do not edit. */\n' % src.split('/')[-1])
    f.write('const char %s[] =\n' % sym)
    for line in data.split(b'\n'):
        esc = ''.join(c if 32 <= ord(c) < 127 and c not in '"\\?' else '\\%03o' % ord(c)
                      for c in (line + b'\n').decode('latin-1'))
        f.write('\t"%s"\n' % esc)
    f.write(';\n')
