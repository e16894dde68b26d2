"""A plain CPython 3.13 client for tests/test_python_clients.cpp: connects
to the manager at argv[1] (a Unix socket path, or host:port) with authkey
argv[2] and runs scenario argv[3], printing what it sees with Python's own
repr.  The 'sync' scenario prints the same against a CPython SyncManager
(tests/python/py_manager_server.py) as against a C++ one."""
import gc
import multiprocessing
import queue
import sys
from multiprocessing.managers import SyncManager


class M(SyncManager):
    pass


M.register("Counter")
M.register("get_queue")


def settled(m):
    """The object count once it stops falling: a C++ server frees objects
    that held proxies on a thread of its own, a moment after the decref."""
    import time
    deadline = time.monotonic() + 10
    n = m._number_of_objects()
    while n and time.monotonic() < deadline:
        time.sleep(0.01)
        n = m._number_of_objects()
    return n


def sync(m):
    d = m.dict()
    d["k"] = [1, "x", 2.5, None, True]
    d[2] = {"a": (1, 2.5), "b": b"\xff"}
    print(d["k"], d[2], len(d), "k" in d, 3 in d, d.get("zz"), d.get("zz", 7))
    print(str(d))
    print(d.setdefault("s", 0), d.pop("s"), d.pop("nope", "dflt"), d.popitem(), len(d))
    d.update({"u": 1})
    print(sorted(d.values(), key=repr), d.copy())
    try:
        d["missing"]
    except KeyError as e:
        print("KeyError", repr(e))
    d2 = m.dict({"a": 1})
    print(d2.items(), d2.keys())
    l = m.list([3, 1, 2])
    l.append("four")
    l += [5]
    l.extend([6])
    print(l[0], l[-1], len(l), str(l), l.index(2), l.count(1), l.pop(), l.pop(0))
    l.remove("four")
    l.insert(0, 9)
    l.reverse()
    print(l[:], str(l))
    try:
        l[99]
    except IndexError as e:
        print("IndexError", repr(e))
    q = m.Queue()
    q.put({"n": 1})
    q.put_nowait(2)
    q.put(3, True, 1.0)
    print(q.get(), q.get(timeout=1), q.get(True, None), q.qsize(), q.empty())
    try:
        q.get(timeout=0.05)
    except queue.Empty as e:
        print("Empty", type(e), repr(e))
    try:
        q.get_nowait()
    except queue.Empty as e:
        print("Empty", type(e))
    lk = m.Lock()
    with lk:
        print("locked", lk.acquire(False), lk.acquire(blocking=False), lk.acquire(True, 0.01))
    print(lk.acquire(), lk.release())
    rl = m.RLock()
    with rl:
        with rl:
            print("rlock twice")
    sem = m.Semaphore(2)
    print(sem.acquire(), sem.acquire(), sem.acquire(False), sem.release())
    ev = m.Event()
    print(ev.is_set(), ev.wait(0.01))
    ev.set()
    print(ev.is_set(), ev.wait(0.01), ev.wait())
    ns = m.Namespace()
    ns.x = 10
    ns.y = "why"
    print(ns.x, ns.y)
    try:
        ns.z
    except AttributeError as e:
        print("AttributeError", e)
    v = m.Value("i", 7)
    print(v.value)
    v.value = 8
    print(v.value, v.get())
    c = m.Condition()
    with c:
        print("notify", c.notify(), c.wait(0.01))
    b = m.Barrier(1)
    print("barrier", b.wait())
    # Proxies inside shared objects, as Python nests managed containers.
    outer = m.dict()
    outer["l"] = m.list([1, 2])
    outer["d"] = {"inner": m.dict({"x": 1})}
    inner = outer["l"]
    inner.append(3)
    outer["d"]["inner"]["y"] = 2
    print(type(inner).__name__, inner[:], outer["l"][:], type(outer["d"]["inner"]).__name__,
          sorted(outer["d"]["inner"].items()))
    popped = outer.pop("l")
    print(type(popped).__name__, popped[:], len(outer))
    # Iteration, ranges and slices with a step.
    it = m.dict({"a": 1, "b": 2, 3: "c"})
    print(list(it), [k for k in it], sorted(it.items(), key=repr), dict(it) == it.copy())
    walk = iter(it)
    print(type(walk).__name__, next(walk), next(walk), next(walk), next(walk, "end"))
    print(list(m.dict()), list(m.list()))
    nums = m.list(range(6))
    print(nums[:], nums[::2], nums[1::2], nums[::-1], nums[4:1:-1], nums[-2:], nums[10::-3], nums[:-10:-2])
    print(nums[1:5:2], nums[::100], nums[5:0:-100], list(nums), m.list(range(10, 0, -3))[:], m.list(range(0))[:])
    try:
        nums[::0]
    except ValueError as e:
        print("ValueError", e)
    del d, d2, l, q, lk, rl, sem, ev, ns, v, c, b, outer, inner, popped, it, walk, nums
    gc.collect()
    print("objects", settled(m))


def custom(m):
    c = m.Counter(5)
    print(type(c).__name__, c.add(3), c.value(), c.names({"b": 1, "a": 2}))
    print(c.scale([1, 2], 2.5), c.pair("k", 2), c.maybe(None), c.maybe(4), c.blob(b"\x00\xff"))
    ch = c.child()
    print(type(ch).__name__, ch.value(), ch.add(1))
    try:
        c.fail("kk")
    except KeyError as e:
        print("KeyError", repr(e))
    try:
        c.fail(7)
    except TypeError as e:
        print("TypeError", e)
    try:
        c.boom()
    except Exception as e:
        print(type(e).__name__, str(e).strip().splitlines()[-2])
    try:
        c.add("x")
    except TypeError as e:
        print("TypeError", e)
    try:
        c.add(1, 2)
    except TypeError as e:
        print("TypeError", e)
    try:
        c.add(2**63)
    except OverflowError as e:
        print("OverflowError", e)
    try:
        c.nope()
    except AttributeError as e:
        print("AttributeError", e)
    try:
        c._callmethod("nope")
    except AttributeError as e:
        print("AttributeError", e)
    print(str(c))
    held = m.dict()
    held["c"] = c
    print(type(held["c"]).__name__, held["c"].add(1), c.value())
    print("objects", m._number_of_objects())
    del c, ch, held
    gc.collect()
    print("objects", settled(m))


def put(m, *items):
    q = m.get_queue()
    for x in items:
        q.put(eval(x))


def put_proxy(m):
    # A shared list, through the queue to a C++ client, which appends to it.
    import time
    q = m.get_queue()
    lst = m.list(["from python"])
    q.put(lst)
    deadline = time.monotonic() + 20
    while len(lst) < 2 and time.monotonic() < deadline:  # the C++ client appends
        time.sleep(0.01)
    print(lst[:])
    d = q.get(timeout=10)  # a dict proxy the C++ client put
    print(type(d).__name__, sorted(d.items()))
    d["seen by python"] = True


def get(m, n):
    q = m.get_queue()
    print(repr([q.get(timeout=10) for _ in range(int(n))]))


def die(m):
    # Killed while holding references: no decref ever comes.
    import os
    import signal
    d = m.dict()
    lst = m.list([1])
    c = m.Counter(1)
    d["l"] = lst
    print(m._number_of_objects(), c.value(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def limits(m):
    """Where a C++ server refuses or differs: ranges it will not expand,
    slice bounds at the ends of 64 bits, bad slices, and iter(d) over the
    keys as they were when it began."""
    for make in (lambda: m.list(range(10**12)), lambda: m.list([range(2**20), range(2)])):
        try:
            make()
            print("made")
        except ValueError as e:
            print("ValueError", e)
    big = 9223372036854775807
    lst = m.list(range(3))
    print(lst[::-big - 1], lst[big::-big], lst[-big - 1:big:big], m.list([range(2), (range(1),)])[:])
    for bad in (lambda: lst[::0], lambda: lst["a":], lambda: lst[:1.5]):
        try:
            bad()
        except (ValueError, TypeError) as e:
            print(type(e).__name__, e)
    d = m.dict({1: 2})
    walk = iter(d)
    d[3] = 4
    print(list(walk), list(d))
    del lst, d, walk
    print("objects", settled(m))


def count(m):
    print(m._number_of_objects())


def shutdown(m):
    # CPython's client sends the shutdown request through dispatch.
    from multiprocessing.managers import dispatch
    conn = m._Client(m._address, authkey=m._authkey)
    try:
        dispatch(conn, None, "shutdown")
    finally:
        conn.close()
    print("shut down")


if __name__ == "__main__":
    where = sys.argv[1]
    if ":" in where:
        host, port = where.rsplit(":", 1)
        where = (host, int(port))
    # Proxies inside values connect with the process's authkey, as in CPython.
    multiprocessing.current_process().authkey = sys.argv[2].encode()
    m = M(address=where, authkey=sys.argv[2].encode())
    m.connect()
    globals()[sys.argv[3]](m, *sys.argv[4:])
