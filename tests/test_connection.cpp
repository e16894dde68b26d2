// multiprocessing::connection: frames, Pipe, Listener/Client and the
// HMAC handshake, cross-checked against CPython when it is installed.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <boost/serialization/map.hpp>
#include <boost/serialization/vector.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiprocessing;
namespace conn = multiprocessing::connection;

TEST_CASE("Pipe sends bytes and objects both ways", "[connection]") {
    auto [a, b] = conn::Pipe();
    a.send_bytes("hello");
    CHECK(b.recv_bytes() == "hello");
    std::map<std::string, std::vector<int>> m{{"x", {1, 2, 3}}};
    b.send(m);
    CHECK(a.recv<decltype(m)>() == m);
    a.send_bytes(std::string());
    CHECK(b.recv_bytes().empty());
    CHECK_FALSE(a.poll(0.05));
    b.send_bytes("x");
    CHECK(a.poll(1.0));
}

TEST_CASE("poll: a negative timeout only looks, None waits, NaN is refused, as in Python", "[connection]") {
    auto pipe = conn::Pipe();  // not a structured binding: a lambda captures b (C++17)
    auto& a = pipe.first;
    auto& b = pipe.second;
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(a.poll(-1));  // Python's poll(-1) returns False at once
    CHECK_FALSE(a.poll(-1e300));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
    CHECK_THROWS_AS(a.poll(std::nan("")), mp::ValueError);
    std::thread writer([&b] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        b.send_bytes("late");
    });
    CHECK(a.poll(std::nullopt));  // None: until the frame comes
    writer.join();
    CHECK(a.recv_bytes() == "late");
    b.send_bytes("y");
    CHECK(a.poll(1e300));  // forever, without overflowing a clock
    CHECK(a.recv_bytes() == "y");
}

TEST_CASE("_TestConnection.test_connection: recv_bytes_into at an offset, and BufferTooShort", "[connection]") {
    auto [c, peer] = conn::Pipe();
    std::vector<int> arr{0, 1, 2, 3};
    std::vector<int> buffer(10, 0);
    peer.send_bytes(arr.data(), arr.size() * sizeof(int));
    CHECK(c.recv_bytes_into(buffer) == arr.size() * sizeof(int));
    CHECK(buffer == std::vector<int>{0, 1, 2, 3, 0, 0, 0, 0, 0, 0});

    buffer.assign(10, 0);
    peer.send_bytes(arr.data(), arr.size() * sizeof(int));
    CHECK(c.recv_bytes_into(buffer, 3 * sizeof(int)) == arr.size() * sizeof(int));
    CHECK(buffer == std::vector<int>{0, 0, 0, 0, 1, 2, 3, 0, 0, 0});

    std::string small(40, ' ');
    std::string longmsg(1000, 'x');
    peer.send_bytes(longmsg);
    try {
        c.recv_bytes_into(small);
        FAIL("expected BufferTooShort");
    } catch (const mp::BufferTooShort& e) {
        CHECK(e.received() == longmsg);  // Python: e.args == (longmsg,)
    }
    CHECK(small == std::string(40, ' '));
    // An offset past the end is refused before anything is read.
    peer.send_bytes("hi");
    CHECK_THROWS_MATCHES(c.recv_bytes_into(small, 41), mp::ValueError, Catch::Matchers::Message("offset too large"));
    CHECK(c.recv_bytes_into(small, 38) == 2);
    CHECK(small.substr(36) == "  hi");
    peer.send_bytes(std::string());
    CHECK(c.recv_bytes_into(small, 40) == 0);  // an empty message fits at the very end
}

TEST_CASE("frames larger than the limit are refused", "[connection]") {
    auto [a, b] = conn::Pipe();
    b.set_max_frame(1024);
    a.send_bytes(std::string(2048, 'x'));
    CHECK_THROWS_AS(b.recv_bytes(), mp::ProcessError);
    CHECK(b.closed());
}

TEST_CASE("a large frame round trips", "[connection]") {
    auto [a, b] = conn::Pipe();
    std::string big(8 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131);
    std::thread t([&, &a = a] { a.send_bytes(big); });
    CHECK(b.recv_bytes() == big);
    t.join();
}

TEST_CASE("EOF when the peer closes", "[connection]") {
    auto [a, b] = conn::Pipe();
    a.close();
    CHECK_THROWS_AS(b.recv_bytes(), mp::EOFError);
}

TEST_CASE("Listener and Client authenticate with the authkey", "[connection][auth]") {
    std::string path = "/tmp/mp-conn-" + std::to_string(::getpid());
    conn::Listener l(conn::Address(path), std::string("secret"));
    std::thread server([&] {
        auto c = l.accept();
        c.send_bytes(c.recv_bytes() + "!");
        try {
            l.accept();  // the wrong key
        } catch (const mp::AuthenticationError&) {
        }
    });
    auto c = conn::Client(conn::Address(path), std::string("secret"));
    c.send_bytes("hi");
    CHECK(c.recv_bytes() == "hi!");
    CHECK_THROWS_AS(conn::Client(conn::Address(path), std::string("wrong")), mp::AuthenticationError);
    server.join();
}

TEST_CASE("TCP listener needs an authkey and reports the real port", "[connection][tcp]") {
    CHECK_THROWS_AS(conn::Listener(conn::Address("127.0.0.1", 0)), mp::ValueError);
    conn::Listener l(conn::Address("127.0.0.1", 0), std::string("k"));
    CHECK(l.address().port() != 0);
    std::thread server([&] {
        auto c = l.accept();
        c.send_bytes(c.recv_bytes());
    });
    auto c = conn::Client(l.address(), std::string("k"));
    c.send_bytes("tcp");
    CHECK(c.recv_bytes() == "tcp");
    server.join();
}

static bool have_cpython() { return std::system("PYENV_VERSION=3.13.0 python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1") == 0; }

TEST_CASE("CPython's Client authenticates against our Listener (same handshake)", "[connection][auth][cpython]") {
    if (!have_cpython()) {
        WARN("CPython >= 3.12 not found; skipping the interoperability check");
        return;
    }
    std::string path = "/tmp/mp-py-" + std::to_string(::getpid());
    conn::Listener l(conn::Address(path), std::string("abracadabra"));
    std::thread server([&] {
        try {
            auto c = l.accept();
            c.send_bytes(c.recv_bytes() + " back");
        } catch (...) {
        }
    });
    std::string cmd = "PYENV_VERSION=3.13.0 timeout 20 python3 -c \"from multiprocessing.connection import Client; "
                      "c = Client('" + path + "', authkey=b'abracadabra'); c.send_bytes(b'py'); "
                      "print(c.recv_bytes().decode())\"";
    FILE* f = ::popen(cmd.c_str(), "r");
    REQUIRE(f);
    char buf[256] = {0};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    ::pclose(f);
    server.join();
    CHECK(std::string(buf, n) == "py back\n");
}

TEST_CASE("our Client authenticates against CPython's Listener", "[connection][auth][cpython]") {
    if (!have_cpython()) {
        WARN("CPython >= 3.12 not found; skipping the interoperability check");
        return;
    }
    std::string path = "/tmp/mp-pyl-" + std::to_string(::getpid());
    ::unlink(path.c_str());
    std::string cmd = "PYENV_VERSION=3.13.0 timeout 20 python3 -c \"from multiprocessing.connection import Listener; "
                      "l = Listener('" + path + "', authkey=b'sesame'); c = l.accept(); "
                      "c.send_bytes(c.recv_bytes() + b' seen')\" &";
    REQUIRE(std::system(cmd.c_str()) == 0);
    // Python binds before it listens: until then a connect is refused.
    std::optional<conn::Connection> made;
    REQUIRE(test::wait_until([&] {
        try {
            made.emplace(conn::Client(conn::Address(path), std::string("sesame")));
            return true;
        } catch (const mp::ConnectionError&) {
            return false;
        }
    }, 30));
    auto& c = *made;
    c.send_bytes("cpp");
    CHECK(c.recv_bytes() == "cpp seen");
}
