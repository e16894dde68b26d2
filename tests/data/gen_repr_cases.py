"""Writes repr_cases.txt: values and the repr() CPython prints for them.

Each line is `<value>\t<hex of repr's UTF-8>`, the value in a prefix code
the C++ test decodes without a Python parser:
  N  None      T / F  bools     i<decimal>;  int    f<16 hex digits>  float bits
  s<hex>;  str (UTF-8)          b<hex>;  bytes
  t<n>: items   l<n>: items     d<n>: key value ...
"""
import random, struct, sys

def enc(v):
    if v is None: return "N"
    if v is True: return "T"
    if v is False: return "F"
    if isinstance(v, int): return "i%d;" % v
    if isinstance(v, float): return "f" + struct.pack(">d", v).hex()
    if isinstance(v, str): return "s" + v.encode("utf-8", "surrogatepass").hex() + ";"
    if isinstance(v, bytes): return "b" + v.hex() + ";"
    if isinstance(v, tuple): return "t%d:" % len(v) + "".join(enc(x) for x in v)
    if isinstance(v, list): return "l%d:" % len(v) + "".join(enc(x) for x in v)
    if isinstance(v, dict): return "d%d:" % len(v) + "".join(enc(k) + enc(x) for k, x in v.items())
    raise TypeError(v)

rng = random.Random(1234)
cases = [None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 12345678901234,
         0.0, -0.0, 0.1, 0.25, 1/3, 2/3, 1.0, 100.0, 1e15, 1e16, 1.5e-05, 1e-4, 1e-5, 5e-324,
         1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), 123456789012345.0,
         12345678901234567890.0, 1.2345678901234567e16, 9007199254740993.0, 0.30000000000000004,
         "", "a", "it's", 'say "hi"', "both ' and \"", "back\\slash", "tab\tnew\nline\rcr",
         "\x00\x01\x1f\x7f", "hall\xe5 v\xe4rlden", "\u043f\u0440\u0438\u0432\u0456\u0442", "\u200b zero width",
         "\x80\x9f\xa0\xad", "emoji \U0001f600", "\u2028\u2029", "\ue000 private", "\U000e0001 tag",
         "日本語", "\ufeff bom",
         b"", b"abc", b"it's", b'"q"', b"\x00\xff\x80", b"hall\xe5", b"\\", b"\n\t\r",
         (), (1,), (1, 2), ("a",), ((),), [], [1], [1, [2, [3]]], {}, {1: "1", "2": 2, 0.25: None},
         {1: "a", True: "b", 1.0: "c"}, {(1, 2): [3], "k": {"n": (None,)}}, [(1,), {"x": b"y"}]]
for _ in range(120):
    cases.append(struct.unpack(">d", struct.pack(">Q", rng.getrandbits(64)))[0])
for _ in range(60):
    cases.append(rng.uniform(-1e6, 1e6))
    cases.append(rng.randint(-2**63, 2**63 - 1))
for _ in range(60):
    n = rng.randint(0, 6)
    cases.append("".join(chr(rng.choice([rng.randint(0, 0x7f), rng.randint(0x80, 0x2fff), rng.randint(0x10000, 0x1ffff)]))
                         for _ in range(n)))
with open(sys.argv[1] if len(sys.argv) > 1 else "repr_cases.txt", "w") as f:
    for v in cases:
        r = repr(v)
        f.write(enc(v) + "\t" + r.encode("utf-8", "surrogatepass").hex() + "\n")
print(len(cases), "cases")
