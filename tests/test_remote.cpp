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
