// Big arguments and results.  A string or a vector of plain values that is
// the caller's own object (or a method's by-value result) goes on the wire
// from where it lies (frame_blocks) instead of being copied into the frame;
// big decoded vectors and strings are allocated on huge pages.  These tests check that what arrives is what was sent,
// wherever a big block sits among other arguments, over both transports
// (scripts/test runs the suite again with MP_TRANSPORT=socket).
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <future>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mp = multiprocessing;
using mp::managers::call_async;

namespace {

// FNV-1a over bytes, so a block shifted, cut or swapped changes the result.
std::uint64_t hash_bytes(const void* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
    auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

// Serializing it fails on the client, after a big argument before it was
// already recorded.
struct Boom {
    bool fail = true;
    template <class Ar>
    void serialize(Ar&, unsigned) {
        if (fail) throw std::runtime_error("boom while serializing");
    }
};

class Bulk;
using BulkProxy = mp::managers::Proxy<Bulk>;

class Bulk {
public:
    std::vector<char> echo(std::vector<char> v) const { return v; }
    std::string echo_s(std::string s) const { return s; }
    std::vector<double> echo_d(std::vector<double> v) const { return v; }
    std::vector<unsigned char> echo_u(std::vector<unsigned char> v) const { return v; }
    std::uint64_t mixed(int a, std::vector<double> big, std::string small, std::vector<char> big2, long long z) const {
        std::uint64_t h = hash_bytes(&a, sizeof a);
        h = hash_bytes(big.data(), big.size() * sizeof(double), h);
        h = hash_bytes(small.data(), small.size(), h);
        h = hash_bytes(big2.data(), big2.size(), h);
        return hash_bytes(&z, sizeof z, h);
    }
    std::uint64_t strings(std::string a, std::string b, std::string c) const {
        return hash_bytes(c.data(), c.size(), hash_bytes(b.data(), b.size(), hash_bytes(a.data(), a.size())));
    }
    std::uint64_t view(std::string_view s) const { return hash_bytes(s.data(), s.size()); }
    std::uint64_t nested(std::vector<std::vector<char>> vv) const {
        std::uint64_t h = hash_bytes(nullptr, 0);
        for (auto& v : vv) h = hash_bytes(v.data(), v.size(), h);
        return h;
    }
    std::size_t boom(std::vector<char> v, Boom) const { return v.size(); }
    std::size_t size(std::vector<char> v) const { return v.size(); }
    // Frames the server received with big blocks apart (shared memory).
    std::uint64_t staged() const { return mp::connection::detail::staged_frames_received().load(); }
    // Calls its own manager from inside a method: run inline, not sent.
    std::vector<char> relay(BulkProxy self, std::vector<char> v) const;
};

struct BulkManager : mp::managers::BaseManager<BulkManager> {
    using BaseManager::BaseManager;
};

std::vector<char> pattern(std::size_t n, unsigned seed) {
    std::vector<char> v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : v) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>(x >> 24);
    }
    return v;
}

}  // namespace

MP_EXPOSE(Bulk, echo, echo_s, echo_d, echo_u, mixed, strings, view, nested, boom, size, staged, relay)
static const bool registered = (BulkManager::register_type<Bulk>("Bulk"), true);

std::vector<char> Bulk::relay(BulkProxy self, std::vector<char> v) const {
    auto r = self.echo(v);
    r.push_back('!');
    return r;
}

TEST_CASE("big vectors and strings come back whole", "[bulk]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(64 << 10) - 1, std::size_t(64 << 10),
                          std::size_t(3 << 20) + 7, std::size_t(9 << 20) + 3, std::size_t(40 << 20) + 5}) {
        INFO("size " << n);
        auto v = pattern(n, static_cast<unsigned>(n));
        CHECK(b.echo(v) == v);
        std::string s(v.begin(), v.end());
        CHECK(b.echo_s(s) == s);
        std::vector<unsigned char> u(v.begin(), v.end());
        CHECK(b.echo_u(u) == u);
    }
    std::vector<double> d(1500000);
    std::iota(d.begin(), d.end(), 0.25);
    CHECK(b.echo_d(d) == d);
    m.shutdown();
}

TEST_CASE("big blocks keep their places among other arguments", "[bulk]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    std::vector<double> big(300000);
    std::iota(big.begin(), big.end(), 1.5);
    auto big2 = pattern(5 << 20, 7);
    std::string small = "between";
    Bulk local;
    CHECK(b.mixed(-3, big, small, big2, 1LL << 40) == local.mixed(-3, big, small, big2, 1LL << 40));
    // The same values as temporaries (moved in, alive until the call ends).
    CHECK(b.mixed(4, std::vector<double>(big), "x", pattern(5 << 20, 7), 9) == local.mixed(4, big, "x", big2, 9));
    // Three strings: plain arguments, the middle one small.
    std::string a(1 << 20, 'a'), c(2 << 20, 'c');
    CHECK(b.strings(a, "b", c) == local.strings(a, "b", c));
    CHECK(b.strings(a, std::string(100 << 10, 'q'), c) == local.strings(a, std::string(100 << 10, 'q'), c));
    // Converted on the way (string_view and const char* become strings).
    std::string viewed(200 << 10, 'v');
    CHECK(b.view(std::string_view(viewed)) == local.view(viewed));
    // Vectors inside a vector are copied, not referred to.
    std::vector<std::vector<char>> vv{pattern(100 << 10, 1), {}, pattern(70 << 10, 2)};
    CHECK(b.nested(vv) == local.nested(vv));
    // Big enough that the copied frame's buffer grows onto huge pages.
    std::vector<std::vector<char>> huge{pattern(17 << 20, 3), pattern(17 << 20, 4)};
    CHECK(b.nested(huge) == local.nested(huge));
    m.shutdown();
}

TEST_CASE("a call that fails while serializing leaves the next call whole", "[bulk]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    auto big = pattern(1 << 20, 3);
    CHECK_THROWS_WITH(b.boom(big, Boom{}), Catch::Contains("boom while serializing"));
    // Nothing of the failed call reached the server: the connection still
    // speaks in whole frames, and a small call after it is small.
    CHECK(b.size(std::vector<char>(10, 'x')) == 10);
    CHECK(b.echo(big) == big);
    CHECK(b.size(std::vector<char>()) == 0);
    m.shutdown();
}

TEST_CASE("pipelined calls with big arguments", "[bulk][async]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    std::vector<std::vector<char>> blocks;
    for (unsigned i = 0; i < 8; ++i) blocks.push_back(pattern((256u << 10) * (i + 1) + i, i));
    std::vector<mp::managers::Future<std::vector<char>>> fs;
    for (auto& v : blocks) fs.push_back(call_async<&Bulk::echo>(b, v));
    for (std::size_t i = 0; i < fs.size(); ++i) {
        REQUIRE(fs[i].wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        CHECK(fs[i].get() == blocks[i]);
    }
    m.shutdown();
}

TEST_CASE("a big reply between small pipelined ones keeps its place", "[bulk][async]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    auto big = pattern(1 << 20, 5);
    std::vector<mp::managers::Future<std::size_t>> before, after;
    for (int i = 0; i < 50; ++i) before.push_back(call_async<&Bulk::size>(b, std::vector<char>(static_cast<std::size_t>(i), 'a')));
    auto mid = call_async<&Bulk::echo>(b, big);
    for (int i = 0; i < 50; ++i) after.push_back(call_async<&Bulk::size>(b, std::vector<char>(static_cast<std::size_t>(i) + 100, 'b')));
    for (int i = 0; i < 50; ++i) {
        REQUIRE(before[static_cast<std::size_t>(i)].wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        CHECK(before[static_cast<std::size_t>(i)].get() == static_cast<std::size_t>(i));
    }
    REQUIRE(mid.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK(mid.get() == big);
    for (int i = 0; i < 50; ++i) {
        REQUIRE(after[static_cast<std::size_t>(i)].wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        CHECK(after[static_cast<std::size_t>(i)].get() == static_cast<std::size_t>(i) + 100);
    }
    m.shutdown();
}

TEST_CASE("a method passing a big vector to its own manager", "[bulk]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    auto big = pattern(2 << 20, 6);
    auto r = b.relay(b, big);
    REQUIRE(r.size() == big.size() + 1);
    CHECK(r.back() == '!');
    r.pop_back();
    CHECK(r == big);
    m.shutdown();
}

TEST_CASE("big arguments and results over TCP", "[bulk][tcp]") {
    BulkManager m(mp::connection::Address("127.0.0.1", 0), std::string("bulk-key"));
    m.start();
    auto b = m.create<Bulk>();
    auto big = pattern(6 << 20, 8);
    CHECK(b.echo(big) == big);
    std::string s(big.begin(), big.end());
    Bulk local;
    CHECK(b.strings(s, "-", s) == local.strings(s, "-", s));
    m.shutdown();
}

TEST_CASE("big typed dict values and queue items", "[bulk]") {
    mp::managers::SyncManager m;
    m.start();
    auto d = m.dict<std::string, std::string>();
    std::string v(3 << 20, 'd');
    v[12345] = 'e';
    d["k"] = v;
    d.update({{"small", "s"}});
    CHECK(std::string(d["k"]) == v);
    CHECK(std::string(d["small"]) == "s");
    auto q = m.Queue<std::vector<char>>();
    auto item = pattern(2 << 20, 9);
    q.put(item);
    q.put(std::vector<char>(5, 'z'));
    CHECK(q.get() == item);
    CHECK(q.get() == std::vector<char>(5, 'z'));
    m.shutdown();
}

TEST_CASE("over shared memory big char vectors and strings come apart from their frames, each way", "[bulk][shm]") {
    BulkManager m;
    m.start();
    auto b = m.create<Bulk>();
    bool shm = mp::connection::detail::shared_memory_enabled();
    auto& mine = mp::connection::detail::staged_frames_received();
    // Counts frames received each way; over the socket none come apart.
    auto crossed = [&](auto call) {
        std::uint64_t s0 = b.staged(), c0 = mine.load();
        call();
        return std::make_pair(b.staged() - s0, mine.load() - c0);
    };
    std::uint64_t one = shm ? 1 : 0;
    auto v = pattern(3u << 20, 11);
    std::string s(v.begin(), v.end());
    std::vector<unsigned char> u(v.begin(), v.end());
    CHECK(crossed([&] { CHECK(b.echo(v) == v); }) == std::make_pair(one, one));
    CHECK(crossed([&] { CHECK(b.echo_s(s) == s); }) == std::make_pair(one, one));
    CHECK(crossed([&] { CHECK(b.echo_u(u) == u); }) == std::make_pair(one, one));
    Bulk local;
    // Plain strings (no archive), two big ones in one request.
    CHECK(crossed([&] { CHECK(b.strings(s, "b", s) == local.strings(s, "b", s)); }) == std::make_pair(one, std::uint64_t(0)));
    // A vector of doubles is spliced back into its frame: nothing apart.
    std::vector<double> d(100000, 2.5);
    CHECK(crossed([&] { CHECK(b.echo_d(d) == d); }) == std::make_pair(std::uint64_t(0), std::uint64_t(0)));
    // Small ones stay in their frames.
    auto small = pattern(1000, 12);
    CHECK(crossed([&] { CHECK(b.echo(small) == small); }) == std::make_pair(std::uint64_t(0), std::uint64_t(0)));
    // Pipelined: the replies come apart on the async channel's thread.
    CHECK(crossed([&] {
              auto f1 = call_async<&Bulk::echo>(b, v);
              auto f2 = call_async<&Bulk::echo_s>(b, s);
              REQUIRE(f1.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
              REQUIRE(f2.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
              CHECK(f1.get() == v);
              CHECK(f2.get() == s);
          }) == std::make_pair(2 * one, 2 * one));
    m.shutdown();
}
