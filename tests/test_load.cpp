// Load: many processes hammering one server; nothing lost, nothing leaked.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>

#include <iostream>
#include <map>

namespace mp = multiprocessing;

namespace {

class LoadCounter {
public:
    int increment() { return ++n_; }
    int value() const { return n_; }

private:
    int n_ = 0;
};

// Stands in for the SyncManager dict: a std::map behind set/size.
class IntMap {
public:
    void set(int k, int v) { m_[k] = v; }
    std::size_t size() const { return m_.size(); }
    long long sum() const {
        long long s = 0;
        for (auto& kv : m_) s += kv.second;
        return s;
    }

private:
    std::map<int, int> m_;
};

}  // namespace

MP_EXPOSE(LoadCounter, increment, value)
MP_EXPOSE(IntMap, set, size, sum)

struct LoadManager : mp::managers::BaseManager<LoadManager> {
    using BaseManager::BaseManager;
};

static const bool load_registered = [] {
    LoadManager::register_type<LoadCounter>("LoadCounter");
    LoadManager::register_type<IntMap>("IntMap");
    return true;
}();

namespace {

std::size_t count_entries(const std::string& dir) {
    std::size_t n = 0;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (auto* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
    }
    return n;
}
std::size_t server_threads(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/task"); }
std::size_t server_fds(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/fd"); }

constexpr int kProcs = 32;
constexpr int kCalls = 1000;

}  // namespace

TEST_CASE("32 processes x 1000 increments of one counter lose nothing", "[load]") {
    LoadManager m;
    m.start();
    auto c = m.create<LoadCounter>();
    std::vector<std::unique_ptr<mp::Process>> ps;
    for (int i = 0; i < kProcs; ++i) {
        ps.push_back(std::make_unique<mp::Process>([c] {
            for (int k = 0; k < kCalls; ++k) c.increment();
        }));
        ps.back()->start();
    }
    int failed = 0;
    for (auto& p : ps) failed += test::join_or_kill(*p, 60) != 0;
    int v = c.value();
    std::cout << "[load] counter: " << kProcs * kCalls << " increments done, final value " << v
              << ", lost " << kProcs * kCalls - v << ", failed children " << failed << std::endl;
    CHECK(failed == 0);
    CHECK(v == kProcs * kCalls);
}

TEST_CASE("32 processes x 1000 distinct-key writes into one map keep every entry", "[load]") {
    LoadManager m;
    m.start();
    auto d = m.create<IntMap>();
    std::vector<std::unique_ptr<mp::Process>> ps;
    for (int i = 0; i < kProcs; ++i) {
        ps.push_back(std::make_unique<mp::Process>([d, i] {
            for (int k = 0; k < kCalls; ++k) d.set(i * kCalls + k, 1);
        }));
        ps.back()->start();
    }
    int failed = 0;
    for (auto& p : ps) failed += test::join_or_kill(*p, 60) != 0;
    auto n = d.size();
    std::cout << "[load] map: " << kProcs * kCalls << " writes done, " << n << " entries, lost "
              << kProcs * kCalls - static_cast<long long>(n) << ", failed children " << failed << std::endl;
    CHECK(failed == 0);
    CHECK(n == std::size_t(kProcs * kCalls));
    CHECK(d.sum() == kProcs * kCalls);
}

TEST_CASE("200 clients connected at once, and server threads and fds return to baseline", "[load]") {
    constexpr int kClients = 200;
    LoadManager m;
    m.start();
    auto c = m.create<LoadCounter>();
    c.increment();  // the parent's own connection is part of the baseline
    pid_t sp = m.pid();
    REQUIRE(sp > 0);
    const std::size_t base_threads = server_threads(sp), base_fds = server_fds(sp);

    // Children block on `gate` until the parent closes its write end, so all
    // 200 hold their connection at the same time.
    int gate[2];
    REQUIRE(::pipe(gate) == 0);
    test::Channel up;
    std::vector<std::unique_ptr<mp::Process>> ps;
    for (int i = 0; i < kClients; ++i) {
        ps.push_back(std::make_unique<mp::Process>([c, &gate, &up] {
            ::close(gate[1]);
            for (int k = 0; k < 5; ++k) c.increment();
            up.write_line("up");
            char b;
            pollfd p{gate[0], POLLIN, 0};
            ::poll(&p, 1, 30000);
            [[maybe_unused]] auto r = ::read(gate[0], &b, 1);
            for (int k = 0; k < 5; ++k) c.increment();
        }));
        ps.back()->start();
    }
    int ups = 0;
    for (int i = 0; i < kClients; ++i) ups += up.read_line(30) == "up";
    std::size_t peak_threads = server_threads(sp), peak_fds = server_fds(sp);
    ::close(gate[1]);
    int failed = 0;
    for (auto& p : ps) failed += test::join_or_kill(*p, 60) != 0;
    ::close(gate[0]);
    bool back = test::wait_until([&] { return server_threads(sp) <= base_threads && server_fds(sp) <= base_fds; }, 10);
    std::size_t end_threads = server_threads(sp), end_fds = server_fds(sp);
    int v = c.value();
    std::cout << "[load] 200 clients: " << ups << " connected at once; server threads " << base_threads << " -> "
              << peak_threads << " -> " << end_threads << ", fds " << base_fds << " -> " << peak_fds << " -> "
              << end_fds << "; calls " << v << "/" << 1 + kClients * 10 << std::endl;
    CHECK(ups == kClients);
    CHECK(failed == 0);
    CHECK(peak_threads >= base_threads + kClients);
    CHECK(back);
    CHECK(v == 1 + kClients * 10);
}
