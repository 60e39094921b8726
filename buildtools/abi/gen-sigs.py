#!/usr/bin/env python3
"""Print 'symbol: signature' for every function a shared library exports.

usage: gen-sigs.py LIB [-o OUTPUT]

Same format as ABI/tevent-X.Y.Z.sigs, sorted by symbol.  The signatures
come from the library's debug info: gdb prints each function's type with
C syntax ('whatis' keeps typedef names such as TALLOC_CTX or
tevent_fd_handler_t), and the few spellings that differ because our
library is C++ are mapped back to what a C compiler would record.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import abi  # noqa: E402

MARK = '@@sig '
NO_DEBUG = '<no debug info>'

# C++ debug info vs. C spelling of the same types.
REWRITES = [
    # A va_list parameter decays to a pointer to its record type in C++,
    # and g++ names that record oddly.
    (re.compile(r'(?:struct )?(?:typedef )?__va_list_tag(?: __va_list_tag)? \*'),
     'va_list'),
    (re.compile(r'\bclass\b'), 'struct'),     # 'class tevent_queue' etc.
    (re.compile(r'\bstd::'), ''),              # std::size_t is size_t
    (re.compile(r'\b_Bool\b'), 'bool'),        # in case a C file slips in
    (re.compile(r'\s+'), ' '),
]


def exported_functions(lib):
    return sorted({name for (name, _node), is_func
                   in abi.dynamic_exports(lib).items() if is_func})


def normalise(text):
    for pattern, repl in REWRITES:
        text = pattern.sub(repl, text)
    return text.strip()


def signatures(lib, names):
    """{name: signature or NO_DEBUG} for the given function names."""
    if not shutil.which('gdb'):
        raise SystemExit('gen-sigs: gdb not found (Debian package gdb)')
    cmd = ['gdb', '-batch', '-nx', '-q',
           '-ex', 'set language c',
           '-ex', 'set print type methods off',
           '-ex', 'set print type nested-type-limit 0',
           '-ex', 'set width 0', '-ex', 'set height 0', '-ex', 'set pagination off']
    for name in names:
        # 'echo' marks where each answer starts; errors go to stderr.
        cmd += ['-ex', 'echo %s%s\\n' % (MARK, name), '-ex', 'whatis ' + name]
    proc = subprocess.run(cmd + [lib], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 and MARK not in proc.stdout:
        raise SystemExit('gen-sigs: gdb failed:\n' + proc.stderr)

    result = {}
    current = None
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            result[current] = NO_DEBUG
        elif current and line.startswith('type = '):
            sig = line[len('type = '):]
            # Without DWARF gdb only knows a minimal symbol.
            if '<text variable' in sig or 'unknown return type' in sig:
                sig = NO_DEBUG
            result[current] = normalise(sig)
            current = None
    for name in names:
        result.setdefault(name, NO_DEBUG)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('lib')
    ap.add_argument('-o', '--output')
    args = ap.parse_args()

    names = exported_functions(args.lib)
    sigs = signatures(args.lib, names)
    text = ''.join('%s: %s\n' % (n, sigs[n]) for n in names)
    if args.output:
        with open(args.output, 'w', encoding='utf-8') as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    missing = [n for n in names if sigs[n] == NO_DEBUG]
    if missing:
        print('gen-sigs: no debug info for: ' + ' '.join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
