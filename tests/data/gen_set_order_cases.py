"""Writes set_order_cases.txt: random programs over one set, run by CPython.

Run with CPython 3.13 (PYENV_VERSION=3.13.0 python3 gen_set_order_cases.py).
Elements are those whose hash CPython fixes (None, bools, ints, floats but
nan, tuples of those), so iteration order is CPython's table order.  Values
use gen_repr_cases.py's prefix code.  Each program is

  P<TAB><initial list>
  <op><TAB><argument or ->TAB><FNV-1a of repr(s) after the op, hex><TAB><pop result or ->
  E<TAB><repr(s)>

Ops: add, discard, pop, clear, update, iu, du, su (the *_update methods
with a list), union, inter, diff, sym (the methods with a list; s becomes
the result), copy, rt (set(list(s)), what pickling does), ior, iand, isub,
ixor, or, and, sub, xor, ror, rand, rsub, rxor (with set(list)),
dict (s = set(dict.fromkeys(list))).
"""
import random, struct

def enc(v):
    if v is None: return "N"
    if v is True: return "T"
    if v is False: return "F"
    if isinstance(v, int): return "i%d;" % v
    if isinstance(v, float): return "f" + struct.pack(">d", v).hex()
    if isinstance(v, tuple): return "t%d:" % len(v) + "".join(enc(x) for x in v)
    if isinstance(v, list): return "l%d:" % len(v) + "".join(enc(x) for x in v)
    raise TypeError(v)

def fnv(s):
    h = 1469598103934665603
    for c in s.encode():
        h ^= c
        h = (h * 1099511628211) & (2**64 - 1)
    return "%016x" % h

def key(rng):
    c = rng.random()
    if c < 0.35: return rng.randint(-20, 40)
    if c < 0.45: return rng.randint(-2**63, 2**63 - 1)
    if c < 0.55: return rng.choice([0.5, -0.5, 1.0, 2.5, 1e300, -1e-300, float("inf"), float("-inf"), 0.0, -0.0, 3.0, 2.0**61])
    if c < 0.6: return rng.choice([None, True, False, -1, -2, 2**61 - 1, 2**61])
    if c < 0.7: return (rng.randint(-3, 3), rng.choice([None, 1.5, (1, 2)]))
    if c < 0.85: return rng.randint(0, 600) * 8
    return rng.randint(-600, 600) * 1024

def seq(rng): return [key(rng) for _ in range(rng.randint(0, rng.choice([3, 8, 12, 30])))]

BINOPS = {"or": lambda a, b: a | b, "and": lambda a, b: a & b, "sub": lambda a, b: a - b, "xor": lambda a, b: a ^ b,
          "ror": lambda a, b: b | a, "rand": lambda a, b: b & a, "rsub": lambda a, b: b - a, "rxor": lambda a, b: b ^ a}

rng = random.Random(20261125)
out = []
for prog in range(120):
    init = seq(rng)
    s = set(init)
    out.append("P\t" + enc(init))
    for _ in range(rng.choice([10, 30, 40])):
        op = rng.choice(["add"] * 8 + ["discard"] * 4 + ["pop"] * 2 + ["clear", "update", "iu", "du", "su", "union",
                        "inter", "diff", "sym", "copy", "rt", "ior", "iand", "isub", "ixor", "dict"] + list(BINOPS))
        arg, popped = None, "-"
        if op == "add": arg = key(rng); s.add(arg)
        elif op == "discard":
            arg = rng.choice(list(s)) if s and rng.random() < 0.7 else key(rng); s.discard(arg)
        elif op == "pop":
            if not s: continue
            popped = repr(s.pop())
        elif op == "clear":
            if rng.random() < 0.5: continue
            s.clear()
        elif op == "copy": s = s.copy()
        elif op == "rt": s = set(list(s))
        else:
            arg = seq(rng)
            if op == "update": s.update(arg)
            elif op == "iu": s.intersection_update(arg)
            elif op == "du": s.difference_update(arg)
            elif op == "su": s.symmetric_difference_update(arg)
            elif op == "union": s = s.union(arg)
            elif op == "inter": s = s.intersection(arg)
            elif op == "diff": s = s.difference(arg)
            elif op == "sym": s = s.symmetric_difference(arg)
            elif op == "ior": s |= set(arg)
            elif op == "iand": s &= set(arg)
            elif op == "isub": s -= set(arg)
            elif op == "ixor": s ^= set(arg)
            elif op == "dict": s = set(dict.fromkeys(arg))
            else: s = BINOPS[op](s, set(arg))
        out.append("%s\t%s\t%s\t%s" % (op, "-" if arg is None else enc(arg), fnv(repr(s)), popped))
    out.append("E\t" + repr(s))
open(__file__.replace("gen_set_order_cases.py", "set_order_cases.txt"), "w").write("\n".join(out) + "\n")
