"""A CPython 3.13 manager for tests/test_python_manager.cpp: a SyncManager
with a shared queue, a shared dict and a class whose methods raise, served
at argv[1] (a Unix socket path, or host:port) with authkey argv[2].  Prints
'ready <address>' once it listens; serves until killed."""
import queue
import sys
from multiprocessing.managers import DictProxy, SyncManager


class Boom(Exception):
    pass


class Thing:
    def fail(self):
        raise Boom("custom", 7)

    def echo(self, *args, **kwds):
        return [list(args), kwds]

    def keyerror(self):
        return {}["missing"]

    def empty(self):
        return set()

    def child(self):
        return Thing()


shared_queue = queue.Queue()
shared_dict = {}


class M(SyncManager):
    pass


M.register("get_queue", callable=lambda: shared_queue)
M.register("get_shared", callable=lambda: shared_dict, proxytype=DictProxy)
M.register("Thing", Thing, method_to_typeid={"child": "Child"})
M.register("Child", create_method=False)  # wraps what Thing.child returns

if __name__ == "__main__":
    where = sys.argv[1]
    if ":" in where:
        host, port = where.rsplit(":", 1)
        where = (host, int(port))
    server = M(address=where, authkey=sys.argv[2].encode()).get_server()
    print("ready", server.address, flush=True)
    server.serve_forever()
