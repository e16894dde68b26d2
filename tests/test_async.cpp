// Pipelined calls with managers::call_async: order, errors, a server dying
// with calls in flight, forked children, and mixing with sync calls.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <future>

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

private:
    std::vector<long long> seq_;
};
MP_EXPOSE(Acc, add, total, in_order, fail, nap)
struct AsyncManager : mp::managers::BaseManager<AsyncManager> {};
static const bool registered = (AsyncManager::register_type<Acc>("Acc"), true);

TEST_CASE("10000 pipelined calls keep their order", "[async]") {
    AsyncManager m;
    m.start();
    auto a = m.create<Acc>();
    std::vector<std::future<void>> fs;
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
    std::vector<std::future<void>> fs;
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
        std::vector<std::future<void>> fs;
        for (long long i = 1; i <= 100; ++i) fs.push_back(call_async<&Acc::add>(a, i));
        for (auto& f : fs) f.get();
        a.add(101);  // sync after async on the same object
    });
    p.start();
    CHECK(test::join_or_kill(p) == 0);
    CHECK(a.in_order());
    CHECK(a.total() == 101LL * 102 / 2);
}
