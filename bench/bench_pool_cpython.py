# CPython 3.13's manager Pool doing what bench_pool.cpp does.
import multiprocessing, statistics, time

def sqr(x):
    return x * x

if __name__ == '__main__':
    with multiprocessing.Manager() as manager:
        pool = manager.Pool(4)
        for i in range(200):
            pool.apply(sqr, (i,))
        rt = []
        for i in range(2000):
            t0 = time.perf_counter()
            pool.apply(sqr, (i,))
            rt.append((time.perf_counter() - t0) * 1e6)
        items = list(range(10000))
        maps = []
        for r in range(5):
            t0 = time.perf_counter()
            v = pool.map(sqr, items)
            maps.append((time.perf_counter() - t0) * 1e3)
            assert v[9999] == 9999 * 9999
        imaps = []
        for r in range(3):
            t0 = time.perf_counter()
            s = sum(pool.imap(sqr, items, 100))
            imaps.append((time.perf_counter() - t0) * 1e3)
        print("apply round trip (us, median of 2000)        %.1f" % statistics.median(rt))
        print("map 10k ints (ms, median of 5)                %.2f  (%.0f items/s)" % (statistics.median(maps), 10000 / (statistics.median(maps) / 1000)))
        print("imap 10k ints, chunksize 100 (ms, median of 3) %.2f" % statistics.median(imaps))
        pool.terminate()
