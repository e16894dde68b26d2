"""Python's side of tests/test_python_manager.cpp: connects to the C++ test's
CPython server (py_manager_server.py) as a plain Python client and prints
what C++ left there, with Python's own reprs.
  py_manager_client.py ADDRESS AUTHKEY (queue-get | shared-repr | queue-put VALUE_EXPR
                                        | shared-call KEY METHOD | shared-put-list KEY)
ADDRESS is a Unix socket path or host:port."""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from py_manager_server import M  # noqa: E402

where, authkey, what = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
if ":" in where:
    host, port = where.rsplit(":", 1)
    where = (host, int(port))
# A proxy read out of a shared container authenticates with the process's
# authkey (CPython's RebuildProxy), so it must be the manager's.
__import__("multiprocessing").current_process().authkey = authkey
m = M(address=where, authkey=authkey)
m.connect()
if what == "queue-get":
    print(repr(m.get_queue().get(timeout=10)))
elif what == "shared-repr":
    print(repr(m.get_shared().copy()))
elif what == "queue-put":
    m.get_queue().put(eval(sys.argv[4]))
    print("put")
elif what == "shared-call":  # a proxy C++ stored: its class, and a method's result
    x = m.get_shared()[sys.argv[4]]
    print(type(x).__name__, repr(getattr(x, sys.argv[5])()))
elif what == "shared-put-list":  # d[KEY] = m.list([1, 'py']), then this client's proxy goes
    m.get_shared()[sys.argv[4]] = m.list([1, "py"])
    print("put")
