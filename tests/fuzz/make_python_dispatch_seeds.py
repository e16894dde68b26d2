"""Writes fuzz_dispatch's CPython-protocol seeds (py_*): requests as
CPython's managers pickle them.  Run with CPython 3.13:
  PYENV_VERSION=3.13.0 python3 tests/fuzz/make_python_dispatch_seeds.py tests/fuzz/corpus/fuzz_dispatch
"""
import pickle, sys, os
from multiprocessing.managers import Token
d = sys.argv[1]
def req(ident, name, args=(), kwds={}):
    return pickle.dumps((ident, name, args, kwds), protocol=4)
seeds = {
  'py_create': req(None, 'create', ('Target', 5)),
  'py_create_sv': req(None, 'create', ('Target', 's', [1.0, 2.5])),
  'py_dummy': req(None, 'dummy'),
  'py_incref': req(None, 'incref', ('1',)),
  'py_decref': req(None, 'decref', ('1',)),
  'py_get_methods': req(None, 'get_methods', (Token('Target', '/tmp/x', '1'),)),
  'py_number_of_objects': req(None, 'number_of_objects'),
  'py_debug_info': req(None, 'debug_info'),
  'py_add': req('1', 'add', (3,)),
  'py_cat': req('1', 'cat', ('ab', 'cd')),
  'py_put': req('1', 'put', ({'a': [1, 2], 'b': []},)),
  'py_sum': req('1', 'sum', ([1.5, 2.5],)),
  'py_child': req('1', 'child'),
  'py_fail': req('1', 'fail', (1,)),
  'py_getvalue': req('1', '#GETVALUE'),
  'py_repr': req('1', '__repr__'),
  'py_kwds': req('1', 'add', (), {'k': 1}),
  'py_slice': req('1', '__getitem__', (slice(None, 2, None),)),
  'py_slice_step': req('1', '__getitem__', (slice(-1, None, -2),)),
  'py_range': req('1', 'sum', (range(0, 9, 3),)),
  'py_iter': req('1', '__iter__'),
}
for k, v in seeds.items():
    open(os.path.join(d, k), 'wb').write(v)
from multiprocessing.managers import RebuildProxy, AutoProxy
class P:
    def __reduce__(self):
        return (RebuildProxy, (AutoProxy, Token('Target', '/tmp/x', '1'), 'pickle', {'exposed': ('add',)}))
open(os.path.join(d, 'py_proxy_arg'), 'wb').write(req('1', 'add', (P(),)))
