// Managers over TCP on loopback: addresses, authkeys, restart, server
// death and registration mismatches.  The two-host test is
// tests/netns_two_hosts.sh.
#include "helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;
using mp::connection::Address;
using mp::managers::RemoteError;

class Echo {
public:
    int twice(int x) const { return 2 * x; }
    void nap(int ms) const { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
};
MP_EXPOSE(Echo, twice, nap)

// The "same" class as another program might define it: twice takes a long.
class EchoV2 {
public:
    long twice(long x) const { return 2 * x; }
};
MP_EXPOSE(EchoV2, twice)

struct NetManager : mp::managers::BaseManager<NetManager> {
    using BaseManager::BaseManager;
};
struct OtherProgram : mp::managers::BaseManager<OtherProgram> {
    using BaseManager::BaseManager;
};

static const bool registered = [] {
    NetManager::register_type<Echo>("Echo");
    OtherProgram::register_type<EchoV2>("Echo");
    return true;
}();

TEST_CASE("a TCP manager on port 0 reports its real port and serves calls", "[remote][tcp]") {
    NetManager m(Address("127.0.0.1", 0), std::string("tcp-key"));
    m.start();
    REQUIRE(m.address().is_tcp());
    CHECK(m.address().port() != 0);
    auto e = m.create<Echo>();
    CHECK(e.twice(21) == 42);
    mp::Process child([e] { if (e.twice(2) != 4) throw mp::SystemExit{3}; });
    child.start();
    CHECK(test::join_or_kill(child) == 0);
}

TEST_CASE("a TCP manager refuses to start without an authkey", "[remote][tcp][auth]") {
    NetManager m(Address("127.0.0.1", 0), std::string());
    CHECK_THROWS_AS(m.start(), mp::ProcessError);
}

TEST_CASE("a wrong authkey is refused and the server keeps serving the right one", "[remote][tcp][auth]") {
    NetManager m(Address("127.0.0.1", 0), std::string("right"));
    m.start();
    Address a = m.address();
    mp::Process wrong([a] {
        NetManager other(a, std::string("wrong"));
        try {
            other.connect();
        } catch (const mp::AuthenticationError&) {
            throw mp::SystemExit{9};
        }
    });
    wrong.start();
    CHECK(test::join_or_kill(wrong) == 9);
    mp::Process right([a] {
        NetManager other(a, std::string("right"));
        other.connect();
        if (other.create<Echo>().twice(5) != 10) throw mp::SystemExit{4};
    });
    right.start();
    CHECK(test::join_or_kill(right) == 0);
}

TEST_CASE("a wrong authkey is refused even while this process is connected with the right one", "[remote][tcp][auth]") {
    NetManager m(Address("127.0.0.1", 0), std::string("right"));
    m.start();
    auto e = m.create<Echo>();
    CHECK(e.twice(1) == 2);  // this process now holds an authenticated connection
    NetManager wrong(m.address(), std::string("wrong"));
    CHECK_THROWS_AS(wrong.connect(), mp::AuthenticationError);
    // The right key is still the one new connections use: a call from
    // another thread (which opens a connection of its own) works.
    NetManager right(m.address(), std::string("right"));
    right.connect();
    int got = 0;
    std::thread t([&] { got = right.create<Echo>().twice(4); });
    t.join();
    CHECK(got == 8);
    CHECK(e.twice(3) == 6);
}

TEST_CASE("_TestManagerRestart.test_rapid_restart on the same TCP address", "[remote][tcp]") {
    unsigned short port;
    {
        NetManager m(Address("127.0.0.1", 0), std::string("restart"));
        m.start();
        port = m.address().port();
        CHECK(m.create<Echo>().twice(1) == 2);
        m.shutdown();
    }
    NetManager again(Address("127.0.0.1", port), std::string("restart"));
    again.start();  // SO_REUSEADDR: no "address in use"
    CHECK(again.address().port() == port);
    CHECK(again.create<Echo>().twice(2) == 4);
}

// CPython's QueueManager (serves one queue through a callable) and
// QueueManager2 (the same interface, registered without a callable, for
// clients).
using ObjectQueue = mp::managers::QueueRef<mp::object>;
struct QueueManager : mp::managers::BaseManager<QueueManager> {
    using BaseManager::BaseManager;
};
struct QueueManager2 : mp::managers::BaseManager<QueueManager2> {
    using BaseManager::BaseManager;
};
static const bool queue_managers_registered = [] {
    QueueManager::register_type<ObjectQueue>("get_queue", [] {
        static auto q = std::make_shared<ObjectQueue>();
        return q;
    });
    QueueManager2::register_type<ObjectQueue>("get_queue");
    return true;
}();

static std::string random_authkey() { return mp::connection::detail::random_bytes(32); }

TEST_CASE("_TestRemoteManager.test_remote", "[remote][tcp]") {
    // Python's values, sent through xmlrpclib there and Boost here; a tuple
    // stays a tuple.  Putting something that cannot be sent (time.sleep)
    // does not compile here.
    const mp::object values = mp::object::tuple(
        {"hello world", mp::None, true, 2.25, "hall\u00e5 v\u00e4rlden",
         "\u043f\u0440\u0438\u0432\u0456\u0442 \u0441\u0432\u0456\u0442", mp::bytes{"hall\xe5 v\xe4rlden"}});
    std::string authkey = random_authkey();
    QueueManager manager(Address("127.0.0.1", 0), authkey);
    manager.start();
    Address a = manager.address();
    mp::Process putter([a, authkey, values] {
        QueueManager2 m(a, authkey);
        m.connect();
        auto queue = m.create_as<ObjectQueue>("get_queue");
        queue.put(values);
    });
    putter.set_daemon(true);
    putter.start();
    QueueManager2 manager2(a, authkey);
    manager2.connect();
    auto queue = manager2.create_as<ObjectQueue>("get_queue");
    CHECK(queue.get(true, 20.0) == values);
    CHECK(mp::repr(values) ==
          "('hello world', None, True, 2.25, 'hall\u00e5 v\u00e4rlden', "
          "'\u043f\u0440\u0438\u0432\u0456\u0442 \u0441\u0432\u0456\u0442', b'hall\\xe5 v\\xe4rlden')");
    CHECK(test::join_or_kill(putter) == 0);
}

TEST_CASE("_TestManagerRestart.test_rapid_restart", "[remote][tcp]") {
    std::string authkey = random_authkey();
    Address addr;
    {
        QueueManager manager(Address("127.0.0.1", 0), authkey);
        manager.start();
        addr = manager.address();
        mp::Process putter([addr, authkey] {
            QueueManager m(addr, authkey);
            m.connect();
            m.create_as<ObjectQueue>("get_queue").put("hello world");
        });
        putter.start();
        CHECK(test::join_or_kill(putter) == 0);
        auto queue = manager.create_as<ObjectQueue>("get_queue");
        CHECK(queue.get(true, 20.0) == mp::object("hello world"));
        manager.shutdown();
    }
    // At once on the same address: SO_REUSEADDR, so no EADDRINUSE (CPython
    // retries after a second for that).
    QueueManager manager(addr, authkey);
    manager.start();
    CHECK(manager.address() == addr);
    auto queue = manager.create_as<ObjectQueue>("get_queue");
    queue.put(1);
    CHECK(queue.get(true, 20.0) == mp::object(1));
}

TEST_CASE("IPv6 loopback", "[remote][tcp]") {
    NetManager m(Address("::1", 0), std::string("v6"));
    try {
        m.start();
    } catch (const mp::ProcessError& e) {
        WARN("no IPv6 loopback here: " << e.what());
        return;
    }
    CHECK(m.create<Echo>().twice(4) == 8);
}

TEST_CASE("a server killed mid-call makes the call fail fast", "[remote][tcp][faults]") {
    NetManager m(Address("127.0.0.1", 0), std::string("kill"));
    m.start();
    auto e = m.create<Echo>();
    std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ::kill(m.pid(), SIGKILL);
    });
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(e.nap(30000), mp::ConnectionError);
    killer.join();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    CHECK_THROWS_AS(e.twice(1), mp::ConnectionError);
}

TEST_CASE("a client with a different registration gets a clear error", "[remote][tcp]") {
    test::Channel ch;
    mp::Process server([&ch] {
        NetManager m(Address("127.0.0.1", 0), std::string("mismatch"));
        auto s = m.get_server();
        ch.write_line(std::to_string(s.address().port()));
        s.serve_forever();
    });
    server.set_daemon(true);  // reaped even if a check below throws
    server.start();
    auto port = static_cast<unsigned short>(std::stoi(ch.read_line()));
    {
        OtherProgram client(Address("127.0.0.1", port), std::string("mismatch"));
        client.connect();
        try {
            client.create<EchoV2>();
            FAIL("created an object with a mismatched registration");
        } catch (const RemoteError& e) {
            CHECK(e.type_name() == "TypeError");
            CHECK(std::string(e.what()).find("registered differently") != std::string::npos);
        }
        // A call through a proxy rebuilt from a token is checked per call too.
        NetManager good(Address("127.0.0.1", port), std::string("mismatch"));
        good.connect();
        auto echo = good.create<Echo>();
        auto tok = echo._token();
        auto wrong = mp::managers::RebuildProxy<EchoV2>(tok);
        CHECK_THROWS_AS(wrong.twice(3L), RemoteError);
        client.shutdown();
    }
    CHECK(test::join_or_kill(server, 10) == 0);
}
