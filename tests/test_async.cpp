// Pipelined calls with managers::call_async: order, errors, a server dying
// with calls in flight, forked children, and mixing with sync calls.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <future>
#include <thread>

namespace mp = multiprocessing;
using mp::managers::call_async;

class Acc {
public:
    void add(long long v) { seq_.push_back(v); }
    long long total() const {
        long long t = 0;
        for (auto v : seq_) t += v;
        return t;
    }
    bool in_order() const {
        for (std::size_t i = 1; i < seq_.size(); ++i)
            if (seq_[i] != seq_[i - 1] + 1) return false;
        return true;
    }
    long long fail(int k) { if (k) throw mp::ValueError("async failure"); return 1; }
    void nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
    std::vector<char> make(int n) const { return std::vector<char>(static_cast<std::size_t>(n), 'x'); }
    long long count() const { return static_cast<long long>(seq_.size()); }
    // hold() returns once open() is called on another object (calls on one
    // object are serialized): a call that cannot finish before the test
    // lets it.  The gate is the server process's.
    void hold() const {
        for (int i = 0; i < 60000 && !gate().load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    void open() { gate() = true; }
    static std::atomic<bool>& gate() {
        static std::atomic<bool> g{false};
        return g;
    }

private:
    std::vector<long long> seq_;
};
MP_EXPOSE(Acc, add, total, in_order, fail, nap, make, count, hold, open)
struct AsyncManager : mp::managers::BaseManager<AsyncManager> {};
static const bool registered = (AsyncManager::register_type<Acc>("Acc"), true);

TEST_CASE("10000 pipelined calls keep their order", "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    std::vector<mp::managers::Future<void>> fs;
    for (long long i = 0; i < 10000; ++i) fs.push_back(call_async<&Acc::add>(a, i));
    for (auto& f : fs) f.get();
    CHECK(a.in_order());
    CHECK(a.total() == 10000LL * 9999 / 2);
    CHECK(call_async<&Acc::total>(a).get() == 10000LL * 9999 / 2);
}

TEST_CASE("errors arrive through the future", "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    auto bad = call_async<&Acc::fail>(a, 1);
    auto good = call_async<&Acc::fail>(a, 0);
    CHECK_THROWS_MATCHES(bad.get(), mp::ValueError, Catch::Matchers::Message("async failure"));
    CHECK(good.get() == 1);
}

TEST_CASE("a server dying with calls in flight fails every future", "[async][faults]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    std::vector<mp::managers::Future<void>> fs;
    fs.push_back(call_async<&Acc::nap>(a, 30000));
    for (int i = 0; i < 100; ++i) fs.push_back(call_async<&Acc::add>(a, i));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(m.pid(), SIGKILL);
    for (auto& f : fs) {
        REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK_THROWS_AS(f.get(), mp::ConnectionError);
    }
    m.shutdown();
}

TEST_CASE("async calls from a forked child, mixed with sync calls", "[async][fork]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    call_async<&Acc::add>(a, 0).get();  // the parent's channel exists before the fork
    mp::Process p([a] {
        std::vector<mp::managers::Future<void>> fs;
        for (long long i = 1; i <= 100; ++i) fs.push_back(call_async<&Acc::add>(a, i));
        for (auto& f : fs) f.get();
        a.add(101);  // sync after async on the same object
    });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    CHECK(a.in_order());
    CHECK(a.total() == 101LL * 102 / 2);
}

// The channels' table has a process-wide lock, taken to make a channel (a
// new manager's, or a forked child's own): a fork while another thread
// holds it must leave the child a usable one.
TEST_CASE("async calls from a forked child while another thread makes channels", "[async][fork]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    std::atomic<bool> stop{false};
    std::atomic<int> made{0};
    std::thread maker([&] {
        while (!stop) {
            AsyncManager other;
            other.start();
            auto x = other.create<Acc>();
            call_async<&Acc::count>(x).get();  // connects this manager's channel
            ++made;
        }
    });
    int failures = 0;
    for (int i = 0; i < 40; ++i) {
        mp::Process p([a] { call_async<&Acc::add>(a, 1).get(); });
        p.start();
        if (test::join_or_kill(p, 20.0) != 0) ++failures;
    }
    stop = true;
    maker.join();
    CHECK(failures == 0);
    CHECK(made > 0);
    CHECK(a.count() == 40 - failures);
}

TEST_CASE("a Future has std::future's members and Python's ready()", "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    mp::managers::Future<void> none;
    CHECK_FALSE(none.valid());
    CHECK_THROWS_AS(none.get(), std::future_error);
    CHECK_THROWS_AS(none.wait(), std::future_error);
    auto opener = m.create<Acc>();
    auto held = call_async<&Acc::hold>(a);
    auto after = call_async<&Acc::total>(a);
    CHECK(held.valid());
    CHECK_FALSE(held.ready());
    CHECK(held.wait_for(std::chrono::milliseconds(10)) == std::future_status::timeout);
    CHECK(after.wait_until(std::chrono::system_clock::now() + std::chrono::milliseconds(10)) ==
          std::future_status::timeout);
    opener.open();  // a sync call, on another connection
    CHECK(after.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK(held.ready());  // replies come in order: the earlier one is here too
    CHECK(after.ready());
    held.get();
    CHECK_FALSE(held.valid());
    CHECK_THROWS_AS(held.get(), std::future_error);
    CHECK(after.get() == 0);
    auto forever = call_async<&Acc::total>(a);
    CHECK(forever.wait_for(std::chrono::hours::max()) == std::future_status::ready);
    mp::managers::Future<long long> moved = std::move(forever);
    CHECK_FALSE(forever.valid());
    CHECK(moved.get() == 0);
    static_assert(!std::is_copy_constructible_v<mp::managers::Future<int>>, "get() once, as std::future");
}

TEST_CASE("dropped futures: replies are read anyway, in calls and while the caller does other things",
          "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    // Many calls and no gets: the submitting thread reads the replies that
    // arrived, so the server never stalls writing them.
    for (long long i = 0; i < 100000; ++i) (void)call_async<&Acc::add>(a, i);
    CHECK(call_async<&Acc::count>(a).get() == 100000);
    CHECK(a.in_order());
    // Few calls, with replies bigger than any buffer between the processes,
    // then none: only the channel's helper thread reads them, and the server
    // must get past them to run the add.
    for (int i = 0; i < 8; ++i) (void)call_async<&Acc::make>(a, 1 << 20);
    (void)call_async<&Acc::add>(a, 100000);
    CHECK(test::wait_until([&] { return a.count() == 100001; }, 30.0));
    CHECK(a.in_order());
}

TEST_CASE("threads share the async channel: each waits for its own calls and reads for the others",
          "[async]") {
    AsyncManager m;
    m.start();
    constexpr int threads = 4, calls = 5000;
    std::vector<mp::managers::Proxy<Acc>> accs;
    for (int t = 0; t < threads; ++t) accs.push_back(m.create<Acc>());
    std::atomic<int> wrong{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            try {
                std::vector<mp::managers::Future<long long>> totals;
                for (long long i = 0; i < calls; ++i) {
                    (void)call_async<&Acc::add>(accs[t], i);  // dropped: read by whoever reads
                    if (i % 100 == 99) totals.push_back(call_async<&Acc::total>(accs[t]));
                    if (i % 1000 == 999) {
                        for (auto& f : totals) (void)f.get();
                        totals.clear();
                    }
                }
                long long want = static_cast<long long>(calls) * (calls - 1) / 2;
                if (call_async<&Acc::total>(accs[t]).get() != want) ++wrong;
            } catch (...) {
                ++wrong;
            }
        });
    for (auto& t : ts) t.join();
    CHECK(wrong == 0);
    for (auto& acc : accs) CHECK(acc.in_order());
}

TEST_CASE("a wait with a deadline gives up while another thread reads, and gets the result later", "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    auto opener = m.create<Acc>();
    auto held = call_async<&Acc::hold>(a);
    auto next = call_async<&Acc::total>(a);
    std::atomic<bool> waited{false};
    std::thread reader([&] {
        held.wait();  // reads (or waits for the helper, which reads) until the hold ends
        waited = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(next.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
    CHECK_FALSE(waited);
    opener.open();
    CHECK(next.get() == 0);
    reader.join();
    CHECK(waited);
    held.get();
}

TEST_CASE("a pipelined call blocking in the server holds back later pipelined calls to that manager, not sync calls",
          "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    auto b = m.create<Acc>();
    auto held = call_async<&Acc::hold>(a);
    auto later = call_async<&Acc::add>(b, 1);  // another object, the same connection
    b.add(2);                                   // this thread's own connection
    CHECK(b.count() == 1);
    CHECK(later.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
    b.open();
    held.get();
    later.get();
    CHECK(b.total() == 3);
}

TEST_CASE("a future made before fork() cannot be waited for in the child", "[async][fork]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    auto opener = m.create<Acc>();
    auto f = call_async<&Acc::hold>(a);
    mp::Process p([&f] {
        try {
            f.wait();
        } catch (const mp::ProcessError&) {
            ::_exit(7);  // the reply goes to the parent
        }
        ::_exit(1);
    });
    p.start();
    CHECK(test::join_or_kill(p) == 7);
    opener.open();
    f.get();  // the parent's call is intact
    CHECK(call_async<&Acc::total>(a).get() == 0);
}

// The channels' helper threads in this process (named "mp-async").
static int helper_threads() {
    int n = 0;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(t.path() / "comm");
        std::string name;
        if (std::getline(comm, name) && name == "mp-async") ++n;
    }
    return n;
}

TEST_CASE("a manager shut down with no call in flight: its channel's thread ends", "[async]") {
    // Earlier tests' channels end within a second of their managers.
    REQUIRE(test::wait_until([] { return helper_threads() == 0; }, 30.0));
    // Twice: a manager started again gets a new channel, which ends the same way.
    for (int round = 0; round < 2; ++round) {
        {
            AsyncManager m;
            m.start();
            auto a = m.create<Acc>();
            CHECK(call_async<&Acc::total>(a).get() == 0);
            CHECK(helper_threads() == 1);
            m.shutdown();
        }
        CHECK(test::wait_until([] { return helper_threads() == 0; }, 10.0));
    }
}

TEST_CASE("call_async on an empty proxy, or one whose manager shut down, throws at once", "[async]") {
    mp::managers::Proxy<Acc> empty;
    CHECK_THROWS_AS(call_async<&Acc::total>(empty), mp::ValueError);
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    CHECK(call_async<&Acc::total>(a).get() == 0);  // this thread now knows the channel
    m.shutdown();
    CHECK_THROWS_AS(call_async<&Acc::total>(a), mp::ConnectionError);
    AsyncManager again;
    again.start();
    auto b = again.create<Acc>();
    CHECK(call_async<&Acc::total>(b).get() == 0);
}
