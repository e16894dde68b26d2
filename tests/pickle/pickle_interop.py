"""The pickle codec (detail/pickle.hpp) against CPython's own pickle.

CPython pickles each value with every protocol it can; pickle_tool reads
it, writes it back with protocol 4 and prints its repr as a C++ object.
CPython then loads what C++ wrote: it must be the value it started from
(same types, deep), and the C++ repr must be Python's repr.  Inputs the
reader must refuse are checked for the reason it gives.

  pickle_interop.py PICKLE_TOOL [--seed S] [--random N]
"""
import math
import os
import pickle
import random
import subprocess
import sys
from multiprocessing.managers import RemoteError, Token


def same(a, b):
    """Deep equality that also checks types (1 != True != 1.0 here)."""
    if isinstance(a, bytearray):
        a = bytes(a)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if isinstance(a, Token):
        return (a.typeid, a.address, a.id) == (b.typeid, b.address, b.id)
    return a == b


def plain(v):
    """True if multiprocessing::object can hold v (no set, no instance)."""
    if isinstance(v, (list, tuple)):
        return all(plain(x) for x in v)
    if isinstance(v, dict):
        return all(plain(k) and plain(x) for k, x in v.items())
    return v is None or isinstance(v, (bool, int, float, str, bytes, bytearray))


def as_bytes(v):
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, list):
        return [as_bytes(x) for x in v]
    if isinstance(v, tuple):
        return tuple(as_bytes(x) for x in v)
    if isinstance(v, dict):
        return {as_bytes(k): as_bytes(x) for k, x in v.items()}
    return v


def fixed_values():
    shared = [1, 2]
    s = "shared" * 50
    big = {i: str(i) for i in range(1500)}
    return [
        None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -129, -32768, 2**31 - 1, -2**31, 2**31,
        -2**31 - 1, 2**40, 2**63 - 1, -2**63, 0.0, -0.0, 1.5, 1e16, 1e-7, 0.1 + 0.2, float("inf"),
        -float("inf"), float("nan"), 5e-324, 1.7976931348623157e308,
        "", "a", "é", "中文", "\U0001f600", "x" * 300, "\n\t'\"\\", "\x00\x7f\x80\x9f", "\u2028",
        b"", b"\x00\xff", b"x" * 300, bytearray(b"ab"), bytearray(),
        (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), tuple(range(10)),
        [], [1], list(range(2500)), [[[]]], {}, {"a": 1}, big, {1: "x", 1.5: "y", (1, 2): "z", None: 0, True: 1},
        {"nested": {"deeper": [1, {"x": (b"y",)}]}},
        set(), {1, 2, 3}, {"a", "b"}, set(range(1200)), frozenset(), frozenset({1, (2, 3)}), [{1}, frozenset({2})],
        [shared, shared, (shared,)], [s, s, s], {"k": s, "j": s},
        KeyError("k"), ValueError("bad", 3), RemoteError("traceback text"), IndexError(),
        Token("dict", "/tmp/pymp-x/listener-1", "7f3a"), Token("Queue", ("127.0.0.1", 5000), "1"),
        [KeyError("inner"), {"t": Token("list", "/a", "2")}],
    ]


def random_value(rng, depth=0):
    k = rng.randrange(12 if depth < 4 else 7)
    if k == 0: return None
    if k == 1: return rng.random() < 0.5
    if k == 2: return rng.choice([rng.randrange(-300, 300), rng.randrange(-2**63, 2**63), rng.randrange(-2**33, 2**33)])
    if k == 3: return rng.choice([rng.uniform(-1e6, 1e6), rng.random(), float(rng.randrange(-9, 9)), 1e300 * rng.random()])
    if k == 4: return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x800), rng.randrange(0x800, 0xd800), rng.randrange(0x10000, 0x10ffff)])) for _ in range(rng.randrange(0, 20)))
    if k == 5: return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
    if k == 6: return rng.randrange(-5, 5)
    if k == 7: return tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6)))
    if k == 8: return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    if k == 9: return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))}
    if k == 10: return {random_key(rng) for _ in range(rng.randrange(0, 6))}
    return frozenset(random_key(rng) for _ in range(rng.randrange(0, 6)))


def random_key(rng):
    return rng.choice([rng.randrange(-1000, 1000), "k%d" % rng.randrange(100), (rng.randrange(9), "t"), 0.5 * rng.randrange(9), None])


# Each must be refused; the message must contain the text given.
def refused():
    l = []
    l.append(l)
    d = {}
    d["self"] = d
    cases = [
        (pickle.dumps(os.system, 4), "forbidden"),
        (pickle.dumps(os.system, 2), "forbidden"),
        (pickle.dumps(2**64, 4), "beyond 64 bits"),
        (pickle.dumps(-2**63 - 1, 2), "beyond 64 bits"),
        (pickle.dumps(l, 4), "recursive"),
        (pickle.dumps(d, 2), "recursive"),
        (pickle.dumps(pickle.PickleBuffer(b"abc"), 5, buffer_callback=lambda b: False), "out-of-band"),
        (pickle.dumps([1, 2, 3], 4)[:-1], "truncated"),
        (pickle.dumps("x" * 10, 4)[:8], "truncated"),
        (b"\x80\x04\x8d" + (2**60).to_bytes(8, "little") + b"abc.", "truncated"),
        (b"\x80\x04X\xff\xff\xff\xffab.", "truncated"),
        (b"\x80\x04\x8c\x02\xff\xfe.", "UTF-8"),
        (b"\x80\x04" + b"]" * 600 + b"a" * 599 + b".", "nested deeper"),
        (b"\x80\x04h\x05.", "never stored"),
        (b"\x80\x06N.", "protocol"),
        (b"\x80\x04N", "truncated"),
        (b"\x80\x04NN.", "stack"),
        (b"\x80\x04a.", "underflow"),
        (b"\x80\x04Ne.", "MARK"),
        # 2**25-fold expansion through memo references: refused, not built.
        (b"\x80\x04]\x940" + b"0".join(b"h%ch%c\x86\x94" % (i, i) for i in range(25)) + b".", "expand beyond"),
    ]
    # A user class instance: its global is not allowed.
    cases.append((b"\x80\x04\x8c\x08__main__\x8c\x03Foo\x93)\x81.", "forbidden"))
    return cases


def main():
    if sys.version_info < (3, 13):
        print("pickle_interop: needs CPython 3.13+ (PYENV_VERSION=3.13.0); skipped")
        return 77
    tool = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else random.randrange(2**32)
    n = int(sys.argv[sys.argv.index("--random") + 1]) if "--random" in sys.argv else 400
    print("pickle_interop: seed %d, %d random values" % (seed, n))
    rng = random.Random(seed)
    values = fixed_values() + [random_value(rng) for _ in range(n)]
    inputs, expect = [], []
    for v in values:
        for proto in range(0, 6):
            try:
                data = pickle.dumps(v, proto)
            except Exception:
                continue
            # Protocols 0 and 1 (older than the manager's) are read for what
            # they write with the same opcodes as later ones; their text str
            # (UNICODE) and copyreg reconstruction are refused.
            if proto < 2 and any(isinstance(x, (str, bytes, bytearray, Token, BaseException)) for x in walk(v)):
                continue
            inputs.append(data)
            expect.append(("ok", v, proto))
    for data, why in refused():
        inputs.append(data)
        expect.append(("err", why, None))
    out = subprocess.run([tool], input="".join(d.hex() + "\n" for d in inputs), capture_output=True, text=True,
                         timeout=240)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != len(inputs):
        print("pickle_tool failed (rc %d, %d of %d lines): %s" % (out.returncode, len(lines), len(inputs), out.stderr[-2000:]))
        return 1
    bad = 0
    for data, (what, v, proto), line in zip(inputs, expect, lines):
        if what == "err":
            if not (line.startswith("ERR ") and v in line):
                bad += 1
                print("should be refused with %r: %s\n  got %s" % (v, data[:80], line[:300]))
            continue
        if not line.startswith("OK "):
            bad += 1
            print("protocol %d of %r refused: %s" % (proto, v if len(repr(v)) < 300 else repr(v)[:300], line))
            continue
        _, hexed, crepr = line.split(" ", 2)
        back = pickle.loads(bytes.fromhex(hexed))
        if not same(v, back):
            bad += 1
            print("protocol %d of %r came back as %r" % (proto, v, back))
            continue
        if plain(v):
            want = repr(as_bytes(v))
            if crepr != want:
                bad += 1
                print("protocol %d: C++ repr %s\n         Python repr %s" % (proto, crepr[:300], want[:300]))
        elif crepr != "-":
            bad += 1
            print("protocol %d of %r: C++ made an object of it: %s" % (proto, v, crepr))
    print("pickle_interop: %d pickles read and written back, %d refused as they must be, %d wrong" %
          (sum(1 for e in expect if e[0] == "ok"), sum(1 for e in expect if e[0] == "err"), bad))
    return 1 if bad else 0


def walk(v):
    yield v
    if isinstance(v, (list, tuple, set, frozenset)):
        for x in v:
            yield from walk(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from walk(k)
            yield from walk(x)
    elif isinstance(v, BaseException):
        yield from walk(v.args)


if __name__ == "__main__":
    sys.exit(main())
