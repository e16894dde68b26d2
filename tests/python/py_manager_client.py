"""Python's side of tests/test_python_manager.cpp: connects to the C++ test's
CPython server (py_manager_server.py) as a plain Python client and prints
what C++ left there, with Python's own reprs.
  py_manager_client.py ADDRESS AUTHKEY (queue-get | shared-repr | queue-put VALUE_EXPR)"""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from py_manager_server import M  # noqa: E402

where, authkey, what = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
m = M(address=where, authkey=authkey)
m.connect()
if what == "queue-get":
    print(repr(m.get_queue().get(timeout=10)))
elif what == "shared-repr":
    print(repr(m.get_shared().copy()))
elif what == "queue-put":
    m.get_queue().put(eval(sys.argv[4]))
    print("put")
