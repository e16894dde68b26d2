#!/usr/bin/env python3
"""Differential test: random programs run by CPython and by this library.

From a seed, generates programs over dict, list, set, Value and Namespace
(mode "manager") or over plain values (mode "object": repr, ==, <, <=, >,
>=, hash, +=, list.sort).  Values are None, bools, 64-bit ints at their
edges, floats (-0.0, inf, nan, 2**53 and 2**63 neighbours, ...), every kind
of str and bytes, and nested tuples, lists and dicts.  Each program runs in
CPython (a real multiprocessing.Manager(); the set is a plain set, since
Python 3.13 has no SetProxy) and in the C++ interpreter
(tests/differential/interp.cpp) on the untyped proxies, and every printed
line is compared: the repr() of each op's result or "!Type: message" for
an exception.  A program that differs is shrunk (ops, then items of list
literals) to a minimal reproducer and printed with its seed.

One modelled difference: ints here are 64-bit, so a `+=` whose int result
leaves 64 bits raises OverflowError in C++; the CPython side raises the
same OverflowError instead of growing a big int.

Run:  differential.py --interp BUILD/tests/diff_interp [--seed S] [--programs N]
      [--mode manager|object|both] [--only K] [--replay FILE]
Exit status 0: no differences; 1: differences (printed); 77: CPython too old.
"""
import argparse
import ast
import math
import multiprocessing
import multiprocessing.managers
import signal
import os
import random
import struct
import subprocess
import sys
import time

I64_MIN, I64_MAX = -2**63, 2**63 - 1
INT_EDGES = [0, 1, -1, 2, -2, 3, 7, 10, 255, 256, 2**31 - 1, 2**31, -2**31, 2**32, 2**52, 2**53 - 1, 2**53,
             2**53 + 1, -2**53 - 1, 2**61 - 1, 2**61, 2**62, I64_MAX, I64_MAX - 1, I64_MIN, I64_MIN + 1,
             10**18, -10**15, 314159, -314159]
_na = math.nextafter
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.0, 3.0, -2.5, 0.1, 0.3, 1e16, 1e-5, 1e-7, 1e22, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 2.0**53, 2.0**53 + 2, _na(2.0**53, 0), -2.0**53, 2.0**63, -2.0**63,
               _na(2.0**63, 0), _na(-2.0**63, 0), 2.0**64, -2.0**64, 2.0**61, 2.0**62, 1e300, -1e300,
               math.inf, -math.inf, math.nan, 123456789.125, 2.0**-1074 * 3, 1/3, -0.5, 1e15, 9007199254740993.0]
STR_POOL = ['', 'a', 'b', 'ab', 'ba', 'A', 'é', 'ß', '中文', '\U0001f600', '\x00', '\n', '\t', '\r', "'", '"', '\'"',
            '\\', '\u2028', '\ud800', '\udfff', '\x7f', '\x80', '\xa0', 'e\u0301', '\u200b', ' ', 'a b', '\x1b[0m',
            '\uffff', '\U0010ffff', '\ufb01', '\u0378', '\u00ad', 'nan', 'None', '1', '\u3000', 'x' * 40]
BYTES_POOL = [b'', b'a', b'b', b'ab', b'\x00', b'\xff', b"'", b'"', b'\'"', b'\\', b'\n\r\t', b'\x7f\x80',
              bytes(range(0, 256, 37)), b'nan']
NAMES = ['a', 'b', 'x', 'B', 'long_name', 'z9']


# ---- values, as Python source ----

def fsrc(x):
    if math.isnan(x):
        return "float('nan')"
    if math.isinf(x):
        return "float('inf')" if x > 0 else "float('-inf')"
    return repr(x)


def gen_int(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice(INT_EDGES)
    if r < 0.7:
        return rng.randint(-5, 10)
    if r < 0.85:
        return max(I64_MIN, min(I64_MAX, rng.choice(INT_EDGES) + rng.randint(-2, 2)))
    return rng.randint(I64_MIN, I64_MAX)


def gen_float(rng):
    r = rng.random()
    if r < 0.4:
        return rng.choice(FLOAT_EDGES)
    if r < 0.55:
        return float(rng.choice(INT_EDGES))
    if r < 0.7:
        return float(rng.randint(-5, 10))
    if r < 0.8:
        return rng.choice([0.25, 0.5, 0.75]) + rng.randint(-4, 4)
    if r < 0.9:
        return struct.unpack('<d', rng.getrandbits(64).to_bytes(8, 'little'))[0]
    return rng.uniform(-1e6, 1e6)


def gen_str(rng):
    r = rng.random()
    if r < 0.6:
        return rng.choice(STR_POOL)
    if r < 0.8:
        return rng.choice(STR_POOL) + rng.choice(STR_POOL)
    cps = []
    for _ in range(rng.randint(1, 4)):
        c = rng.choice([rng.randint(0, 0x7f), rng.randint(0x80, 0x7ff), rng.randint(0x800, 0xffff),
                        rng.randint(0x10000, 0x10ffff)])
        cps.append(chr(c))
    return ''.join(cps)


def gen_bytes(rng):
    if rng.random() < 0.7:
        return rng.choice(BYTES_POOL)
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4)))


def gen_scalar(rng):
    r = rng.random()
    if r < 0.05:
        return 'None'
    if r < 0.13:
        return rng.choice(['True', 'False'])
    if r < 0.45:
        return repr(gen_int(rng))
    if r < 0.75:
        return fsrc(gen_float(rng))
    if r < 0.92:
        return repr(gen_str(rng))
    return repr(gen_bytes(rng))


def gen_value(rng, depth=0, hashable=False):
    r = rng.random()
    if depth >= 2 or r < 0.8:
        return gen_scalar(rng)
    if r < 0.9 or hashable:
        items = [gen_value(rng, depth + 1, hashable) for _ in range(rng.randint(0, 3))]
        return '(' + ', '.join(items) + (',' if len(items) == 1 else '') + ')'
    if r < 0.96:
        return '[' + ', '.join(gen_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + ']'
    pairs = [gen_value(rng, depth + 1, True) + ': ' + gen_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return '{' + ', '.join(pairs) + '}'


def related(rng, src):
    """A value equal or close to src across types (1 -> 1.0, True; 2**53+1 -> 2.0**53 ...)."""
    try:
        v = eval(src, {'float': float})
    except Exception:
        return src
    if type(v) is bool:
        return rng.choice([repr(int(v)), repr(float(v)), repr(not v)])
    if type(v) is int:
        f = float(v)
        return rng.choice([fsrc(f), fsrc(math.nextafter(f, math.inf)), fsrc(math.nextafter(f, -math.inf)),
                           repr(max(I64_MIN, min(I64_MAX, v + rng.choice([-1, 1])))),
                           'True' if v == 1 else 'False' if v == 0 else repr(v)])
    if type(v) is float:
        if math.isfinite(v) and v == int(v) and I64_MIN <= int(v) <= I64_MAX:
            i = int(v)
            return rng.choice([repr(i), repr(max(I64_MIN, min(I64_MAX, i + rng.choice([-1, 1])))), fsrc(-v)])
        return rng.choice([fsrc(v), fsrc(-v) if not math.isnan(v) else "float('nan')"])
    if type(v) is tuple:
        return src
    return src


def make_pool(rng, n=6):
    pool = [gen_value(rng) for _ in range(n)]
    for _ in range(n // 2):
        pool.append(related(rng, rng.choice(pool)))
    return pool


def pick(rng, pool, p_new=0.25):
    if rng.random() < p_new:
        return gen_value(rng)
    return rng.choice(pool)


def seq_literal(rng, pool, lo=0, hi=4, hashable=False):
    items = []
    for _ in range(rng.randint(lo, hi)):
        items.append(pick(rng, pool) if not hashable else rng.choice([p for p in pool if is_hashable_src(p)] or ['0']))
    return '[' + ', '.join(items) + ']'


def is_hashable_src(src):
    try:
        hash(eval(src, {'float': float}))
        return True
    except Exception:
        return False


def sort_list_literal(rng, pool):
    """A list for sort: small and mixed, or long with runs (merges, galloping) and nan."""
    if rng.random() < 0.6:
        return seq_literal(rng, pool, 0, 10)
    n = rng.randint(40, 260)
    items = []
    while len(items) < n:
        run = rng.randint(1, 40)
        start = rng.randint(-50, 50)
        step = rng.choice([1, -1, 0, 2, -3])
        for k in range(run):
            items.append(repr(start + step * k) if rng.random() < 0.8 else fsrc(start + step * k + 0.5))
        if rng.random() < 0.3:
            items.append("float('nan')")
    if rng.random() < 0.15:
        items.insert(rng.randrange(len(items) + 1), rng.choice(["'a'", 'None', '(1,)', "b'x'"]))
    return '[' + ', '.join(items[:n]) + ']'


def gen_manager_program(rng):
    pool = make_pool(rng)
    focus = rng.choice(['d', 'd', 'l', 'l', 's', 'v', 'n', 'mixed'])
    ops = []
    used = set()
    for _ in range(rng.randint(3, 24)):
        t = focus if focus != 'mixed' and rng.random() < 0.85 else rng.choice('ddllsvn')
        used.add(t)
        k = lambda: pick(rng, pool)  # noqa: E731
        if t == 'd':
            op = rng.choice(['set'] * 6 + ['get', 'get', 'del', 'in', 'in', 'len', 'getd', 'getd2', 'pop', 'pop2',
                                           'popitem', 'setdefault', 'setdefault2', 'update', 'clear', 'keys',
                                           'values', 'items', 'copy', 'iadd', 'iadd', 'print'])
            args = {'set': 2, 'get': 1, 'del': 1, 'in': 1, 'getd': 1, 'getd2': 2, 'pop': 1, 'pop2': 2,
                    'setdefault': 1, 'setdefault2': 2, 'iadd': 2}.get(op, 0)
            if op == 'update':
                pairs = ['(' + k() + ', ' + k() + ')' for _ in range(rng.randint(0, 3))]
                ops.append('d.update\t[' + ', '.join(pairs) + ']')
            else:
                ops.append('\t'.join(['d.' + op] + [k() for _ in range(args)]))
        elif t == 'l':
            op = rng.choice(['append'] * 5 + ['extend', 'iadd', 'insert', 'pop', 'pop1', 'remove', 'index', 'count',
                                              'in', 'reverse', 'sort', 'sort', 'get', 'set', 'del', 'len', 'slice',
                                              'imul', 'print'])
            idx = lambda: repr(rng.randint(-4, 5))  # noqa: E731
            if op in ('append', 'remove', 'index', 'count', 'in'):
                ops.append('l.%s\t%s' % (op, k()))
            elif op in ('extend', 'iadd'):
                ops.append('l.%s\t%s' % (op, seq_literal(rng, pool, 0, 5)))
            elif op == 'insert' or op == 'set':
                ops.append('l.%s\t%s\t%s' % (op, idx(), k()))
            elif op in ('pop1', 'get', 'del'):
                ops.append('l.%s\t%s' % (op, idx()))
            elif op == 'slice':
                ops.append('l.slice\t%s\t%s' % (idx(), idx()))
            elif op == 'imul':
                ops.append('l.imul\t%d' % rng.choice([-1, 0, 1, 2, 2, 3]))
            else:
                ops.append('l.' + op)
        elif t == 's':
            op = rng.choice(['add'] * 5 + ['discard', 'remove', 'in', 'in', 'len', 'clear', 'update', 'iupdate',
                                           'dupdate', 'supdate', 'issubset', 'issuperset', 'isdisjoint', 'print'])
            if op in ('add', 'discard', 'remove', 'in'):
                ops.append('s.%s\t%s' % (op, k()))
            elif op in ('update', 'iupdate', 'dupdate', 'supdate', 'issubset', 'issuperset', 'isdisjoint'):
                ops.append('s.%s\t%s' % (op, seq_literal(rng, pool, 0, 5)))
            else:
                ops.append('s.' + op)
        elif t == 'v':
            op = rng.choice(['set', 'set', 'get', 'iadd', 'iadd'])
            ops.append('v.' + op + ('' if op == 'get' else '\t' + k()))
        else:
            op = rng.choice(['set', 'set', 'get', 'del', 'print'])
            name = rng.choice(NAMES)
            ops.append({'set': 'n.set\t%s\t%s' % (name, k()), 'get': 'n.get\t' + name, 'del': 'n.del\t' + name,
                        'print': 'n.print'}[op])
    final = {'d': 'd.print', 'l': 'l.print', 's': 's.print', 'v': 'v.get', 'n': 'n.print'}
    if all(set_arg_exact(o) for o in ops):
        final['s'] = 's.oprint'
    ops += [final[t] for t in 'dlsvn' if t in used]
    return ops


def set_arg_exact(op):
    """Whether an op leaves only elements with a fixed CPython hash in the
    set, so that its iteration order is CPython's and can be compared."""
    name, _, arg = op.partition('\t')
    if name not in ('s.add', 's.update', 's.supdate'):
        return True
    try:
        v = ev(arg)
    except Exception:
        return False
    return exact_hash(v) if name == 's.add' else type(v) in (list, tuple) and all(exact_hash(x) for x in v)


def gen_object_program(rng):
    pool = make_pool(rng)
    ops = []
    for _ in range(rng.randint(3, 20)):
        op = rng.choice(['repr', 'eq', 'eq', 'ne', 'lt', 'lt', 'le', 'gt', 'ge', 'hash', 'hash', 'hasheq', 'hasheq',
                         'iadd', 'iadd', 'add', 'sort'])
        if op == 'repr' or op == 'hash':
            ops.append('o.%s\t%s' % (op, pick(rng, pool)))
        elif op == 'sort':
            ops.append('o.sort\t' + sort_list_literal(rng, pool))
        elif op == 'hasheq':
            a = rng.choice(pool)
            ops.append('o.hasheq\t%s\t%s' % (a, related(rng, a)))
        else:
            a = pick(rng, pool)
            b = related(rng, a) if rng.random() < 0.3 else pick(rng, pool)
            ops.append('o.%s\t%s\t%s' % (op, a, b))
    return ops


def gen_program(seed, mode, k):
    rng = random.Random('%s:%s:%d' % (seed, mode, k))
    return gen_manager_program(rng) if mode == 'manager' else gen_object_program(rng)


# ---- the CPython side ----

GLOBALS = {'__builtins__': {}, 'float': float}


def ev(src):
    return eval(src, GLOBALS)


def fmt_exc(e):
    return '!%s: %s' % (type(e).__name__, e)


def checked(x):
    """The one modelled difference: ints are 64-bit in C++."""
    if type(x) is int and not I64_MIN <= x <= I64_MAX:
        raise OverflowError('int result does not fit in 64 bits')
    return x


def iadd(x, y):
    x += y
    return checked(x)


def exact_hash(x):
    if x is None or type(x) in (bool, int):
        return True
    if type(x) is float:
        return not math.isnan(x)
    if type(x) is tuple:
        return all(exact_hash(i) for i in x)
    return False


def set_print(s):
    return '{' + ', '.join(sorted(repr(x) for x in s)) + '}'


def py_object_op(op, a):
    if op == 'o.repr':
        return repr(ev(a[0]))
    if op in ('o.eq', 'o.ne', 'o.lt', 'o.le', 'o.gt', 'o.ge'):
        x, y = ev(a[0]), ev(a[1])
        return repr({'o.eq': lambda: x == y, 'o.ne': lambda: x != y, 'o.lt': lambda: x < y,
                     'o.le': lambda: x <= y, 'o.gt': lambda: x > y, 'o.ge': lambda: x >= y}[op]())
    if op == 'o.hash':
        x = ev(a[0])
        h = hash(x)
        return str(h) if exact_hash(x) else 'hashable'
    if op == 'o.hasheq':
        x, y = ev(a[0]), ev(a[1])
        if not x == y:
            return 'ne'
        return repr(hash(x) == hash(y))
    if op == 'o.iadd':
        return repr(iadd(ev(a[0]), ev(a[1])))
    if op == 'o.add':
        return repr(checked(ev(a[0]) + ev(a[1])))
    if op == 'o.sort':
        x = ev(a[0])
        try:
            x.sort()
        except Exception as e:
            return fmt_exc(e) + ' ~ ' + repr(x)
        return repr(x)
    raise RuntimeError('unknown op ' + op)


def py_op(c, op, a):
    if op.startswith('o.'):
        return py_object_op(op, a)
    d, l, s, v, n = c
    if op.startswith('d.'):
        m = op[2:]
        if m == 'set':
            d[ev(a[0])] = ev(a[1])
            return 'None'
        if m == 'get':
            return repr(d[ev(a[0])])
        if m == 'del':
            del d[ev(a[0])]
            return 'None'
        if m == 'in':
            return repr(ev(a[0]) in d)
        if m == 'len':
            return repr(len(d))
        if m == 'getd':
            return repr(d.get(ev(a[0])))
        if m == 'getd2':
            return repr(d.get(ev(a[0]), ev(a[1])))
        if m == 'pop':
            return repr(d.pop(ev(a[0])))
        if m == 'pop2':
            return repr(d.pop(ev(a[0]), ev(a[1])))
        if m == 'popitem':
            return repr(d.popitem())
        if m == 'setdefault':
            return repr(d.setdefault(ev(a[0])))
        if m == 'setdefault2':
            return repr(d.setdefault(ev(a[0]), ev(a[1])))
        if m == 'update':
            d.update(ev(a[0]))
            return 'None'
        if m == 'clear':
            d.clear()
            return 'None'
        if m in ('keys', 'values', 'items'):
            return repr(list(getattr(d, m)()))
        if m == 'copy':
            return repr(d.copy())
        if m == 'iadd':  # d[k] += v: __getitem__, +=, __setitem__
            k = ev(a[0])
            x = iadd(d[k], ev(a[1]))
            d[k] = x
            return repr(x)
        if m == 'print':
            return str(d)
    if op.startswith('l.'):
        m = op[2:]
        if m == 'append':
            l.append(ev(a[0]))
        elif m == 'extend':
            l.extend(ev(a[0]))
        elif m == 'iadd':
            l += ev(a[0])
        elif m == 'insert':
            l.insert(ev(a[0]), ev(a[1]))
        elif m == 'pop':
            return repr(l.pop())
        elif m == 'pop1':
            return repr(l.pop(ev(a[0])))
        elif m == 'remove':
            l.remove(ev(a[0]))
        elif m == 'index':
            return repr(l.index(ev(a[0])))
        elif m == 'count':
            return repr(l.count(ev(a[0])))
        elif m == 'in':
            return repr(ev(a[0]) in l)
        elif m == 'reverse':
            l.reverse()
        elif m == 'sort':
            l.sort()
        elif m == 'get':
            return repr(l[ev(a[0])])
        elif m == 'set':
            l[ev(a[0])] = ev(a[1])
        elif m == 'del':
            del l[ev(a[0])]
        elif m == 'len':
            return repr(len(l))
        elif m == 'slice':
            return repr(l[ev(a[0]):ev(a[1])])
        elif m == 'imul':
            l *= ev(a[0])
        elif m == 'print':
            return str(l)
        else:
            raise RuntimeError('unknown op ' + op)
        return 'None'
    if op.startswith('s.'):
        m = op[2:]
        if m in ('add', 'discard', 'remove'):
            getattr(s, m)(ev(a[0]))
        elif m == 'in':
            return repr(ev(a[0]) in s)
        elif m == 'len':
            return repr(len(s))
        elif m == 'clear':
            s.clear()
        elif m in ('update', 'iupdate', 'dupdate', 'supdate'):
            name = {'update': 'update', 'iupdate': 'intersection_update', 'dupdate': 'difference_update',
                    'supdate': 'symmetric_difference_update'}[m]
            getattr(s, name)(ev(a[0]))
        elif m in ('issubset', 'issuperset', 'isdisjoint'):
            return repr(getattr(s, m)(ev(a[0])))
        elif m == 'print':
            return set_print(s)
        elif m == 'oprint':  # iteration order (only fixed hashes were added)
            return '{' + ', '.join(repr(x) for x in s) + '}'
        else:
            raise RuntimeError('unknown op ' + op)
        return 'None'
    if op == 'v.set':
        v.value = ev(a[0])
        return 'None'
    if op == 'v.get':
        return repr(v.value)
    if op == 'v.iadd':
        x = iadd(v.value, ev(a[0]))
        v.value = x
        return repr(x)
    if op == 'n.set':
        setattr(n, a[0], ev(a[1]))
        return 'None'
    if op == 'n.get':
        return repr(getattr(n, a[0]))
    if op == 'n.del':
        delattr(n, a[0])
        return 'None'
    if op == 'n.print':
        return str(n)
    raise RuntimeError('unknown op ' + op)


def die_with_parent():
    """Runs in CPython's manager process: it goes when this script goes, even by SIGKILL."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class CPython:
    def __init__(self):
        self.manager = None

    def run(self, mode, programs):
        if mode == 'manager' and self.manager is None:
            # Manager(), started with an initializer so its server cannot outlive us
            self.manager = multiprocessing.managers.SyncManager()
            self.manager.start(initializer=die_with_parent)
        outs = []
        for prog in programs:
            m = self.manager
            c = (m.dict(), m.list(), set(), m.Value('O', None), m.Namespace()) if mode == 'manager' else None
            lines = []
            for line in prog:
                f = line.split('\t')
                try:
                    lines.append(py_op(c, f[0], f[1:]))
                except Exception as e:
                    lines.append(fmt_exc(e))
            outs.append(lines)
            del c
        return outs

    def close(self):
        if self.manager is not None:
            self.manager.shutdown()


# ---- the C++ side ----

class Cpp:
    def __init__(self, interp):
        self.interp = interp

    def run(self, mode, programs):
        text = ''.join(''.join(op + '\n' for op in prog) + '\n' for prog in programs)
        cmd = [self.interp] + (['--object'] if mode == 'object' else [])
        p = subprocess.run(cmd, input=text.encode('utf-8', 'surrogatepass'), capture_output=True,
                           timeout=60 + 0.05 * sum(len(p) for p in programs))
        out = p.stdout.decode('utf-8', 'backslashreplace').split('\n')
        progs, cur = [], []
        for line in out:
            if line == '---':
                progs.append(cur)
                cur = []
            else:
                cur.append(line)
        if len(progs) != len(programs) or p.returncode != 0:
            err = p.stderr.decode('utf-8', 'backslashreplace')[-2000:]
            raise RuntimeError('interpreter exited %d after %d of %d programs: %s' %
                               (p.returncode, len(progs), len(programs), err))
        return progs


# ---- comparing and shrinking ----

def list_items(src):
    """The item sources of a list literal, or None."""
    try:
        tree = ast.parse(src, mode='eval').body
    except SyntaxError:
        return None
    if not isinstance(tree, ast.List):
        return None
    return [ast.get_source_segment(src, e) for e in tree.elts]


class Checker:
    def __init__(self, interp):
        self.py = CPython()
        self.cpp = Cpp(interp)

    def differ(self, mode, programs):
        a = self.py.run(mode, programs)
        b = self.cpp.run(mode, programs)
        return [x != y for x, y in zip(a, b)], a, b

    def shrink(self, mode, prog):
        cur = list(prog)
        # 1. delete ops, in chunks that halve
        chunk = max(1, len(cur) // 2)
        while True:
            cands = [cur[:i] + cur[i + chunk:] for i in range(0, len(cur), chunk)]
            cands = [c for c in cands if c]
            found = None
            if cands:
                res, _, _ = self.differ(mode, cands)
                found = next((c for c, r in zip(cands, res) if r), None)
            if found is not None:
                cur = found
                chunk = max(1, min(chunk, len(cur) // 2))
            elif chunk > 1:
                chunk //= 2
            else:
                break
        # 2. delete items of list literals (long sort inputs)
        for i in range(len(cur)):
            fields = cur[i].split('\t')
            for j in range(1, len(fields)):
                items = list_items(fields[j])
                if items is None:
                    continue
                chunk = max(1, len(items) // 2)
                while items:
                    cands = []
                    for s in range(0, len(items), chunk):
                        rest = items[:s] + items[s + chunk:]
                        f2 = fields[:j] + ['[' + ', '.join(rest) + ']'] + fields[j + 1:]
                        cands.append((rest, cur[:i] + ['\t'.join(f2)] + cur[i + 1:]))
                    res, _, _ = self.differ(mode, [c for _, c in cands])
                    hit = next((rc for rc, r in zip(cands, res) if r), None)
                    if hit is not None:
                        items, cur = hit
                        fields = cur[i].split('\t')
                        chunk = max(1, min(chunk, len(items) // 2))
                    elif chunk > 1:
                        chunk //= 2
                    else:
                        break
        return cur


def show(prog, a, b):
    out = []
    for k, op in enumerate(prog):
        pa = a[k] if k < len(a) else '<missing>'
        pb = b[k] if k < len(b) else '<missing>'
        mark = '   ' if pa == pb else '!! '
        out.append('  %s%s' % (mark, op.replace('\t', '  ')))
        if pa == pb:
            out.append('        both:    %s' % pa)
        else:
            out.append('        CPython: %s' % pa)
            out.append('        C++:     %s' % pb)
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--interp', required=True, help='the diff_interp binary')
    ap.add_argument('--seed', default=os.environ.get('MP_DIFF_SEED'))
    ap.add_argument('--programs', type=int, default=300, help='programs per mode')
    ap.add_argument('--mode', choices=['manager', 'object', 'both'], default='both')
    ap.add_argument('--only', type=int, help='run only program K of the seed (to replay one)')
    ap.add_argument('--replay', help='run the ops in this file (one per line) as one program')
    ap.add_argument('--batch', type=int, default=500, help='programs per interpreter run')
    ap.add_argument('--max-reports', type=int, default=5)
    args = ap.parse_args()
    if sys.version_info < (3, 13):
        print('differential: needs CPython 3.13 (PYENV_VERSION=3.13.0 python3), have %s; skipped' % sys.version.split()[0])
        return 77
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the manager is shut down
    seed = args.seed if args.seed is not None else str(int(time.time() * 1000) % 10**9)
    modes = ['manager', 'object'] if args.mode == 'both' else [args.mode]
    print('differential: seed %s, %d programs per mode (%s); replay: scripts/differential --seed %s --programs %d --mode %s'
          % (seed, args.programs, '+'.join(modes), seed, args.programs, args.mode), flush=True)
    checker = Checker(args.interp)
    total_diff = 0
    start = time.time()
    try:
        if args.replay:
            with open(args.replay, encoding='utf-8') as f:
                prog = [line.rstrip('\n') for line in f if line.strip()]
            mode = 'manager' if any(not op.startswith('o.') for op in prog) else 'object'
            res, a, b = checker.differ(mode, [prog])
            print(show(prog, a[0], b[0]))
            return 1 if res[0] else 0
        for mode in modes:
            ks = [args.only] if args.only is not None else list(range(args.programs))
            diffs = []
            for b0 in range(0, len(ks), args.batch):
                batch = ks[b0:b0 + args.batch]
                progs = [gen_program(seed, mode, k) for k in batch]
                res, _, _ = checker.differ(mode, progs)
                diffs += [(k, p) for k, p, r in zip(batch, progs, res) if r]
            nops = sum(len(gen_program(seed, mode, k)) for k in ks[:50]) / max(1, min(50, len(ks)))
            print('%s: %d programs (~%.0f ops each), %d differ' % (mode, len(ks), nops, len(diffs)), flush=True)
            total_diff += len(diffs)
            for n, (k, prog) in enumerate(diffs[:args.max_reports]):
                small = checker.shrink(mode, prog)
                _, a, b = checker.differ(mode, [small])
                print('\n%s program %d of seed %s differs (%d ops; shrunk to %d; replay: --seed %s --mode %s --only %d):'
                      % (mode, k, seed, len(prog), len(small), seed, mode, k))
                print(show(small, a[0], b[0]), flush=True)
            if len(diffs) > args.max_reports:
                print('(%d more not shown)' % (len(diffs) - args.max_reports))
    finally:
        checker.py.close()
    print('differential: seed %s: %d differing programs (%.1f s)' % (seed, total_diff, time.time() - start))
    return 1 if total_diff else 0


if __name__ == '__main__':
    sys.exit(main())
