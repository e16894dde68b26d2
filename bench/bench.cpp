// Figures for scripts/bench: every operation over both transports (shared
// memory, the default for a Unix-socket manager, and the socket), next to
// three floors measured in the same run: a raw Unix-socket ping-pong, a
// futex ping-pong and a ping-pong in which both sides spin on shared memory
// (this VM is noisy, so only ratios taken together mean anything).  Prints
// one JSON object; scripts/bench adds CPython's and Redis's numbers.
//
//   bench [--quick]
#include <multiprocessing.hpp>

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace mp = multiprocessing;
using clk = std::chrono::steady_clock;

class Counter {
public:
    int increment() { return ++n_; }
    int value() const { return n_; }

private:
    int n_ = 0;
};
MP_EXPOSE(Counter, increment, value)

class Blob {
public:
    std::vector<double> doubles(std::vector<double> v) const { return v; }
    std::vector<char> bytes(std::vector<char> v) const { return v; }
    std::size_t keep(std::vector<char> v) { kept_ = std::move(v); return kept_.size(); }
    void fill(long long n) { for (long long i = 0; i < n; ++i) map_[i] = i; }

private:
    std::vector<char> kept_;
    std::unordered_map<long long, long long> map_;
};
MP_EXPOSE(Blob, doubles, bytes, keep, fill)

struct BenchManager : mp::managers::BaseManager<BenchManager> {
    using BaseManager::BaseManager;
};

static double now_us() { return std::chrono::duration<double, std::micro>(clk::now().time_since_epoch()).count(); }

// Round trip of `size` bytes each way between two processes, in µs.
static double raw_pingpong(int iters, std::size_t size) {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = ::fork();
    std::vector<char> buf(std::max<std::size_t>(size, 1));
    auto recv_all = [&](int fd) {
        std::size_t got = 0;
        while (got < size) {
            ssize_t r = ::recv(fd, buf.data() + got, size - got, 0);
            if (r <= 0) return false;
            got += static_cast<std::size_t>(r);
        }
        return true;
    };
    auto send_all = [&](int fd) {
        std::size_t sent = 0;
        while (sent < size) {
            ssize_t w = ::send(fd, buf.data() + sent, size - sent, MSG_NOSIGNAL);
            if (w <= 0) return;
            sent += static_cast<std::size_t>(w);
        }
    };
    if (pid == 0) {
        ::close(sv[0]);
        while (recv_all(sv[1])) send_all(sv[1]);
        ::_exit(0);
    }
    ::close(sv[1]);
    double t0 = now_us();
    for (int i = 0; i < iters; ++i) {
        send_all(sv[0]);
        recv_all(sv[0]);
    }
    double us = (now_us() - t0) / iters;
    ::close(sv[0]);
    ::waitpid(pid, nullptr, 0);
    return us;
}

// A shared page for the two ping-pong floors below.
static std::atomic<std::uint32_t>* shared_words() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    auto* w = static_cast<std::atomic<std::uint32_t>*>(p);
    new (&w[0]) std::atomic<std::uint32_t>(0);
    new (&w[16]) std::atomic<std::uint32_t>(0);  // another cache line
    return w;
}

static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Both processes spin on shared memory: the floor a same-machine call can
// approach while each side has a core.  Round trip in µs.
static double shm_spin_pingpong(int iters) {
    auto* w = shared_words();
    pid_t pid = ::fork();
    if (pid == 0) {
        for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(iters); ++i) {
            while (w[0].load(std::memory_order_acquire) != i) cpu_relax();
            w[16].store(i, std::memory_order_release);
        }
        ::_exit(0);
    }
    double t0 = now_us();
    for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(iters); ++i) {
        w[0].store(i, std::memory_order_release);
        while (w[16].load(std::memory_order_acquire) != i) cpu_relax();
    }
    double us = (now_us() - t0) / iters;
    ::waitpid(pid, nullptr, 0);
    ::munmap(w, 4096);
    return us;
}

// Each side sleeps on a futex until the other wakes it: the cost of a
// cross-process wake-up, which every blocking transport pays.
static double futex_pingpong(int iters) {
    auto* w = shared_words();
    auto wait = [](std::atomic<std::uint32_t>& a, std::uint32_t want) {
        for (std::uint32_t v; (v = a.load(std::memory_order_acquire)) != want;)
            ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&a), FUTEX_WAIT, v, nullptr, nullptr, 0);
    };
    auto post = [](std::atomic<std::uint32_t>& a, std::uint32_t v) {
        a.store(v, std::memory_order_release);
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&a), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    };
    pid_t pid = ::fork();
    if (pid == 0) {
        for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(iters); ++i) {
            wait(w[0], i);
            post(w[16], i);
        }
        ::_exit(0);
    }
    double t0 = now_us();
    for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(iters); ++i) {
        post(w[0], i);
        wait(w[16], i);
    }
    double us = (now_us() - t0) / iters;
    ::waitpid(pid, nullptr, 0);
    ::munmap(w, 4096);
    return us;
}

// CPU time (user + system) a process has used, in seconds.
static double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(s.substr(s.rfind(')') + 2));
    std::string f;
    double t = 0;
    for (int i = 3; i <= 15 && (fields >> f); ++i)
        if (i == 14 || i == 15) t += std::stod(f);
    return t / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

template <class F>
static double per_op_us(int iters, F&& f) {
    for (int i = 0; i < std::max(1, iters / 20); ++i) f(i);  // warm up
    double t0 = now_us();
    for (int i = 0; i < iters; ++i) f(i);
    return (now_us() - t0) / iters;
}

// Proportional set size: a forked server shares pages with its parent,
// which RSS would count in full.
static long rss_kb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Pss:", 0) == 0) return std::stol(line.substr(4));
    return -1;
}

int main(int argc, char** argv) {
    bool quick = false;
    std::string latfile = "bench_latency.dat";
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--quick") quick = true;
        else latfile = argv[i];
    }
    int n = quick ? 200 : 20000;
    std::ostringstream js;
    js << "{\n";
    auto field = [&](const std::string& k, double v, const char* unit, bool last = false) {
        js << "  \"" << k << "\": {\"value\": " << v << ", \"unit\": \"" << unit << "\"}" << (last ? "\n" : ",\n");
        std::fprintf(stderr, "%-34s %12.2f %s\n", k.c_str(), v, unit);
    };

    BenchManager::register_type<Counter>("Counter");
    BenchManager::register_type<Blob>("Blob");

    {
        double spin = shm_spin_pingpong(quick ? 2000 : 200000);
        double fx = futex_pingpong(quick ? 200 : 20000);
        field("shm_spin_pingpong", spin, "us");
        field("futex_pingpong", fx, "us");
    }

    // "" is the default (shared memory for this Unix-socket manager);
    // "_socket" turns it off; "_socket_spin30" also spins on the socket.
    for (std::string sfx : {"", "_socket", "_socket_spin30"}) {
        mp::managers::ServerOptions opts;
        opts.shared_memory = sfx.empty();
        opts.spin_us = sfx == "_socket_spin30" ? 30 : 0;
        BenchManager m({}, std::nullopt, opts);
        m.start();
        auto c = m.create<Counter>();
        mp::managers::SyncManager sm({}, std::nullopt, opts);
        sm.start();
        auto td = sm.dict<long long, long long>();
        auto dd = sm.dict();
        auto q = sm.Queue<int>();

        double floor1 = raw_pingpong(n, 64);
        double call = per_op_us(n, [&](int) { c.increment(); });
        double tset = per_op_us(n, [&](int i) { td[i % 1000] = i; });
        double tget = per_op_us(n, [&](int i) { (void)td.get(i % 1000); });
        double dset = per_op_us(n, [&](int i) { dd[i % 1000] = i; });
        double qpg = per_op_us(n / 2, [&](int i) { q.put(i); q.get(); });
        double floor2 = raw_pingpong(n, 64);
        double fl = (floor1 + floor2) / 2;
        field("raw_pingpong_64B" + sfx, fl, "us");
        field("custom_call" + sfx, call, "us");
        field("custom_call_ratio_to_floor" + sfx, call / fl, "x");
        field("typed_dict_set" + sfx, tset, "us");
        field("typed_dict_get" + sfx, tget, "us");
        field("dynamic_dict_set" + sfx, dset, "us");
        field("dict_set_ratio_to_floor" + sfx, tset / fl, "x");
        field("queue_put_get" + sfx, qpg, "us");
        field("queue_put_get_ratio_to_2_floors" + sfx, qpg / (2 * fl), "x");
    }

    for (std::string sfx : {"_socket", ""}) {
        mp::managers::ServerOptions opts;
        opts.shared_memory = sfx.empty();
        BenchManager m({}, std::nullopt, opts);
        m.start();
        auto blob = m.create<Blob>();
        std::vector<double> v(quick ? 1000 : 1000000, 1.5);
        int reps = quick ? 2 : 5;
        double bulk = per_op_us(reps, [&](int) { blob.doubles(v); }) / 1000.0;
        field("bulk_1M_doubles_roundtrip" + sfx, bulk, "ms");
        std::vector<char> big(quick ? (1 << 16) : (64u << 20), 'x');
        double b64 = per_op_us(reps, [&](int) { blob.bytes(big); }) / 1000.0;
        field("bulk_64MB_roundtrip" + sfx, b64, "ms");
        if (!sfx.empty()) continue;
        double floor64 = raw_pingpong(reps, big.size()) / 1000.0;
        field("raw_pingpong_64MB", floor64, "ms");
        // Two memcpys of it (there and back), the bulk target's unit.
        std::vector<char> dst(big.size());
        double cp = per_op_us(reps, [&](int i) {
            std::memcpy(dst.data(), big.data(), big.size());
            big[static_cast<std::size_t>(i) % big.size()] ^= 1;
            std::memcpy(big.data(), dst.data(), big.size());
        }) / 1000.0;
        field("memcpy_64MB_twice", cp, "ms");
        // The same two copies into new vectors, as a call taking and
        // returning a vector by value must make (one in the server, one in
        // the caller): their pages are new each time.  On huge pages, as
        // the library asks for them.
        double cpf = per_op_us(reps, [&](int i) {
            auto fresh = [](const std::vector<char>& from) {
                std::vector<char> to;
                to.reserve(from.size());
                mp::detail::advise_huge_pages(to.data(), from.size());
                to.assign(from.begin(), from.end());
                return to;
            };
            auto there = fresh(big);
            there[static_cast<std::size_t>(i) % there.size()] ^= 1;
            auto back = fresh(there);
            if (back.size() != big.size()) std::fprintf(stderr, "memcpy_64MB_twice_fresh: wrong size\n");
        }) / 1000.0;
        field("memcpy_64MB_twice_fresh", cpf, "ms");

        // latency against payload size, for the plot
        // Columns: size, shared memory, raw socket floor, socket transport.
        mp::managers::ServerOptions sock_opts;
        sock_opts.shared_memory = false;
        BenchManager ms({}, std::nullopt, sock_opts);
        ms.start();
        auto sblob = ms.create<Blob>();
        std::ofstream lat(latfile);
        for (std::size_t size = 8; size <= (quick ? 4096u : (16u << 20)); size *= 4) {
            std::vector<char> p(size, 'y');
            int it = size > (1 << 20) ? 5 : quick ? 20 : 500;
            double lib = per_op_us(it, [&](int) { blob.bytes(p); });  // payload both ways, like the floor
            double raw = raw_pingpong(it, size);
            double sock = per_op_us(it, [&](int) { sblob.bytes(p); });
            lat << size << " " << lib << " " << raw << " " << sock << "\n";
        }

    }

    for (std::string sfx : {"_socket", ""}) {
        // Idle: CPU a server uses in the second after its last call, and
        // its PSS then (connections open, one object).
        mp::managers::ServerOptions opts;
        opts.shared_memory = sfx.empty();
        BenchManager m({}, std::nullopt, opts);
        m.start();
        auto c = m.create<Counter>();
        for (int i = 0; i < 2000; ++i) c.increment();
        ::usleep(10000);
        double c0 = cpu_seconds(m.pid());
        ::usleep(quick ? 100000 : 1000000);
        double c1 = cpu_seconds(m.pid());
        field("idle_server_cpu_percent" + sfx, 100.0 * (c1 - c0) / (quick ? 0.1 : 1.0), "%");
        field("server_pss_after_calls" + sfx, static_cast<double>(rss_kb(m.pid())), "KiB");
    }

    {
        // A fresh server, so buffers from the bulk figures do not count.
        BenchManager m;
        m.start();
        auto blob = m.create<Blob>();
        field("server_rss_idle", static_cast<double>(rss_kb(m.pid())), "KiB");
        blob.fill(quick ? 10000 : 1000000);
        field("server_rss_1M_int_map", static_cast<double>(rss_kb(m.pid())), "KiB");
    }

    for (std::string sfx : {"_socket", ""}) {
        // Pipelined dict sets from one client process, 1000 in flight.
        mp::managers::ServerOptions opts;
        opts.shared_memory = sfx.empty();
        mp::managers::SyncManager sm({}, std::nullopt, opts);
        sm.start();
        auto d = sm.dict<long long, long long>();
        using D = mp::managers::Dict<long long, long long>;
        long long total = quick ? 2000 : 200000;
        double t0 = now_us();
        std::vector<mp::managers::Future<void>> fs;
        fs.reserve(1000);
        for (long long i = 0; i < total; ++i) {
            fs.push_back(mp::managers::call_async<&D::setitem>(d, i % 1000, i));
            if (fs.size() == 1000) {
                for (auto& f : fs) f.get();
                fs.clear();
            }
        }
        for (auto& f : fs) f.get();
        field("async_dict_sets_per_second" + sfx, total / ((now_us() - t0) / 1e6), "ops/s");
    }

    {
        int reps = quick ? 3 : 20;
        double t0 = now_us();
        for (int i = 0; i < reps; ++i) {
            BenchManager m;
            m.start();
            m.shutdown();
        }
        field("start_shutdown", (now_us() - t0) / reps / 1000.0, "ms");
    }

    {
        // Moving 64 MB of doubles from one process to another: through a
        // SharedMemoryManager segment (the source writes it in, the
        // destination copies it out), once in a new segment each time
        // (creation, attach and first-touch page faults included) and once
        // in one segment both keep mapped; and through a ListProxy
        // (extend() in the source, copy() out).
        std::size_t count = (quick ? (1u << 20) : (64u << 20)) / sizeof(double);
        int reps = quick ? 2 : 5;
        mp::managers::SharedMemoryManager smm;
        smm.start();
        mp::managers::SyncManager sm;
        sm.start();
        auto lst = sm.list<double>();
        int cmd[2], ack[2];
        if (::pipe(cmd) != 0 || ::pipe(ack) != 0) return 1;
        mp::Process source([&] {
            ::close(cmd[1]);  // so the parent closing its end is our EOF
            ::close(ack[0]);
            std::vector<double> data(count, 2.5);
            std::optional<mp::shared_memory::SharedMemory> kept;
            char op;
            while (::read(cmd[0], &op, 1) == 1) {
                if (op == 'S' || op == 'R') {
                    char name[64] = {};
                    if (::read(cmd[0], name, sizeof name) <= 0) break;
                    if (op == 'S') {  // a fresh segment: attach, fill, close
                        mp::shared_memory::SharedMemory seg(std::string{name});
                        std::memcpy(seg.buf().data(), data.data(), count * sizeof(double));
                    } else {  // the same segment every time, mapped once
                        if (!kept) kept.emplace(std::string{name});
                        std::memcpy(kept->buf().data(), data.data(), count * sizeof(double));
                    }
                } else {
                    lst.extend(data);
                }
                [[maybe_unused]] auto w = ::write(ack[1], "k", 1);
            }
        });
        source.start();
        std::vector<double> dest(count);
        auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
        std::vector<double> shm_ms, reused_ms, list_ms;
        double check = 0;
        char k;
        auto ask = [&](char op, const std::string& name) {
            char msg[65] = {op};
            std::strncpy(msg + 1, name.c_str(), 63);
            return ::write(cmd[1], msg, sizeof msg) == sizeof msg && ::read(ack[0], &k, 1) == 1;
        };
        auto kept = smm.SharedMemory(count * sizeof(double));
        if (!ask('R', kept.name())) return 1;  // first use: the pages are allocated here
        std::memcpy(dest.data(), kept.buf().data(), count * sizeof(double));
        for (int r = 0; r < reps; ++r) {
            double t0 = now_us();
            auto seg = smm.SharedMemory(count * sizeof(double));
            if (!ask('S', seg.name())) return 1;
            std::memcpy(dest.data(), seg.buf().data(), count * sizeof(double));
            shm_ms.push_back((now_us() - t0) / 1000.0);
            check += dest[count - 1];
            smm.release_segment(seg.name());

            t0 = now_us();
            if (!ask('R', kept.name())) return 1;
            std::memcpy(dest.data(), kept.buf().data(), count * sizeof(double));
            reused_ms.push_back((now_us() - t0) / 1000.0);
            check += dest[count - 1];

            lst.clear();
            t0 = now_us();
            if (::write(cmd[1], "L", 1) != 1 || ::read(ack[0], &k, 1) != 1) return 1;
            dest = lst.copy();
            list_ms.push_back((now_us() - t0) / 1000.0);
            check += dest[count - 1];
        }
        ::close(cmd[1]);
        if (!source.join(60)) source.kill(), source.join(5);
        ::close(cmd[0]);
        ::close(ack[0]);
        ::close(ack[1]);
        if (check != 3 * reps * 2.5) std::fprintf(stderr, "move_64MB: wrong data\n");
        field("move_64MB_shared_memory", median(shm_ms), "ms");
        field("move_64MB_shared_memory_reused", median(reused_ms), "ms");
        field("move_64MB_list_proxy", median(list_ms), "ms");
    }

    // Busy clients outnumbering the 2 cores: 4 and 8 processes on one
    // counter, over each transport.
    for (int procs : {4, 8})
        for (std::string sfx : {"_socket", ""}) {
            mp::managers::ServerOptions opts;
            opts.shared_memory = sfx.empty();
            BenchManager m({}, std::nullopt, opts);
            m.start();
            auto c = m.create<Counter>();
            int per = quick ? 100 : 40000 / procs;
            double t0 = now_us();
            std::vector<mp::Process> ps;
            for (int i = 0; i < procs; ++i) ps.emplace_back([c, per] { for (int k = 0; k < per; ++k) c.increment(); });
            for (auto& p : ps) p.start();
            for (auto& p : ps) p.join(600);
            double s = (now_us() - t0) / 1e6;
            bool last = procs == 8 && sfx.empty();
            field((procs == 4 ? "four" : "eight") + std::string("_processes_one_counter") + sfx, procs * per / s, "ops/s", last);
        }
    js << "}\n";
    std::cout << js.str();
}
