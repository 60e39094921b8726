#!/usr/bin/env python3
# Build description of tevent-cxx, run through buildtools/bin/waf
# (./configure, make).  Outputs go to bin/ (or --out=DIR):
#   bin/libtevent.so.0.17.2 (+ libtevent.so.0, libtevent.so symlinks)
#   bin/tevent.vscript      linker version script made from ABI/*.sigs
#   bin/tevent.pc
#   bin/tests/test_*        one cmocka program per tests/test_*.c
#   bin/examples/<name>     one per doc/examples/*.c
#   bin/bench/<name>        one per bench/*.c
#
# Adding things:
#   * another shared library (e.g. libtevent_threadpool.so): one more
#     shared_library(...) call in build(), with its own sources, version and,
#     if it has an ABI directory, version script (see tevent_library()).
#   * programs: program(bld, source, 'dir/name', use=[...]) builds
#     bin/dir/name against our libtevent; bench_programs() shows the pattern.

import os
import sys

from waflib import Logs, Options, Utils
from waflib.TaskGen import after_method, before_method, feature
from waflib.Tools import cxx

APPNAME = 'tevent'
VERSION = '0.17.2'

top = '.'
out = 'bin'

# Every function starts on a cache line: the hot ones (TEVENT_HOT) then keep
# the same alignment whatever code is added elsewhere.  Without it, moving
# the code by 32 bytes changed the queue benchmark by up to 8%.
ALIGN_FLAGS = ['-falign-functions=64']

# Compiler flags of the library itself (see doc/HACKING.md).  -O3 rather
# than -O2: it inlines the finish and receive steps of a request into the
# entry points that use them (req_cycle +11%, immediates +4%, queue +1-2%,
# for 13 KB more text).  -fno-ipa-icf:
# identical-code folding would turn look-alike entry points (the *_get_tag
# family, say) into aliases that have no debug info of their own, and the
# ABI generator reads every signature from debug info.
LIB_CXXFLAGS = ['-std=gnu++20', '-fno-exceptions', '-fno-rtti',
                '-fvisibility=hidden', '-fvisibility-inlines-hidden',
                '-fno-threadsafe-statics', '-fno-ipa-icf', '-fPIC',
                '-fno-semantic-interposition',
                '-O3', '-g', '-Wall', '-Wextra'] + ALIGN_FLAGS
# Refuse undefined symbols: anything from libstdc++ would show up here.
LIB_LINKFLAGS = ['-static-libgcc', '-Wl,--no-undefined', '-Wl,-z,defs']
# Link-time optimisation: a request's path crosses req.cc, queue.cc,
# immediate.cc and loop.cc, and only LTO can inline across them (5-6% on
# the queue benchmark).  -fno-plt calls libtalloc through the GOT without a
# PLT jump (interposition by LD_PRELOAD still works).  Sanitizer builds
# leave both out: their reports are easier to read without.
LTO_FLAGS = ['-flto=auto', '-fno-plt']
# Two code-generation habits of GCC 12 that stalled tevent_add_timer()
# (perf on AMD EPYC, timeouts_any): generic x86 tuning clears a new event
# (88 to 200 bytes) with `rep stos`, slow to start (18% of the function);
# and SLP vectorisation stores a timeval passed in two registers to the
# stack and reloads it as one 16-byte vector, which store forwarding
# cannot serve (38% of the function once `rep stos` was gone).  Plain
# vector stores up to 256 bytes, memset() beyond; no SLP.  The LTO link
# step generates the code, so it needs them too.
CODEGEN_FLAGS = ['-mmemset-strategy=vector_loop:256:noalign,libcall:-1:noalign', '-fno-tree-slp-vectorize']

# Test, example and bench programs are plain C against our public header.
PROG_CFLAGS = ['-std=gnu99', '-Wall', '-Wextra', '-g', '-D_GNU_SOURCE', '-pthread']
PROG_LINKFLAGS = ['-pthread', '-Wl,--enable-new-dtags']

SANITIZERS = {
    'asan': ['-fsanitize=address,undefined', '-fno-omit-frame-pointer'],
    'tsan': ['-fsanitize=thread', '-fno-omit-frame-pointer'],
    # Not a sanitizer, but built the same way: everything instrumented
    # (gcov line counts, `make coverage`), no link-time optimisation.
    'coverage': ['--coverage'],
}


def options(opt):
    opt.load('compiler_c compiler_cxx')
    # --prefix, --libdir and --destdir come with waf itself.
    grp = opt.add_option_group('tevent-cxx options')
    grp.add_option('--includedir', default=None,
                   help='header directory [default: PREFIX/include]')
    grp.add_option('--enable-asan', action='store_true', default=False,
                   help='build library and programs with ASan + UBSan')
    grp.add_option('--enable-tsan', action='store_true', default=False,
                   help='build library and programs with ThreadSanitizer')
    grp.add_option('--enable-coverage', action='store_true', default=False,
                   help='build library and programs with gcov line counts')
    grp.add_option('--disable-lto', action='store_true', default=False,
                   help='build the library without link-time optimisation')


def multiarch(conf):
    """The Debian multiarch triplet of the C compiler, or ''."""
    try:
        return conf.cmd_and_log(conf.env.CC + ['-print-multiarch'],
                                quiet=0).strip()
    except Exception:
        return ''


def find_package(conf, pkg, lib, store, header=None, mandatory=True):
    """pkg-config first, then a plain -l<lib> check."""
    if conf.env.PKGCONFIG and conf.check_cfg(
            package=pkg, args=['--cflags', '--libs'], uselib_store=store,
            global_define=False,
            mandatory=False):
        return True
    kw = {'header_name': header} if header else {}
    return conf.check_cc(lib=lib, uselib_store=store, global_define=False,
                         msg='Checking for library ' + lib,
                         mandatory=mandatory, **kw)


def configure(conf):
    conf.load('compiler_c compiler_cxx')
    conf.find_program('pkg-config', var='PKGCONFIG', mandatory=False)
    env = conf.env
    opts = Options.options

    # Install locations: like Debian, libraries go to PREFIX/lib/<triplet>.
    if not opts.libdir:
        triplet = multiarch(conf)
        env.LIBDIR = os.path.join(env.PREFIX, 'lib', triplet) if triplet \
            else os.path.join(env.PREFIX, 'lib')
    env.INCLUDEDIR = opts.includedir or os.path.join(env.PREFIX, 'include')
    env.PKGCONFIGDIR = os.path.join(env.LIBDIR, 'pkgconfig')
    conf.msg('Library directory', env.LIBDIR)
    conf.msg('Header directory', env.INCLUDEDIR)

    find_package(conf, 'talloc', 'talloc', 'TALLOC', header='talloc.h')
    # Only the tests need cmocka; without it the library still builds.
    env.HAVE_CMOCKA = bool(find_package(
        conf, 'cmocka', 'cmocka', 'CMOCKA', mandatory=False))
    # libuv: optional comparison target for bench/.
    env.HAVE_LIBUV = bool(find_package(
        conf, 'libuv', 'uv', 'LIBUV', mandatory=False))
    # Debian's own libtevent (header in /usr/include, library in the
    # multiarch dir): programs that must also run unchanged against
    # upstream are built against it (see system_program()).
    env.SYSTEM_TEVENT_LIB = ''
    for d in ([os.path.join('/usr/lib', multiarch(conf))] if multiarch(conf)
              else []) + ['/usr/lib', '/lib']:
        cand = os.path.join(d, 'libtevent.so.0')
        if os.path.exists(cand) and os.path.exists('/usr/include/tevent.h'):
            env.SYSTEM_TEVENT_LIB = os.path.realpath(cand)
            env.SYSTEM_TEVENT_LIBDIR = d
            break
    conf.msg('System libtevent (comparison)',
             env.SYSTEM_TEVENT_LIB or 'not found', color='GREEN'
             if env.SYSTEM_TEVENT_LIB else 'YELLOW')

    # Sanitizers apply to everything, so that the programs load the runtime.
    chosen = [name for name, on in (('asan', opts.enable_asan),
                                    ('tsan', opts.enable_tsan),
                                    ('coverage', opts.enable_coverage)) if on]
    if len(chosen) > 1:
        conf.fatal('--enable-%s exclude each other' % ' and --enable-'.join(chosen))
    env.SANITIZER = chosen[0] if chosen else ''
    if env.SANITIZER:
        flags = SANITIZERS[env.SANITIZER]
        conf.check_cc(cflags=flags, linkflags=flags,
                      msg='Checking for ' + ' '.join(flags))
        for var in ('CFLAGS', 'CXXFLAGS', 'LINKFLAGS'):
            env.append_value(var, flags)

    # The library must not need libstdc++ or libm at run time.  g++ >= 13
    # has -nostdlib++; with older ones the C driver links the library.
    env.CXXFLAGS_TEVENTLIB = list(LIB_CXXFLAGS)
    env.LINKFLAGS_TEVENTLIB = list(LIB_LINKFLAGS)
    if not env.SANITIZER and not opts.disable_lto:
        # The link step compiles again: it needs the optimisation level.
        if conf.check_cxx(cxxflags=LTO_FLAGS, linkflags=LTO_FLAGS + ['-O3'],
                          mandatory=False, msg='Checking for -flto'):
            env.append_value('CXXFLAGS_TEVENTLIB', LTO_FLAGS)
            env.append_value('LINKFLAGS_TEVENTLIB', LTO_FLAGS + ['-O3'])
    if conf.check_cxx(cxxflags=CODEGEN_FLAGS, linkflags=CODEGEN_FLAGS,
                      mandatory=False, msg='Checking for ' + ' '.join(CODEGEN_FLAGS)):
        env.append_value('CXXFLAGS_TEVENTLIB', CODEGEN_FLAGS)
        env.append_value('LINKFLAGS_TEVENTLIB', CODEGEN_FLAGS)
    if conf.check_cxx(linkflags=['-nostdlib++'], mandatory=False,
                      msg='Checking for -nostdlib++'):
        env.LIB_LINKER = env.LINK_CXX
        env.append_value('LINKFLAGS_TEVENTLIB', ['-nostdlib++'])
    else:
        env.LIB_LINKER = env.LINK_CC

    env.CFLAGS_TESTPROG = list(PROG_CFLAGS)
    if env.SANITIZER == 'coverage':
        # Forked test children then leave through exit(), which writes
        # their counts (tests/common/tt_oom.h).
        env.append_value('CFLAGS_TESTPROG', ['-DTT_COVERAGE'])
    env.LINKFLAGS_TESTPROG = PROG_LINKFLAGS
    env.PYTHON = [sys.executable]


# --------------------------------------------------------------------------
# waf extensions

class vshlib(cxx.cxxshlib):
    """Link libNAME.so.X.Y.Z, then point libNAME.so.X and libNAME.so at it.

    Making all three names outputs of the link task means anything that
    'use's the library waits for the symlinks too.
    """
    def run(self):
        ret = super().run()
        if ret:
            return ret
        for link in self.outputs[1:]:
            path = link.abspath()
            if os.path.lexists(path):
                os.remove(path)
            os.symlink(self.outputs[0].name, path)
        return 0


@feature('vshlib')
@after_method('apply_link')
@before_method('process_use')
def vshlib_outputs(self):
    """Give the 'vshlib' link task its versioned names, SONAME, installs."""
    real_ver = self.soversion
    major = real_ver.split('.')[0]
    dev = self.path.find_or_declare('lib%s.so' % self.target)
    real = dev.parent.find_or_declare('%s.%s' % (dev.name, real_ver))
    soname = dev.parent.find_or_declare('%s.%s' % (dev.name, major))
    self.link_task.outputs = [real, soname, dev]
    self.env.LINK_CXX = self.env.LIB_LINKER
    self.env.append_value('LINKFLAGS', ['-Wl,-soname,' + soname.name])
    dest = getattr(self, 'lib_install_path', '${LIBDIR}')
    if dest:
        self.add_install_as(install_to='%s/%s' % (dest, real.name),
                            install_from=real, chmod=Utils.O755)
        for name in (soname.name, dev.name):
            self.add_symlink_as(install_to='%s/%s' % (dest, name),
                                install_from=real.name)


@feature('version_script')
@after_method('apply_link')
def add_version_script(self):
    """Link with the version script named by the 'version_script' attribute."""
    # Post the generator too: with `waf build --targets=<lib>` nothing else
    # would, and the link would look for a script never made.
    self.bld.get_tgen_by_name(self.target + '-vscript').post()
    node = self.path.find_or_declare(self.version_script)
    self.link_task.dep_nodes.append(node)
    self.env.append_value('LINKFLAGS', ['-Wl,--version-script=' + node.abspath()])


# --------------------------------------------------------------------------
# build helpers

def shared_library(bld, name, sources, soversion, abi_dir=None, use=(),
                   includes=()):
    """A C++ shared library lib<name>.so.<soversion> under the rules of
    doc/HACKING.md, installed to LIBDIR.  With abi_dir, its version script
    is generated from abi_dir/*.sigs.
    """
    features = ['cxx', 'vshlib', 'cxxshlib']
    extra = {}
    if abi_dir:
        vscript = '%s.vscript' % name
        # Every input is a task source, so a new sigs file also regenerates.
        inputs = [bld.path.find_node('buildtools/abi/mkversionscript.py'),
                  bld.path.find_node('buildtools/abi/abi.py')]
        inputs += bld.path.ant_glob(abi_dir + '/*.sigs')
        bld(rule='${PYTHON} ${SRC[0].abspath()} %s ${TGT}'
                 % bld.path.find_node(abi_dir).abspath(),
            source=inputs, target=vscript,
            cls_keyword=lambda task: 'Generating',
            cls_str=lambda task: task.outputs[0].relpath(),
            name=name + '-vscript')
        features.append('version_script')
        extra['version_script'] = vscript
    return bld(features=features, source=sources, target=name,
               soversion=soversion, includes=['include'] + list(includes),
               use=['TEVENTLIB', 'TALLOC'] + list(use),
               install_path=None,  # vshlib installs the file and its links
               **extra)


def program(bld, source, target, use=()):
    """A C program in bin/<target> using our libtevent (rpath to bin/)."""
    bld.tevent_programs.add(bld.bldnode.make_node(target).abspath())
    return bld(features='c cprogram', source=source, target=target,
               includes=['include'],
               use=['TESTPROG', 'tevent', 'TALLOC'] + list(use),
               rpath=[bld.bldnode.abspath()], install_path=None)


def system_program(bld, source, target, use=(), includes=()):
    """A C program in bin/<target> built against Debian's /usr/include/tevent.h
    and linked to the system libtevent.so.0 (never our include/ or bin/).
    Run it with LD_LIBRARY_PATH=bin or LD_PRELOAD to swap our library in.
    Returns None when the system libtevent is not installed.
    """
    if not bld.env.SYSTEM_TEVENT_LIB:
        return None
    bld.tevent_programs.add(bld.bldnode.make_node(target).abspath())
    return bld(features='c cprogram', source=source, target=target,
               includes=list(includes),
               use=['TESTPROG', 'TALLOC'] + list(use),
               ldflags=[bld.env.SYSTEM_TEVENT_LIB],  # after the objects
               install_path=None)


def tevent_library(bld):
    sources = bld.path.ant_glob('lib/tevent/*.cc') + bld.path.ant_glob('compat/*.cc')
    if not sources:
        bld.fatal('no sources in lib/tevent/*.cc')
    shared_library(bld, 'tevent', sources, VERSION, abi_dir='ABI',
                   includes=['lib/tevent'])

    bld(features='subst', source='tevent.pc.in', target='tevent.pc',
        install_path='${PKGCONFIGDIR}', PREFIX=bld.env.PREFIX,
        LIBDIR=pc_path(bld.env, bld.env.LIBDIR),
        INCLUDEDIR=pc_path(bld.env, bld.env.INCLUDEDIR), VERSION=VERSION)
    header = bld.path.find_node('include/tevent.h')
    if header:
        bld.install_files('${INCLUDEDIR}', [header])


def pc_path(env, path):
    """Spell PATH relative to ${prefix} in tevent.pc where possible."""
    prefix = env.PREFIX.rstrip('/')
    if prefix and (path == prefix or path.startswith(prefix + '/')):
        return '${prefix}' + path[len(prefix):]
    return path


def test_programs(bld):
    tests = bld.path.ant_glob('tests/test_*.c')
    if not tests:
        return
    if not bld.env.HAVE_CMOCKA:
        Logs.warn('cmocka not found at configure time: tests not built')
        return
    common = bld.path.ant_glob('tests/common/*.c')
    if common:
        bld(features='c cstlib', source=common, target='tests/ttcommon',
            name='ttcommon', includes=['include', 'tests/common'],
            use=['TESTPROG', 'TALLOC', 'CMOCKA'], install_path=None)
    for src in tests:
        tg = program(bld, [src], 'tests/' + src.name[:-2],
                     use=(['ttcommon'] if common else []) + ['CMOCKA'])
        tg.includes = ['include', 'tests/common']
    portable_test_programs(bld, tests, common)


# Suites whose every case also passes on Debian's libtevent 0.14.1.  Each is
# built a second time, as tests/test_<name>_014, against Debian's tevent.h
# and libtevent.so.0: `make test` runs that copy on our library too (a
# binary built for 0.14.1, not rebuilt), and `make test-upstream` runs it on
# 0.14.1 itself, which checks that the suite expects what upstream does.
# (A copy built against our header cannot load 0.14.1: our header maps
# tevent_req_create() and friends to entry points of 0.15.)  Not
# call_depth: built against 0.14's header it checks the size_t that 0.14's
# tevent_thread_call_depth_activate() kept up to date, which 0.15 and later
# (and so we) no longer do.
# Cases that check a fix of an upstream bug skip themselves there
# (TT_SKIP_ON_UPSTREAM in tests/common/tt.h).
PORTABLE_TESTS = ('context', 'debug', 'epoll', 'fd', 'fork', 'immediate',
                  'loop', 'profile', 'queue', 'req', 'req_stress', 'signal',
                  'tags', 'thread_proxy', 'threaded_context', 'timer', 'trace',
                  'util', 'wakeup', 'wrapper')


def portable_test_programs(bld, tests, common):
    if not bld.env.SYSTEM_TEVENT_LIB or not common:
        return
    # tests/common once more, against Debian's header (no include/ here).
    bld(features='c cstlib', source=common, target='tests/ttcommon_sys',
        name='ttcommon_sys', includes=['tests/common'],
        use=['TESTPROG', 'TALLOC', 'CMOCKA'], install_path=None)
    by_name = {src.name[len('test_'):-len('.c')]: src for src in tests}
    for name in PORTABLE_TESTS:
        src = by_name.get(name)
        if src is None:
            bld.fatal('PORTABLE_TESTS names tests/test_%s.c, which is missing'
                      % name)
        system_program(bld, [src], 'tests/test_%s_014' % name,
                       use=['ttcommon_sys', 'CMOCKA'],
                       includes=['tests/common'])


def example_programs(bld):
    for src in bld.path.ant_glob('doc/examples/*.c'):
        program(bld, [src], 'examples/' + src.name[:-2])


def bench_programs(bld):
    # bench programs may use libuv for comparison when it was found.
    for src in bld.path.ant_glob('bench/*.c'):
        program(bld, [src], 'bench/' + src.name[:-2], use=['LIBUV'])


# Subdirectories with a build file of their own (wscript_build).  Such a file
# is run with 'bld' in scope; the helpers above are reached as
#   from waflib import Context
#   W = Context.g_module      # W.program, W.system_program, W.shared_library
SUBDIRS = ['lib/threadpool', 'tests/upstream', 'tests/dropin', 'tests/diff',
           'bench']


def remove_stale_programs(bld):
    """Delete programs left in bin/{tests,examples,bench} by sources that
    were removed or renamed, so run-tests never runs a stale binary."""
    for sub in ('tests', 'examples', 'bench', 'upstream/tests', 'dropin',
                'diff'):
        folder = os.path.join(bld.bldnode.abspath(), sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if ('.' not in name and os.path.isfile(path)
                    and os.access(path, os.X_OK)
                    and path not in bld.tevent_programs):
                Logs.info('removing stale program %s', os.path.relpath(path))
                os.remove(path)


def build(bld):
    bld.tevent_programs = set()
    bld.add_post_fun(remove_stale_programs)
    tevent_library(bld)
    test_programs(bld)
    example_programs(bld)
    if not os.path.exists(os.path.join(bld.path.abspath(), 'bench',
                                       'wscript_build')):
        bench_programs(bld)
    for sub in SUBDIRS:
        if os.path.exists(os.path.join(bld.path.abspath(), sub,
                                       'wscript_build')):
            bld.recurse(sub)
