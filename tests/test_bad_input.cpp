// Bad input: a hostile or broken peer speaking raw bytes to the manager.
// After each, the server drops that connection (or replies with an error
// where the protocol allows), keeps serving others and does not balloon.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <boost/serialization/vector.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>
#include <limits>
#include <iostream>
#include <random>

namespace mp = multiprocessing;
namespace md = multiprocessing::managers::detail;

namespace {

class Sink {
public:
    void put(const std::string& s) { total_ += s.size(); }
    void put_all(const std::vector<int>& v) { total_ += v.size(); }
    std::size_t total() const { return total_; }

private:
    std::size_t total_ = 0;
};

}  // namespace

MP_EXPOSE(Sink, put, put_all, total)

struct BadManager : mp::managers::BaseManager<BadManager> {
    using BaseManager::BaseManager;
};

static const bool bad_registered = [] {
    BadManager::register_type<Sink>("Sink");
    return true;
}();

namespace {

long rss_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

int raw_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t w = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (w <= 0) return;  // the server may already have hung up
        off += static_cast<std::size_t>(w);
    }
}

// Reads until the server closes (true) or `seconds` pass (false).
bool closed_by_server(int fd, double seconds = 5.0) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    char buf[4096];
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return true;
    }
    return false;
}

std::string be32(std::uint32_t v) {
    std::string s(4, '\0');
    for (int i = 3; i >= 0; --i) { s[i] = static_cast<char>(v & 0xff); v >>= 8; }
    return s;
}
std::string be64(std::uint64_t v) {
    std::string s(8, '\0');
    for (int i = 7; i >= 0; --i) { s[i] = static_cast<char>(v & 0xff); v >>= 8; }
    return s;
}

std::string request(md::kind k, std::uint64_t id, std::uint64_t sig, const std::string& name,
                    const std::string& body) {
    md::RequestHeader h{static_cast<std::uint8_t>(k), 0, static_cast<std::uint16_t>(name.size()), 0, 7, id, sig};
    std::string s(reinterpret_cast<const char*>(&h), sizeof h);
    return s + name + body;
}

template <class T>
std::string archive_of(const T& v) {
    std::vector<char> out;
    {
        multiprocessing::detail::vector_sink sink(out);
        multiprocessing::detail::oarchive oa(sink);
        oa << v;
    }
    return std::string(out.begin(), out.end());
}

// Replaces the first 8-byte field equal to `from` with `to`.
std::string patch_u64(std::string s, std::uint64_t from, std::uint64_t to) {
    for (std::size_t i = 0; i + 8 <= s.size(); ++i) {
        std::uint64_t v;
        std::memcpy(&v, s.data() + i, 8);
        if (v == from) {
            std::memcpy(&s[i], &to, 8);
            return s;
        }
    }
    FAIL("field not found");
    return s;
}

// An authenticated connection that has said hello.
mp::connection::Connection hello(const BadManager& m) {
    auto c = mp::connection::Client(m.address(), m.authkey());
    c.send_bytes(request(md::kind::hello, 0xbad0000 + ::getpid(),
                         (std::uint64_t(md::protocol_version) << 32) | std::uint32_t(::getpid()), "", ""));
    auto r = c.recv_bytes();
    REQUIRE(r.size() >= sizeof(md::ReplyHeader));
    REQUIRE(r[0] == static_cast<char>(md::status::ok));
    return c;
}

// Sends one frame; returns "closed" if the server hung up, otherwise the
// error reply's type name.
std::string outcome(mp::connection::Connection& c, const std::string& payload) {
    c.send_bytes(payload);
    c.set_timeout(5.0);
    try {
        auto r = c.recv_bytes();
        if (r.size() < sizeof(md::ReplyHeader)) return "short reply";
        if (r[0] == static_cast<char>(md::status::ok)) return "ok";
        md::reader rd{r.data() + sizeof(md::ReplyHeader), r.size() - sizeof(md::ReplyHeader)};
        rd.pod<std::uint8_t>();
        std::string type = rd.str();
        return "error " + type + ": " + rd.str();
    } catch (const mp::ConnectionError&) {
        return "closed";
    }
}

// The server's stderr goes to a file so its log lines can be counted.
struct StderrCapture {
    std::string path;
    int saved = -1;
    StderrCapture() {
        char tmpl[] = "/tmp/mp-bad-input-XXXXXX";
        int fd = ::mkstemp(tmpl);
        path = tmpl;
        std::fflush(stderr);
        saved = ::dup(2);
        ::dup2(fd, 2);
        ::close(fd);
    }
    void restore() {
        if (saved < 0) return;
        std::fflush(stderr);
        ::dup2(saved, 2);
        ::close(saved);
        saved = -1;
    }
    ~StderrCapture() {
        restore();
        ::unlink(path.c_str());
    }
    std::vector<std::string> lines() const {
        std::ifstream f(path);
        std::vector<std::string> v;
        std::string l;
        while (std::getline(f, l))
            if (l.find("[multiprocessing manager") != std::string::npos) v.push_back(l);
        return v;
    }
};

}  // namespace

TEST_CASE("the server survives hostile and broken peers", "[bad_input]") {
    StderrCapture cap;
    BadManager m;
    m.start();  // the server inherits the captured stderr
    cap.restore();
    auto sink = m.create<Sink>();
    sink.put("warm up");
    const pid_t sp = m.pid();
    const std::string path = m.address().path();
    const long rss0 = rss_kib(sp);
    int tried = 0, survived = 0;

    auto id = sink._token().id;
    auto put_sig = md::method_signature<&Sink::put>();
    auto put_all_sig = md::method_signature<&Sink::put_all>();
    auto total_sig = md::method_signature<&Sink::total>();

    // After each input: still serving, and which log lines appeared.
    std::size_t logged = cap.lines().size();
    auto check = [&](const std::string& what, bool expect_log, const std::string& result) {
        ++tried;
        if (expect_log) test::wait_until([&] { return cap.lines().size() > logged; }, 3);
        auto ls = cap.lines();
        std::size_t fresh = ls.size() - logged;
        logged = ls.size();
        bool serving = false;
        try {
            sink.put("x");
            serving = sink.total() > 0;
        } catch (const std::exception& e) {
            INFO(e.what());
        }
        survived += serving;
        std::cout << "[bad_input] " << what << ": " << result << "; " << fresh << " log line(s)"
                  << (fresh ? " (" + ls.back() + ")" : "") << "; still serving: " << (serving ? "yes" : "NO")
                  << std::endl;
        CHECK(serving);
        if (expect_log) CHECK(fresh == 1);
    };

    {
        // 1. random bytes instead of the handshake
        std::mt19937 rng(42);
        std::string junk(4096, '\0');
        for (auto& ch : junk) ch = static_cast<char>(rng());
        int fd = raw_connect(path);
        REQUIRE(fd >= 0);
        write_all(fd, junk);
        bool closed = closed_by_server(fd);
        ::close(fd);
        CHECK(closed);
        check("random bytes", true, closed ? "closed" : "NOT closed");
    }
    {
        // 2a. a truncated frame during the handshake
        int fd = raw_connect(path);
        write_all(fd, be32(100) + "only ten b");
        ::shutdown(fd, SHUT_WR);
        bool closed = closed_by_server(fd);
        ::close(fd);
        CHECK(closed);
        check("truncated handshake frame", true, closed ? "closed" : "NOT closed");
    }
    {
        // 2b. a truncated request frame after hello, then the peer hangs up
        auto c = hello(m);
        write_all(c.fileno(), be32(100) + "only ten b");
        ::shutdown(c.fileno(), SHUT_WR);
        bool closed = closed_by_server(c.fileno());
        CHECK(closed);
        check("truncated request frame", true, closed ? "closed" : "NOT closed");
    }
    {
        // 3a. length prefix 2^40 before authentication
        int fd = raw_connect(path);
        write_all(fd, be32(0xffffffffu) + be64(std::uint64_t(1) << 40));
        bool closed = closed_by_server(fd);
        ::close(fd);
        CHECK(closed);
        check("2^40 length prefix (handshake)", true, closed ? "closed" : "NOT closed");
    }
    {
        // 3b. length prefix 2^40 after hello
        auto c = hello(m);
        write_all(c.fileno(), be32(0xffffffffu) + be64(std::uint64_t(1) << 40) + "xxxx");
        bool closed = closed_by_server(c.fileno());
        CHECK(closed);
        check("2^40 length prefix (request)", true, closed ? "closed" : "NOT closed");
    }
    {
        // 3c. a length just under the 1 GiB limit, then silence: the server
        // must not allocate the announced size up front.
        auto c = hello(m);
        write_all(c.fileno(), be32(0x3ffffff0u) + "xxxx");
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        long pending = rss_kib(sp);
        std::cout << "[bad_input] RSS while a 1 GiB frame is pending: " << pending << " KiB" << std::endl;
        CHECK(pending - rss0 < 64 * 1024);
        c.close();
        check("1 GiB length prefix, then hang up", true, "closed by us");
    }
    {
        // 4. wrong authkey
        std::string r = "accepted";
        try {
            mp::connection::Client(m.address(), std::string("not the key"));
        } catch (const mp::AuthenticationError& e) {
            r = std::string("AuthenticationError: ") + e.what();
        }
        CHECK(r.rfind("AuthenticationError", 0) == 0);
        check("wrong authkey", true, r);
    }
    {
        // 5. a request before hello
        auto c = mp::connection::Client(m.address(), m.authkey());
        auto r = outcome(c, request(md::kind::call, id, total_sig, "total", ""));
        CHECK(r == "closed");
        check("call before hello", true, r);
    }
    {
        // 6. valid handshake + hello, then a corrupt archive
        auto c = hello(m);
        auto r = outcome(c, request(md::kind::call, id, put_sig, "put", std::string("\xff\xff\xff\xff\x01", 5)));
        CHECK(r.rfind("error", 0) == 0);
        check("corrupt archive", false, r);
        auto r2 = outcome(c, request(md::kind::call, id, total_sig, "total", ""));
        CHECK(r2 == "ok");  // the connection stays usable after an error reply
    }
    {
        // 7. a string length of 2^40
        auto c = hello(m);
        auto body = patch_u64(archive_of(std::string("abc")), 3, std::uint64_t(1) << 40);
        auto r = outcome(c, request(md::kind::call, id, put_sig, "put", body));
        CHECK(r.rfind("error", 0) == 0);
        check("string claiming 2^40 bytes", false, r);
    }
    {
        // 8. a container length of 2^40 elements
        auto c = hello(m);
        auto body = patch_u64(archive_of(std::vector<int>{1, 2, 3}), 3, std::uint64_t(1) << 40);
        auto r = outcome(c, request(md::kind::call, id, put_all_sig, "put_all", body));
        CHECK(r.rfind("error", 0) == 0);
        check("vector claiming 2^40 elements", false, r);
    }
    {
        // 9. unknown object id
        auto c = hello(m);
        auto r = outcome(c, request(md::kind::call, 0xdeadbeef, total_sig, "total", ""));
        CHECK(r.find("KeyError") != std::string::npos);
        check("unknown object id", false, r);
    }
    {
        // 10. unknown method
        auto c = hello(m);
        auto r = outcome(c, request(md::kind::call, id, total_sig, "no_such_method", ""));
        CHECK(r.find("AttributeError") != std::string::npos);
        check("unknown method", false, r);
    }
    {
        // 11. argument types that do not match (put called with put_all's signature)
        auto c = hello(m);
        auto r = outcome(c, request(md::kind::call, id, put_all_sig, "put", archive_of(std::vector<int>{1})));
        CHECK(r.find("TypeError") != std::string::npos);
        check("mismatched argument types", false, r);
    }
    {
        // 12. unknown request kind, a name overrunning the frame, a short header
        auto c = hello(m);
        std::string bad = request(md::kind::call, id, total_sig, "total", "");
        bad[0] = 99;
        auto r = outcome(c, bad);
        CHECK(r.find("ProtocolError") != std::string::npos);
        check("unknown request kind", false, r);
        std::string overrun = request(md::kind::call, id, total_sig, "total", "");
        overrun[2] = static_cast<char>(0xff);
        r = outcome(c, overrun);
        CHECK(r == "closed");
        check("name length overrunning the frame", true, r);
        auto c2 = hello(m);
        r = outcome(c2, "short");
        CHECK(r == "closed");
        check("request shorter than its header", true, r);
    }
    {
        // 13. many garbage connections in a row (no per-connection leak)
        std::mt19937 rng(7);
        for (int i = 0; i < 200; ++i) {
            int fd = raw_connect(path);
            std::string junk(1 + rng() % 300, '\0');
            for (auto& ch : junk) ch = static_cast<char>(rng());
            write_all(fd, junk);
            ::close(fd);
        }
        test::wait_until([&] { return cap.lines().size() >= logged + 200; }, 10);
        logged = cap.lines().size() - 1;  // check() expects one fresh line
        check("200 garbage connections", false, "sent");
    }

    const long rss1 = rss_kib(sp);
    std::cout << "[bad_input] " << tried << " bad inputs tried, server survived " << survived << "; server RSS "
              << rss0 << " KiB -> " << rss1 << " KiB (growth " << (rss1 - rss0) << " KiB)" << std::endl;
    CHECK(survived == tried);
    CHECK(rss1 - rss0 < 64 * 1024);
}

TEST_CASE("decref refuses counts below 1 and never releases another session's references", "[bad_input]") {
    BadManager m({}, std::nullopt, [] {
        mp::managers::ServerOptions o;
        o.log_errors = false;
        return o;
    }());
    m.start();
    auto sink = m.create<Sink>();  // this process's reference, in its own session
    sink.put("abc");
    auto id = sink._token().id;
    auto c = hello(m);
    // The raw session takes one reference of its own.
    std::vector<char> ids;
    md::put_pod(ids, id);
    CHECK(outcome(c, request(md::kind::incref, 0, 0, "", std::string(ids.begin(), ids.end()))) == "ok");
    for (std::int64_t bad : {std::int64_t(0), std::int64_t(-1), std::int64_t(-1000000),
                             std::numeric_limits<std::int64_t>::min()}) {
        std::vector<char> b;
        md::put_pod(b, id);
        md::put_pod(b, bad);
        CHECK(outcome(c, request(md::kind::decref, 0, 0, "", std::string(b.begin(), b.end()))).find("ValueError: decref") != std::string::npos);
    }
    CHECK(m.debug_info().find("refcount=2") != std::string::npos);  // unchanged: ours and the raw session's
    // Releasing more than it holds releases only what it holds.
    std::vector<char> b;
    md::put_pod(b, id);
    md::put_pod(b, std::numeric_limits<std::int64_t>::max());
    CHECK(outcome(c, request(md::kind::decref, 0, 0, "", std::string(b.begin(), b.end()))) == "ok");
    CHECK(m.debug_info().find("refcount=1") != std::string::npos);
    CHECK(sink.total() == 3);  // ours is still alive
    CHECK(m.number_of_objects() == 1);
}
