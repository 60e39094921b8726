#!/usr/bin/env python3
"""Write the linker version script of libtevent from ABI/*.sigs.

usage: mkversionscript.py ABI_DIR OUTPUT

One node per sigs file, chained oldest to newest; each symbol goes into the
node of the first version listing it (rule in abi.py).  'local: *;' in the
first node hides everything that is not listed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import abi  # noqa: E402


def render(abi_dir):
    versions, first = abi.assign_nodes(abi_dir)
    if not versions:
        raise SystemExit('mkversionscript: no tevent-X.Y.Z.sigs in %s' % abi_dir)
    by_node = {}
    for sym, node in first.items():
        by_node.setdefault(node, []).append(sym)

    out = []
    prev = None
    for version in versions:
        node = abi.node_name(version)
        out.append('%s {' % node)
        syms = sorted(by_node.get(node, []))
        if syms:
            out.append('\tglobal:')
            out.extend('\t\t%s;' % s for s in syms)
        if prev is None:
            out.append('\tlocal: *;')
        out.append('}%s;' % (' ' + prev if prev else ''))
        out.append('')
        prev = node
    return '\n'.join(out)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2])
    text = render(sys.argv[1])
    tmp = sys.argv[2] + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, sys.argv[2])


if __name__ == '__main__':
    main()
