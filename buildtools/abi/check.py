#!/usr/bin/env python3
"""ABI check of the built libtevent (make abi-check).

usage: check.py [--lib bin/libtevent.so.0] [--incomplete-ok] [--reference DIR]
                [--system-lib PATH]

Checks, each printed as ok / FAIL / note:
  a. ABI/*.sigs are identical to the reference copies (../shared/reference/abi,
     when that directory exists);
  b. every exported dynamic symbol is an expected name@node (functions of
     ABI/*.sigs in the node of their first version, plus the node names
     themselves), all nodes exist, the SONAME is right;
  c. the signature of every exported function (read from debug info by
     gen-sigs.py) equals its line in the newest ABI/tevent-*.sigs;
  d. every name@node that the system libtevent exports is expected (and,
     once implemented, exported by ours);
  e. NEEDED lists only libtalloc, libc and the dynamic loader.
  f. every function of the newest ABI is exported: names, nodes and
     signatures must equal the reference exactly.  (--incomplete-ok turns
     missing functions into a note, for work in progress.)
"""

import argparse
import filecmp
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import abi  # noqa: E402

ALLOWED_NEEDED = {'libtalloc.so.2', 'libc.so.6', 'ld-linux-x86-64.so.2'}
SYSTEM_LIB = '/usr/lib/x86_64-linux-gnu/libtevent.so.0'


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, msg):
        print('  ok    ' + msg)

    def fail(self, msg, items=()):
        self.failures += 1
        print('  FAIL  ' + msg)
        for item in items:
            print('          ' + item)

    def note(self, msg, items=()):
        print('  note  ' + msg)
        for item in items:
            print('          ' + item)


def wrap(names, width=72):
    """Group names into lines of at most WIDTH characters."""
    lines, cur = [], ''
    for n in names:
        if cur and len(cur) + 1 + len(n) > width:
            lines.append(cur)
            cur = n
        else:
            cur = (cur + ' ' + n) if cur else n
    if cur:
        lines.append(cur)
    return lines


def check_reference(rep, abi_dir, ref_dir):
    if not os.path.isdir(ref_dir):
        rep.note('no reference directory %s: (a) skipped' % ref_dir)
        return
    ours = sorted(f for f in os.listdir(abi_dir) if f.endswith('.sigs'))
    theirs = sorted(f for f in os.listdir(ref_dir) if f.endswith('.sigs'))
    _, mismatch, errors = filecmp.cmpfiles(abi_dir, ref_dir, theirs, shallow=False)
    extra = sorted(set(ours) - set(theirs))
    if mismatch or errors or extra:
        rep.fail('ABI/*.sigs differ from %s' % ref_dir,
                 ['differs: ' + f for f in mismatch] +
                 ['missing in ABI/: ' + f for f in errors] +
                 ['not in reference: ' + f for f in extra])
    else:
        rep.ok('ABI/ has the %d reference sigs files, identical' % len(theirs))


def main():
    ap = argparse.ArgumentParser(description='ABI check of libtevent')
    ap.add_argument('--lib', default=os.path.join(REPO, 'bin', 'libtevent.so.0'))
    ap.add_argument('--abi-dir', default=os.path.join(REPO, 'ABI'))
    ap.add_argument('--reference', default=os.path.join(
        os.path.dirname(REPO), 'shared', 'reference', 'abi'))
    ap.add_argument('--system-lib', default=SYSTEM_LIB)
    ap.add_argument('--incomplete-ok', action='store_true',
                    help='only note expected functions that are missing')
    args = ap.parse_args()

    rep = Report()
    if not os.path.exists(args.lib):
        print('abi-check: %s not found (build first)' % args.lib)
        return 1
    print('abi-check: %s (%s)' % (args.lib, os.path.realpath(args.lib)))

    # (a)
    check_reference(rep, args.abi_dir, args.reference)

    versions, expected_node = abi.assign_nodes(args.abi_dir)
    nodes = [abi.node_name(v) for v in versions]
    newest = abi.read_sigs(dict(abi.sigs_files(args.abi_dir))[versions[-1]])
    expected = set(expected_node.items()) | {(n, n) for n in nodes}

    # (b) exports
    exports = abi.dynamic_exports(args.lib)
    unexpected = []
    for (name, node) in sorted(exports):
        if (name, node) in expected:
            continue
        if name in expected_node:
            why = 'belongs to %s' % expected_node[name]
        else:
            why = 'not part of the tevent ABI'
        unexpected.append('%s@%s  (%s)' % (name, node or '<unversioned>', why))
    if unexpected:
        rep.fail('%d unexpected export(s):' % len(unexpected), unexpected)
    missing_nodes = [n for n in nodes if (n, n) not in exports]
    if missing_nodes:
        rep.fail('version node(s) missing (version script not applied?):',
                 wrap(missing_nodes))
    funcs = sorted({name for (name, node), is_func in exports.items()
                    if is_func and (name, node) in expected})
    if not unexpected and not missing_nodes:
        rep.ok('exports: %d version nodes, %d functions, nothing unexpected'
               % (len(nodes), len(funcs)))
    soname = abi.dynamic_tag(args.lib, 'SONAME')
    if soname != ['libtevent.so.0']:
        rep.fail('SONAME is %s, want libtevent.so.0' % (soname or 'missing'))
    else:
        rep.ok('SONAME libtevent.so.0')

    # (c) signatures
    gen = subprocess.run([sys.executable, os.path.join(HERE, 'gen-sigs.py'), args.lib],
                         capture_output=True, text=True)
    if gen.returncode not in (0, 1) or not gen.stdout and funcs:
        rep.fail('gen-sigs.py failed: ' + gen.stderr.strip())
    else:
        ours = abi.parse_sigs_text(gen.stdout)
        # Every exported function with a line in the newest sigs file,
        # whatever node it landed in.
        checked = sorted({n for (n, _), is_func in exports.items()
                          if is_func and n in newest})
        bad = []
        for name in checked:
            want = newest[name]
            got = ours.get(name, '<not found by gen-sigs>')
            if got != want:
                bad.append('%s:\n            have: %s\n            want: %s'
                           % (name, got, want))
        if bad:
            rep.fail('%d of %d signature(s) differ from %s:'
                     % (len(bad), len(checked), 'tevent-%s.sigs' % versions[-1]), bad)
        else:
            rep.ok('signatures of %d exported function(s) match tevent-%s.sigs'
                   % (len(checked), versions[-1]))

    # (d) the system library, for comparison
    if args.system_lib and os.path.exists(args.system_lib):
        sys_exports = abi.dynamic_exports(args.system_lib)
        strange = sorted('%s@%s' % k for k in sys_exports if k not in expected)
        if strange:
            rep.fail('%s exports name@node pairs the ABI/ rule does not give:'
                     % args.system_lib, wrap(strange))
        have = sum(1 for k in sys_exports if k in exports)
        rep.ok('%s: %d of its %d exports present in ours'
               % (os.path.realpath(args.system_lib), have, len(sys_exports)))
    else:
        rep.note('no system libtevent at %s: (d) skipped' % args.system_lib)

    # (e) NEEDED
    needed = abi.dynamic_tag(args.lib, 'NEEDED')
    extra = [n for n in needed if n not in ALLOWED_NEEDED]
    if extra:
        rep.fail('NEEDED has more than libtalloc/libc: %s' % ' '.join(needed))
    else:
        rep.ok('NEEDED: %s' % ' '.join(needed))

    # (f) what is still missing
    todo = sorted(n for n in expected_node if (n, expected_node[n]) not in exports)
    if todo:
        msg = 'not exported: %d functions:' % len(todo)
        if args.incomplete_ok:
            rep.note(msg, wrap(todo))
        else:
            rep.fail(msg, wrap(todo))
    else:
        rep.ok('all %d functions of the ABI are exported' % len(expected_node))

    if rep.failures:
        print('abi-check: FAILED (%d problem(s))' % rep.failures)
        return 1
    print('abi-check: passed' + (' (%d functions not exported)' % len(todo) if todo else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
