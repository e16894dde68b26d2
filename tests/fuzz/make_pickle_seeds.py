"""Writes the seed corpus of fuzz_pickle: CPython's pickles of the values a
manager carries, in protocols 2-5.  Run with CPython 3.13:
  PYENV_VERSION=3.13.0 python3 tests/fuzz/make_pickle_seeds.py tests/fuzz/corpus/fuzz_pickle
"""
import hashlib
import os
import pickle
import sys
from multiprocessing.managers import RemoteError, Token

values = [
    None, True, 0, -1, 300, 70000, 2**40, -2**63, 1.5, float("nan"), "", "key", "é中\U0001f600", b"\x00\xff",
    bytearray(b"ab"), (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], [1, "x", None], list(range(1100)),
    {"a": [1, {"b": (2.5,)}]}, {i: i for i in range(5)}, {1, 2}, frozenset({"x"}), [[1, 2]] * 3,
    ("#RETURN", [1, "x"]), ("#ERROR", KeyError("k")), ("#TRACEBACK", "Traceback ..."),
    (None, "create", ("dict",), {}), ("7f3a", "__setitem__", ("k", [1, "x"]), {}),
    ("#PROXY", (("get", "keys"), Token("dict", "/tmp/pymp-x/listener-1", "7f3a"))),
    RemoteError("tb"), ValueError("bad", 3),
]
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for v in values:
    for proto in range(2, 6):
        data = pickle.dumps(v, proto)
        with open(os.path.join(out, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
            f.write(data)
