// Faults: clients, servers and owners dying (SIGKILL) at awkward moments;
// shutdown under blocked callers; fork while a call is in flight.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <sstream>

namespace mp = multiprocessing;
using Clock = std::chrono::steady_clock;

namespace {

class FCounter {
public:
    int increment() { return ++n_; }
    int value() const { return n_; }

private:
    int n_ = 0;
};

// Blocks in the server until opened, waiting in slices so that a vanished
// caller or a stopping server ends the wait.  Returns false in that case.
class Latch {
public:
    bool wait(double seconds) {
        auto end = Clock::now() + std::chrono::duration<double>(seconds);
        std::unique_lock<std::mutex> g(mu_);
        while (!open_) {
            if (mp::managers::caller_gone() || Clock::now() >= end) return false;
            cv_.wait_for(g, std::chrono::milliseconds(20));
        }
        return true;
    }
    void open() {
        std::lock_guard<std::mutex> g(mu_);
        open_ = true;
        cv_.notify_all();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool open_ = false;
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

MP_EXPOSE(FCounter, increment, value)
MP_EXPOSE(Latch, wait, open)
template <>
struct mp::managers::self_locking<Latch> : std::true_type {};

struct FaultManager : mp::managers::BaseManager<FaultManager> {
    using BaseManager::BaseManager;
};

static const bool fault_registered = [] {
    FaultManager::register_type<FCounter>("FCounter");
    FaultManager::register_type<Latch>("Latch");
    return true;
}();

TEST_CASE("a client SIGKILLed mid-call while holding proxies leaks nothing", "[faults]") {
    FaultManager m;
    m.start();
    auto mine = m.create<FCounter>();
    auto latch = m.create<Latch>();
    const std::size_t base = m.number_of_objects();
    test::Channel ch;
    mp::Process victim([&m, &ch, latch] {
        std::vector<mp::managers::Proxy<FCounter>> held;
        for (int i = 0; i < 10; ++i) held.push_back(m.create<FCounter>());
        held[0].increment();
        std::thread t([&] { latch.wait(60); });  // a second connection, blocked in the server
        ch.write_line("holding");
        latch.wait(60);  // SIGKILLed in here
        t.join();
    });
    victim.start();
    REQUIRE(ch.read_line() == "holding");
    REQUIRE(test::wait_until([&] { return m.number_of_objects() == base + 10; }, 5));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let both calls reach the server
    victim.kill();
    test::join_or_kill(victim);
    auto t0 = Clock::now();
    CHECK(mine.increment() == 1);  // the server keeps serving others meanwhile
    bool back = test::wait_until([&] { return m.number_of_objects() == base; }, 5);
    std::size_t after = m.number_of_objects();
    std::cout << "[faults] killed client: objects " << base << " -> " << base + 10 << " -> " << after
              << " (leaked " << static_cast<long long>(after) - static_cast<long long>(base) << ") after "
              << since(t0) << " s" << std::endl;
    CHECK(back);
    CHECK(mine.value() == 1);
}

TEST_CASE("server SIGKILLed: every call, blocked ones included, fails with ConnectionError within 1 s",
          "[faults]") {
    FaultManager m;
    m.start();
    auto c = m.create<FCounter>();
    auto latch = m.create<Latch>();
    c.increment();
    constexpr int kBlocked = 4;
    std::atomic<int> ready{0};
    std::vector<double> fail_at(kBlocked, -1);
    std::vector<std::string> what(kBlocked);
    std::atomic<long long> killed_ns{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < kBlocked; ++i)
        ts.emplace_back([&, i] {
            ++ready;
            try {
                latch.wait(30);
                what[i] = "returned";
            } catch (const mp::ConnectionError& e) {
                what[i] = "ConnectionError";
            } catch (const std::exception& e) {
                what[i] = std::string("other: ") + e.what();
            }
            auto now = Clock::now().time_since_epoch().count();
            fail_at[i] = (now - killed_ns.load()) / 1e9;
        });
    test::wait_until([&] { return ready == kBlocked; }, 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // calls are inside the server
    killed_ns = Clock::now().time_since_epoch().count();
    auto t0 = Clock::now();
    REQUIRE(::kill(m.pid(), SIGKILL) == 0);
    for (auto& t : ts) t.join();
    double blocked_done = since(t0);
    // Fresh calls on the dead server, from this thread and from new threads.
    int fresh_ok = 0;
    for (int i = 0; i < 3; ++i) {
        try {
            c.increment();
        } catch (const mp::ConnectionError&) {
            ++fresh_ok;
        }
    }
    std::thread([&] {
        try {
            c.value();
        } catch (const mp::ConnectionError&) {
            ++fresh_ok;
        }
    }).join();
    double all_done = since(t0);
    double worst = 0;
    for (double f : fail_at) worst = std::max(worst, f);
    std::cout << "[faults] killed server: " << kBlocked << " blocked calls failed within " << worst
              << " s (all joined after " << blocked_done << " s); 4 fresh calls failed by " << all_done << " s"
              << std::endl;
    for (auto& w : what) CHECK(w == "ConnectionError");
    CHECK(fresh_ok == 4);
    CHECK(worst < 1.0);
    CHECK(all_done < 1.0);
    m.shutdown();  // reaps the dead server and removes its socket
}

TEST_CASE("owner SIGKILLed: its server exits within 1 s and removes its socket", "[faults]") {
    test::become_subreaper();
    test::Channel ch;
    mp::Process owner([&ch] {
        FaultManager m;
        m.start();
        ch.write_line(std::to_string(m.pid()) + " " + m.address().path());
        test::forever();
    });
    owner.start();
    std::istringstream in(ch.read_line());
    pid_t server = 0;
    std::string path;
    in >> server >> path;
    REQUIRE(server > 0);
    REQUIRE(::access(path.c_str(), F_OK) == 0);
    auto t0 = Clock::now();
    owner.kill();
    bool gone = test::wait_until([&] { return !test::pid_alive(server) && ::access(path.c_str(), F_OK) != 0; }, 5);
    double took = since(t0);
    test::join_or_kill(owner);
    std::cout << "[faults] killed owner: server gone and socket removed after " << took << " s" << std::endl;
    CHECK(gone);
    CHECK(took < 1.0);
}

TEST_CASE("shutdown() while other processes are blocked in calls gives them a clear error", "[faults]") {
    FaultManager m;
    m.start();
    auto latch = m.create<Latch>();
    test::Channel ch;
    std::vector<std::unique_ptr<mp::Process>> ps;
    for (int i = 0; i < 3; ++i) {
        ps.push_back(std::make_unique<mp::Process>([latch, &ch] {
            ch.write_line("up");
            try {
                bool r = latch.wait(30);
                ch.write_line(r ? "returned true" : "returned false");
            } catch (const mp::ConnectionError& e) {
                ch.write_line("ConnectionError");
            } catch (const std::exception& e) {
                ch.write_line(std::string("other ") + e.what());
            }
        }));
        ps.back()->start();
    }
    for (int i = 0; i < 3; ++i) REQUIRE(ch.read_line() == "up");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t0 = Clock::now();
    m.shutdown();
    std::vector<std::string> got;
    for (int i = 0; i < 3; ++i) got.push_back(ch.read_line(5));
    double took = since(t0);
    for (auto& p : ps) CHECK(test::join_or_kill(*p, 10) == 0);
    std::cout << "[faults] shutdown under 3 blocked callers: they saw";
    for (auto& g : got) std::cout << " [" << g << "]";
    std::cout << " within " << took << " s" << std::endl;
    // Either the server's stop reaches the caller as an error, or the wait
    // notices caller_gone() and returns false before the socket closes.
    for (auto& g : got) CHECK((g == "ConnectionError" || g == "returned false"));
    CHECK(took < 5.0);
}

TEST_CASE("a process forked while another thread is mid-call has working proxies", "[faults][fork]") {
    FaultManager m;
    m.start();
    auto c = m.create<FCounter>();
    auto latch = m.create<Latch>();
    std::atomic<bool> in_call{false};
    bool result = false;
    std::thread t([&] {
        in_call = true;
        result = latch.wait(20);
    });
    test::wait_until([&] { return in_call.load(); }, 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<std::unique_ptr<mp::Process>> ps;
    for (int i = 0; i < 3; ++i) {
        ps.push_back(std::make_unique<mp::Process>([c] {
            for (int k = 0; k < 10; ++k) c.increment();
            if (c.value() < 10) throw std::runtime_error("counter went backwards");
        }));
        ps.back()->start();
    }
    int ok = 0;
    for (auto& p : ps) ok += test::join_or_kill(*p, 20) == 0;
    latch.open();
    t.join();
    std::cout << "[faults] fork during a call: " << ok << "/3 children used their proxies; counter "
              << c.value() << std::endl;
    CHECK(ok == 3);
    CHECK(result);
    CHECK(c.value() == 30);
}
