"""CPython's managers doing what bench.cpp does; prints JSON (µs, ms, KiB)."""
import json, sys, time
from multiprocessing import Process
from multiprocessing.managers import BaseManager, SyncManager

class Counter:
    def __init__(self): self.n = 0
    def increment(self):
        self.n += 1
        return self.n

class Blob:
    def doubles(self, v): return v
    def fill(self, n):
        self.m = {i: i for i in range(n)}

class M(BaseManager): pass
M.register("Counter", Counter)
M.register("Blob", Blob)

def per_op_us(n, f):
    for i in range(max(1, n // 20)): f(i)
    t0 = time.perf_counter()
    for i in range(n): f(i)
    return (time.perf_counter() - t0) / n * 1e6

def rss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as fh:  # PSS, as bench.cpp
        for line in fh:
            if line.startswith("Pss:"): return int(line.split()[1])

def work(c, per):
    for _ in range(per): c.increment()

def main():
    quick = "--quick" in sys.argv
    n = 200 if quick else 5000
    out = {}
    with M() as m, SyncManager() as sm:
        c = m.Counter(); d = sm.dict(); q = sm.Queue()
        out["custom_call"] = per_op_us(n, lambda i: c.increment())
        def dset(i): d[i % 1000] = i
        out["dict_set"] = per_op_us(n, dset)
        out["dict_get"] = per_op_us(n, lambda i: d.get(i % 1000))
        def qpg(i): q.put(i); q.get()
        out["queue_put_get"] = per_op_us(n // 2, qpg)
        blob = m.Blob()
        v = [1.5] * (1000 if quick else 1000000)
        out["bulk_1M_doubles_roundtrip_ms"] = per_op_us(2 if quick else 3, lambda i: blob.doubles(v)) / 1000
        per = 100 if quick else 2000
        t0 = time.perf_counter()
        ps = [Process(target=work, args=(c, per)) for _ in range(4)]
        for p in ps: p.start()
        for p in ps: p.join()
        out["four_processes_one_counter_ops"] = 4 * per / (time.perf_counter() - t0)
    with M() as fresh:
        blob = fresh.Blob()
        out["server_rss_idle_kb"] = rss_kb(fresh._process.pid)
        blob.fill(10000 if quick else 1000000)
        out["server_rss_1M_int_map_kb"] = rss_kb(fresh._process.pid)
    reps = 3 if quick else 10
    t0 = time.perf_counter()
    for _ in range(reps):
        mm = M(); mm.start(); mm.shutdown()
    out["start_shutdown_ms"] = (time.perf_counter() - t0) / reps * 1000
    print(json.dumps(out))

if __name__ == "__main__":
    main()
