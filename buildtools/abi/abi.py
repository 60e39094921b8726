"""Shared helpers for the ABI tools: reading ABI/*.sigs and the node rule.

Rule (see ABI/): every version X.Y.Z that has a tevent-X.Y.Z.sigs file gets
an ELF version node TEVENT_X.Y.Z, each node inheriting from the previous
one in numeric version order; a symbol lives in the node of the first
version whose sigs file lists it.
"""

import os
import re
import shutil
import subprocess

SIGS_RE = re.compile(r'^tevent-(\d+)\.(\d+)\.(\d+)\.sigs$')


def version_key(version):
    return tuple(int(x) for x in version.split('.'))


def node_name(version):
    return 'TEVENT_' + version


def sigs_files(abi_dir):
    """[(version, path)] of every sigs file, oldest version first."""
    found = []
    for name in os.listdir(abi_dir):
        m = SIGS_RE.match(name)
        if m:
            found.append(('.'.join(m.groups()), os.path.join(abi_dir, name)))
    found.sort(key=lambda vp: version_key(vp[0]))
    return found


def parse_sigs_text(text, where='<text>'):
    """{symbol: signature} from lines 'symbol: signature'."""
    sigs = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, sig = line.partition(': ')
        if not sep:
            raise ValueError('%s:%d: not "symbol: signature"' % (where, lineno))
        sigs[name] = sig
    return sigs


def read_sigs(path):
    """{symbol: signature} from one sigs file."""
    with open(path, encoding='utf-8') as f:
        return parse_sigs_text(f.read(), path)


def assign_nodes(abi_dir):
    """Return (versions, {symbol: node}) following the rule above."""
    versions = []
    first = {}
    for version, path in sigs_files(abi_dir):
        versions.append(version)
        for sym in read_sigs(path):
            first.setdefault(sym, node_name(version))
    return versions, first


def _tool(name):
    if not shutil.which(name):
        raise SystemExit('%s not found (Debian package binutils)' % name)
    return name


def dynamic_exports(lib):
    """Defined dynamic symbols of LIB as {(name, node)}; node '' if none.

    objdump -T prints the version after the size column, in parentheses
    when it is not the default version of that name.
    """
    out = subprocess.run([_tool('objdump'), '-T', lib], check=True,
                         capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        m = re.match(r'^[0-9a-f]{8,16} (.{7}) (\S+)\s+[0-9a-f]+\s+(.*)$', line)
        if not m:
            continue
        flags, section, rest = m.groups()
        if section == '*UND*':
            continue
        parts = rest.split()
        name = parts[-1]
        node = parts[-2].strip('()') if len(parts) >= 2 else ''
        if node == 'Base':
            node = ''
        is_func = 'F' in flags
        result[(name, node)] = is_func
    return result


def dynamic_tag(lib, tag):
    """Values of one readelf -d tag, e.g. NEEDED or SONAME."""
    out = subprocess.run([_tool('readelf'), '-d', '-W', lib], check=True,
                         capture_output=True, text=True).stdout
    return re.findall(r'\(%s\)\s.*\[(.*)\]' % tag, out)
