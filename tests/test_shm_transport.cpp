// The shared-memory transport (ServerOptions::shared_memory): on by default
// for a Unix-socket manager and off over TCP; frames of any size cross the
// rings; the segment is reachable only after authentication and is sealed
// against a client resizing it; a peer that scribbles on it loses only its
// own connection; an idle server sleeps.  The rest of the suite runs over
// this transport too, and once more with MP_TRANSPORT=socket (scripts/test).
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

namespace mp = multiprocessing;
namespace md = multiprocessing::managers::detail;
using mp::connection::Address;
using mp::connection::Connection;
using mp::connection::detail::shm_stream;

namespace {

class Echo {
public:
    std::vector<char> bytes(std::vector<char> v) const { return v; }
    int add(int a, int b) const { return a + b; }
    std::vector<char> make(int n) const { return std::vector<char>(static_cast<std::size_t>(n), 'm'); }
};

struct ShmManager : mp::managers::BaseManager<ShmManager> {
    using BaseManager::BaseManager;
};

bool transport_on() { return mp::connection::detail::shared_memory_enabled(); }

// Ring segments mapped by a process (a memfd shows as "/memfd:NAME").
int ring_mappings(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    int n = 0;
    while (std::getline(in, line))
        if (line.find("memfd:multiprocessing-ring") != std::string::npos) ++n;
    return n;
}

std::set<std::string> dir_entries(const std::string& dir) {
    std::set<std::string> s;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (auto* e = ::readdir(d)) s.insert(e->d_name);
        ::closedir(d);
    }
    return s;
}

// The descriptor numbers of a process that are ring segments.
std::vector<int> ring_fds(pid_t pid) {
    std::vector<int> v;
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    for (auto& name : dir_entries(dir)) {
        if (name == "." || name == "..") continue;
        char target[256] = {};
        ssize_t n = ::readlink((dir + "/" + name).c_str(), target, sizeof target - 1);
        if (n > 0 && std::string(target).find("memfd:multiprocessing-ring") != std::string::npos)
            v.push_back(std::stoi(name));
    }
    return v;
}


std::vector<char> pattern(std::size_t n, unsigned seed) {
    std::vector<char> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
    return v;
}

// Two connections joined by a socket and switched to a ring segment of
// ring bytes each way, as a manager's client and server are.
std::pair<Connection, Connection> shm_pipe(std::size_t ring = 1u << 16) {
    auto pipe = mp::connection::Pipe();
    int fd = shm_stream::create(ring);
    REQUIRE(fd >= 0);
    std::vector<char> buf;
    Connection::begin_frame(buf);
    pipe.second.send_frame(buf, fd);  // second plays the server: it made the segment
    pipe.second.use_shared_memory(fd, 1);
    int got = -1;
    pipe.first.recv_frame(1 << 20, &got);
    REQUIRE(got >= 0);
    pipe.first.use_shared_memory(got, 0);
    pipe.first.set_timeout(60.0);  // a regression fails, never hangs
    pipe.second.set_timeout(60.0);
    return pipe;
}

// A frame: a prefix, then the given blocks each after a small marker, as
// an archive would write them with frame_blocks recording the big runs.
struct staged_frame {
    std::vector<char> buf;
    multiprocessing::detail::frame_blocks blocks;
    std::vector<char> whole;  // what the receiver's logical bytes must be
};
void build_staged(staged_frame& f, const std::vector<std::pair<const std::vector<char>*, multiprocessing::detail::block_kind>>& parts) {
    Connection::begin_frame(f.buf);
    f.blocks.clear();
    f.blocks.buf = &f.buf;
    f.whole.clear();
    auto own = [&](const std::string& s) {
        f.buf.insert(f.buf.end(), s.begin(), s.end());
        f.whole.insert(f.whole.end(), s.begin(), s.end());
    };
    own("head");
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i % 2) own("-" + std::to_string(i) + "-");  // some blocks touch, some do not
        f.blocks.add(f.buf.size(), parts[i].first->data(), parts[i].first->size(), parts[i].second);
        f.whole.insert(f.whole.end(), parts[i].first->begin(), parts[i].first->end());
    }
    own("tail");
}

// Reads a received frame back as one byte run, through memory_source (which
// claims the staged blocks and reads them in their places).
std::vector<char> read_logical(std::pair<const char*, std::size_t> f) {
    multiprocessing::detail::memory_source src(f.first, f.second);
    std::vector<char> out(src.remaining());
    REQUIRE(static_cast<std::size_t>(src.sgetn(out.data(), static_cast<std::streamsize>(out.size()))) == out.size());
    CHECK(src.remaining() == 0);
    return out;
}

// A raw staged-frame table, for forging.
std::vector<char> staged_table(std::uint32_t count, const std::vector<std::array<std::uint64_t, 3>>& es) {
    std::vector<char> t;
    auto be = [&](std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i) t.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    be(0xfffffffeu, 4);
    be(count, 4);
    for (auto& e : es) {
        be(e[0], 8);
        be(e[1], 8);
        t.push_back(static_cast<char>(e[2]));
    }
    return t;
}

// An authenticated connection that says hello as a client would.
Connection hello(const ShmManager& m) {
    Connection c = mp::connection::Client(m.address(), m.authkey());
    std::vector<char> buf;
    md::begin_request(buf, md::kind::hello, 1, 0xC0FFEE,
                      (std::uint64_t(md::protocol_version) << 32) | std::uint32_t(::getpid()));
    c.send_frame(buf);
    auto r = c.recv_frame(1 << 20);
    md::ReplyHeader h;
    REQUIRE(r.second >= sizeof h);
    std::memcpy(&h, r.first, sizeof h);
    REQUIRE(h.status == static_cast<std::uint8_t>(md::status::ok));
    return c;
}

// Asks for the segment; returns its descriptor (-1 if none came).
int ask_segment(Connection& c) {
    std::vector<char> buf;
    md::begin_request(buf, md::kind::shm_open, 2, 0, 0);
    c.send_frame(buf);
    int fd = -1;
    auto r = c.recv_frame(1 << 20, &fd);
    md::ReplyHeader h;
    REQUIRE(r.second >= sizeof h);
    std::memcpy(&h, r.first, sizeof h);
    CHECK(h.request_id == 2);
    if (h.status != static_cast<std::uint8_t>(md::status::ok) && fd >= 0) {
        ::close(fd);
        fd = -1;
    }
    return fd;
}

// True if the peer closes fd within `seconds` (reading and dropping what
// comes); any descriptor passed meanwhile is counted in *fds.
bool closed_within(int fd, double seconds, int* fds = nullptr) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
        int left = static_cast<int>(std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count());
        if (left <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, left) <= 0) continue;
        char data[4096];
        alignas(cmsghdr) char ctl[CMSG_SPACE(8 * sizeof(int))];
        iovec iov{data, sizeof data};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl;
        msg.msg_controllen = sizeof ctl;
        ssize_t r = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_type == SCM_RIGHTS) {
                std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (std::size_t i = 0; i < n; ++i) {
                    int got;
                    std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                    ::close(got);
                    if (fds) ++*fds;
                }
            }
        if (r == 0 || (r < 0 && errno != EINTR)) return true;
    }
}

}  // namespace

MP_EXPOSE(Echo, bytes, add, make)

// Starts m, makes a call, and checks whether this process and the server
// mapped a ring for it.
static void check_rings(ShmManager& m, bool expected) {
    int before = ring_mappings(::getpid());
    m.start();
    auto e = m.create<Echo>();
    CHECK(e.add(2, 3) == 5);
    if (expected) {
        CHECK(ring_mappings(::getpid()) > before);
        CHECK(ring_mappings(m.pid()) > 0);
    } else {
        CHECK(ring_mappings(::getpid()) == before);
        CHECK(ring_mappings(m.pid()) == 0);
    }
    m.shutdown();
}

TEST_CASE("a Unix-socket manager's calls go through shared memory, TCP's and a refusing server's stay on the socket",
          "[shm]") {
    ShmManager::register_type<Echo>("Echo");
    SECTION("Unix socket") {
        ShmManager m;
        check_rings(m, transport_on());
    }
    SECTION("TCP") {
        ShmManager m(Address("127.0.0.1", 0), std::string("tcp-key"));
        check_rings(m, false);
    }
    SECTION("ServerOptions::shared_memory = false") {
        mp::managers::ServerOptions o;
        o.shared_memory = false;
        ShmManager m({}, std::nullopt, o);
        check_rings(m, false);
    }
}

TEST_CASE("frames of every size cross the rings both ways, and pipelined calls keep their order", "[shm]") {
    ShmManager::register_type<Echo>("Echo");
    ShmManager m;
    m.start();
    auto e = m.create<Echo>();
    const std::size_t ring = 256u << 10;
    for (std::size_t n : {std::size_t(0), std::size_t(1), ring - 64, ring - 1, ring, ring + 1, 3 * ring + 17,
                          std::size_t(9) << 20}) {
        auto v = pattern(n, static_cast<unsigned>(n));
        CHECK(e.bytes(v) == v);
    }
    // Many calls in flight: the request ring fills before the first reply
    // is read, so both sides wait for room as well as for data.
    std::vector<mp::managers::Future<int>> fs;
    for (int i = 0; i < 20000; ++i) fs.push_back(mp::managers::call_async<&Echo::add>(e, i, 1));
    bool all = true;
    for (int i = 0; i < 20000; ++i) all = all && fs[static_cast<std::size_t>(i)].get() == i + 1;
    CHECK(all);
    // Big ones in flight too, from two threads at once.
    auto big = pattern(700u << 10, 7);
    std::vector<mp::managers::Future<std::vector<char>>> bs;
    for (int i = 0; i < 8; ++i) bs.push_back(mp::managers::call_async<&Echo::bytes>(e, big));
    std::atomic<bool> sums_ok{true};  // Catch2's CHECK is for the main thread only
    std::thread t([&] {
        for (int i = 0; i < 50; ++i)
            if (e.add(i, i) != 2 * i) sums_ok = false;
    });
    for (auto& f : bs) CHECK(f.get() == big);
    t.join();
    CHECK(sums_ok);
    m.shutdown();
}

TEST_CASE("a connection's byte stream through shared memory: wrap-around, back-pressure, timeouts and EOF",
          "[shm]") {
    auto pipe = shm_pipe();
    Connection& a = pipe.first;
    Connection& b = pipe.second;
    CHECK(a.shared_memory());
    CHECK(b.shared_memory());

    // Frames from 0 bytes to 5 ring sizes, both ways at once, checked byte
    // for byte: every offset of the ring is a frame's start and end.
    auto sizes = [](int seed) {
        std::vector<std::size_t> v;
        unsigned x = static_cast<unsigned>(seed);
        for (int i = 0; i < 400; ++i) {
            x = x * 1103515245u + 12345u;
            v.push_back(i % 40 == 0 ? (5u << 16) + (x % 1000) : (x >> 8) % 3000);
        }
        return v;
    };
    auto pump = [&](Connection& out, Connection& in, int seed) {
        std::thread w([&] {
            for (std::size_t n : sizes(seed)) out.send_bytes(pattern(n, static_cast<unsigned>(n) + 1).data(), n);
        });
        bool same = true;
        for (std::size_t n : sizes(seed)) {
            std::string s = in.recv_bytes();
            auto want = pattern(n, static_cast<unsigned>(n) + 1);
            same = same && s.size() == n && std::equal(s.begin(), s.end(), want.begin());
        }
        w.join();
        return same;
    };
    std::future<bool> there = std::async(std::launch::async, [&] { return pump(a, b, 1); });
    bool back = pump(b, a, 2);
    CHECK(there.get());
    CHECK(back);

    // Nothing to read: the timeout holds, and poll() says so.
    CHECK_FALSE(a.poll(0.05));
    a.set_timeout(0.1);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(a.recv_bytes(), mp::TimeoutError);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(90));
    a.set_timeout(std::nullopt);

    // A frame, then the peer goes: the frame is still read, then EOF.
    b.send_bytes(std::string("last"));
    b.close();
    CHECK(a.poll(1.0));
    CHECK(a.recv_bytes() == "last");
    CHECK_THROWS_AS(a.recv_bytes(), mp::EOFError);
}

TEST_CASE("a peer that breaks off mid-frame or stops reading is noticed", "[shm]") {
    auto pipe = shm_pipe();

    // Half a frame (its header says 100 bytes), then gone.
    char half[8] = {0, 0, 0, 100, 'a', 'b', 'c', 'd'};
    pipe.second.send_raw(half, sizeof half);
    // A writer facing a full ring and a reader that never reads: a deadline
    // ends its wait.
    pipe.first.set_deadline(std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
    std::vector<char> huge(1u << 18, 'z');
    CHECK_THROWS_AS(pipe.first.send_bytes(huge.data(), huge.size()), mp::TimeoutError);
    pipe.first.set_deadline(std::nullopt);
    pipe.second.close();
    CHECK_THROWS_AS(pipe.first.recv_bytes(), mp::connection::detail::truncated_frame);
}

TEST_CASE("only an authenticated client gets the segment, which has no name and cannot be resized", "[shm]") {
    if (!transport_on()) {
        WARN("MP_TRANSPORT=socket: the server gives out no segment");
        return;
    }
    ShmManager::register_type<Echo>("Echo");
    test::become_subreaper();
    ShmManager m;
    m.start();
    std::string dir = m.address().path().substr(0, m.address().path().rfind('/'));
    auto dir_before = dir_entries(dir);
    auto e = m.create<Echo>();
    CHECK(e.add(1, 1) == 2);

    SECTION("a wrong key is refused before anything else") {
        CHECK_THROWS_AS(mp::connection::Client(m.address(), std::string("wrong")), mp::AuthenticationError);
    }
    SECTION("asking without the handshake gets no descriptor, only a closed socket") {
        int s = mp::connection::detail::connect_fd(m.address());
        std::vector<char> buf;
        md::begin_request(buf, md::kind::shm_open, 1, 0, 0);
        auto f = Connection::seal_frame(buf);
        // Sent twice: once where the challenge's answer is read, once after.
        for (int i = 0; i < 2; ++i) (void)::send(s, f.first, f.second, MSG_NOSIGNAL);
        int fds = 0;
        CHECK(closed_within(s, 20.0, &fds));
        CHECK(fds == 0);
        ::close(s);
    }
    SECTION("no file names it, and another user cannot open the server's descriptor") {
        // Nothing under /dev/shm (Boost.Interprocess's home) is mapped.
        std::ifstream maps("/proc/" + std::to_string(m.pid()) + "/maps");
        std::string line;
        int named = 0;
        while (std::getline(maps, line)) named += line.find("/dev/shm/") != std::string::npos;
        CHECK(named == 0);
        CHECK(dir_entries(dir) == dir_before);
        auto fds = ring_fds(m.pid());
        // The server keeps no descriptor once it mapped a segment; if one
        // were open, only /proc would reach it, and only for its own user.
        for (int fd : fds) {
            if (::geteuid() != 0) break;
            pid_t child = ::fork();
            if (child == 0) {
                if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
                std::string p = "/proc/" + std::to_string(m.pid()) + "/fd/" + std::to_string(fd);
                ::_exit(::open(p.c_str(), O_RDWR) >= 0 ? 1 : 0);
            }
            int st = 0;
            REQUIRE(::waitpid(child, &st, 0) == child);
            CHECK(WIFEXITED(st));
            CHECK(WEXITSTATUS(st) == 0);
        }
        CHECK(fds.empty());
    }
    SECTION("a client cannot shrink or grow it, and scribbling on it drops only that client") {
        Connection c = hello(m);
        int fd = ask_segment(c);
        REQUIRE(fd >= 0);
        CHECK(::ftruncate(fd, 0) != 0);
        CHECK(errno == EPERM);
        CHECK(::ftruncate(fd, 1 << 30) != 0);
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(p != MAP_FAILED);
        ::close(fd);
        auto* h = static_cast<mp::connection::detail::shm_header*>(p);
        h->head[0].v.store(std::uint64_t(1) << 40);  // a write far past the ring
        char bell = 0;
        (void)::send(c.fileno(), &bell, 1, MSG_NOSIGNAL);
        CHECK(closed_within(c.fileno(), 20.0));
        ::munmap(p, static_cast<std::size_t>(st.st_size));
        CHECK(e.add(2, 2) == 4);  // everyone else is served as before
        CHECK(m.number_of_objects() == 1);
    }
    m.shutdown();
}

TEST_CASE("an idle server sleeps: no CPU used once calls stop", "[shm]") {
    ShmManager::register_type<Echo>("Echo");
    ShmManager m;
    m.start();
    auto e = m.create<Echo>();
    for (int i = 0; i < 2000; ++i) e.add(i, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    long t0 = test::cpu_ticks(m.pid());
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    long used = test::cpu_ticks(m.pid()) - t0;
    // A side still spinning would use the whole 60 ticks (10 ms each).
    CHECK(used <= 6);
    CHECK(e.add(1, 2) == 3);  // and wakes for the next call
    m.shutdown();
}

TEST_CASE("a client killed while the server writes a reply into a full ring ends only its session", "[shm]") {
    ShmManager::register_type<Echo>("Echo");
    test::become_subreaper();
    ShmManager m;
    m.start();
    auto e = m.create<Echo>();
    mp::Process p([e] {
        // Big replies in flight, then the whole process stops (its reader
        // thread too): the server fills the reply ring and waits for room.
        auto big = std::vector<char>(1u << 20, 'q');
        std::vector<mp::managers::Future<std::vector<char>>> fs;
        for (int i = 0; i < 8; ++i) fs.push_back(mp::managers::call_async<&Echo::bytes>(e, big));
        ::raise(SIGSTOP);
        test::forever();
    });
    p.start();
    auto state = [&] {
        std::ifstream in("/proc/" + std::to_string(p.pid()) + "/stat");
        std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto at = s.rfind(')');
        return at == std::string::npos || at + 2 >= s.size() ? '?' : s[at + 2];
    };
    CHECK(test::wait_until([&] { return state() == 'T'; }, 20.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.kill();
    test::join_or_kill(p, 30);
    CHECK(p.exitcode() == -SIGKILL);
    CHECK(test::wait_until([&] { return m.number_of_objects() == 1; }, 20.0));
    CHECK(e.add(5, 5) == 10);
    m.shutdown();
}

TEST_CASE("shutdown() ends a connection whose client never stops calling", "[shm]") {
    // Over shared memory such a connection's server thread never has to
    // look at its socket, which shutdown() shuts: it must stop anyway.
    ShmManager::register_type<Echo>("Echo");
    ShmManager m;
    m.start();
    auto e = m.create<Echo>();
    std::atomic<bool> failed{false}, stop{false};
    std::atomic<long> calls{0};
    std::thread t([&] {
        try {
            while (!stop.load()) {
                e.add(1, 1);
                ++calls;
            }
        } catch (const mp::ConnectionError&) {
            failed = true;
        }
    });
    CHECK(test::wait_until([&] { return calls.load() > 1000; }, 20.0));
    auto t0 = std::chrono::steady_clock::now();
    m.shutdown();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));  // not the 5 s wait for threads
    CHECK(test::wait_until([&] { return failed.load(); }, 20.0));
    stop = true;
    t.join();
}

TEST_CASE("an oversized reply breaks the async channel while another thread submits, and nothing else", "[shm]") {
    ShmManager::register_type<Echo>("Echo");
    mp::managers::ServerOptions o;
    o.max_frame = 1 << 20;
    ShmManager m({}, std::nullopt, o);
    m.start();
    auto e = m.create<Echo>();
    std::atomic<bool> stop{false};
    std::thread submitter([&] {
        while (!stop.load()) {
            try {
                (void)mp::managers::call_async<&Echo::add>(e, 1, 2);
            } catch (const mp::ConnectionError&) {
                // the channel broke under us: a new one is made on the next call
            }
        }
    });
    for (int i = 0; i < 5; ++i) {
        auto big = mp::managers::call_async<&Echo::make>(e, 2 << 20);  // a reply over the client's limit
        CHECK_THROWS_AS(big.get(), mp::ConnectionError);
    }
    stop = true;
    submitter.join();
    CHECK(mp::managers::call_async<&Echo::add>(e, 2, 2).get() == 4);
    CHECK(e.add(3, 3) == 6);
    m.shutdown();
}

TEST_CASE("big vectors and strings cross the ring apart from their frame and are handed over without a copy",
          "[shm][bulk]") {
    using multiprocessing::detail::block_kind;
    auto pipe = shm_pipe();
    auto a = pattern(300u << 10, 1), b = pattern(70u << 10, 2), c = pattern((1u << 20) + 3, 3), d = pattern(65u << 10, 4);
    staged_frame f;
    // Every kind, a spliced one (bytes) among them, two touching.
    build_staged(f, {{&a, block_kind::char_vector}, {&b, block_kind::bytes}, {&c, block_kind::string},
                     {&d, block_kind::uchar_vector}});
    std::thread w([&] { pipe.second.send_frame(f.buf, f.blocks); });
    auto got = pipe.first.recv_frame(1u << 30);
    w.join();
    // The frame's own bytes exclude the three staged blocks.
    CHECK(got.second == f.whole.size() - a.size() - c.size() - d.size());
    REQUIRE(multiprocessing::detail::received_blocks().blocks.size() == 3);
    CHECK(read_logical(got) == f.whole);
    CHECK(multiprocessing::detail::received_blocks().empty());  // claimed

    // Through the archive: each block becomes its value's own storage.
    std::vector<char> buf;
    multiprocessing::detail::frame_blocks blocks;
    blocks.buf = &buf;
    std::string s(c.begin(), c.end());
    std::vector<unsigned char> u(d.begin(), d.end());
    {
        Connection::begin_frame(buf);
        multiprocessing::detail::vector_sink sink(buf, &blocks);
        multiprocessing::detail::oarchive oa(sink);
        int small = 7;
        sink.alias(true, block_kind::char_vector);
        oa << a;
        sink.alias(false);
        oa << small;
        sink.alias(true, block_kind::string);
        oa << s;
        sink.alias(true, block_kind::uchar_vector);
        oa << u;
        sink.alias(true, block_kind::char_vector);
        oa << b;
    }
    REQUIRE(blocks.v.size() == 4);
    std::thread w2([&] { pipe.second.send_frame(buf, blocks); });
    got = pipe.first.recv_frame(1u << 30);
    w2.join();
    auto& rb = multiprocessing::detail::received_blocks().blocks;
    REQUIRE(rb.size() == 4);
    const char* staged_a = rb[0].data();
    const char* staged_s = rb[1].data();
    const char* staged_u = rb[2].data();
    const char* staged_b = rb[3].data();
    multiprocessing::detail::memory_source src(got.first, got.second);
    multiprocessing::detail::iarchive ia(src);
    std::vector<char> a2, b2;
    std::string s2;
    std::vector<unsigned char> u2;
    int small2 = 0;
    ia >> a2 >> small2 >> s2 >> u2 >> b2;
    CHECK(a2 == a);
    CHECK(small2 == 7);
    CHECK(s2 == s);
    CHECK(u2 == u);
    CHECK(b2 == b);
    CHECK(a2.data() == staged_a);  // handed over, not copied
    CHECK(s2.data() == staged_s);
    CHECK(reinterpret_cast<const char*>(u2.data()) == staged_u);
    CHECK(b2.data() == staged_b);
    CHECK(src.remaining() == 0);

    // Two staged blocks side by side, both handed over; recv_bytes puts
    // staged blocks back in their places.
    auto x = pattern(100u << 10, 5), y = pattern(80u << 10, 6);
    Connection::begin_frame(buf);
    blocks.clear();
    for (std::size_t len : {x.size(), y.size()})  // both sizes, then both blocks
        buf.insert(buf.end(), reinterpret_cast<const char*>(&len), reinterpret_cast<const char*>(&len) + sizeof len);
    blocks.add(buf.size(), x.data(), x.size(), block_kind::char_vector);
    blocks.add(buf.size(), y.data(), y.size(), block_kind::char_vector);
    std::thread w3([&] { pipe.second.send_frame(buf, blocks); });
    got = pipe.first.recv_frame(1u << 30);
    w3.join();
    REQUIRE(rb.size() == 2);
    const char* staged_y = rb[1].data();
    {
        multiprocessing::detail::memory_source src3(got.first, got.second);
        multiprocessing::detail::iarchive ia3(src3);
        std::size_t n1 = 0, n2 = 0;
        ia3 >> n1 >> n2;
        REQUIRE(n1 == x.size());
        REQUIRE(n2 == y.size());
        std::vector<char> x2, y2;
        CHECK(ia3.adopt(x2, n1));
        CHECK(ia3.adopt(y2, n2));
        CHECK(x2 == x);
        CHECK(y2 == y);
        CHECK(y2.data() == staged_y);
    }
    std::thread w4([&] { pipe.second.send_frame(buf, blocks); });
    std::string whole = pipe.first.recv_bytes(1u << 30);
    w4.join();
    std::string want(buf.begin() + Connection::header_room, buf.end());
    want.append(x.begin(), x.end());
    want.append(y.begin(), y.end());
    CHECK(whole == want);
}

TEST_CASE("more staged blocks than a table holds: the rest are spliced in", "[shm][bulk]") {
    using multiprocessing::detail::block_kind;
    auto pipe = shm_pipe();
    std::vector<std::vector<char>> vs;
    for (unsigned i = 0; i < Connection::header_room + 60; ++i) vs.push_back(pattern((64u << 10) + i, i));  // 72
    std::vector<std::pair<const std::vector<char>*, block_kind>> parts;
    for (auto& v : vs) parts.push_back({&v, parts.size() % 3 ? block_kind::string : block_kind::char_vector});
    staged_frame f;
    build_staged(f, parts);
    std::thread w([&] { pipe.second.send_frame(f.buf, f.blocks); });
    auto got = pipe.first.recv_frame(1u << 30);
    w.join();
    CHECK(multiprocessing::detail::received_blocks().blocks.size() == 64);
    CHECK(read_logical(got) == f.whole);
}

TEST_CASE("a staged frame cut short by a timeout or the peer's exit breaks the connection", "[shm][bulk]") {
    auto pipe = shm_pipe(1u << 20);
    // Two blocks of 100000 bytes cut at offsets 4 and 12: the first whole,
    // half of the second, then nothing.  All of it fits in the ring, so it
    // is there before the read starts.
    auto t = staged_table(2, {{{4, 100000, 1}}, {{100012, 100000, 2}}});
    for (int ch : {0x00, 0x03, 0x0d, 0x50}) t.push_back(static_cast<char>(ch));  // 200016 bytes
    t.insert(t.end(), 16, 'h');
    t.insert(t.end(), 100000, 'a');
    t.insert(t.end(), 50000, 'b');
    pipe.second.send_raw(t.data(), t.size());
    pipe.first.set_timeout(0.2);
    CHECK_THROWS_AS(pipe.first.recv_frame(1u << 20), mp::TimeoutError);
    CHECK(pipe.first.closed());  // a retried read would take block bytes for a header
    CHECK(multiprocessing::detail::received_blocks().empty());  // the whole first block too
    CHECK_THROWS_AS(pipe.first.recv_frame(1u << 20), mp::ConnectionError);

    // The peer gone right after the table: a truncated frame, not a clean EOF.
    auto p2 = shm_pipe();
    auto t2 = staged_table(1, {{{4, 100000, 1}}});
    p2.second.send_raw(t2.data(), t2.size());
    p2.second.close();
    CHECK_THROWS_AS(p2.first.recv_frame(1u << 20), mp::connection::detail::truncated_frame);
    CHECK(p2.first.closed());
}

TEST_CASE("a staged block read as another type is read in its place", "[shm][bulk]") {
    using multiprocessing::detail::block_kind;
    auto pipe = shm_pipe();
    // A vector of doubles whose bytes were (wrongly) staged as a char vector:
    // the reader gets the same values through the staged block.
    std::vector<double> v(20000);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5;
    std::vector<char> buf;
    multiprocessing::detail::frame_blocks blocks;
    blocks.buf = &buf;
    {
        Connection::begin_frame(buf);
        multiprocessing::detail::vector_sink sink(buf, &blocks);
        multiprocessing::detail::oarchive oa(sink);
        sink.alias(true, block_kind::char_vector);
        oa << v;
        sink.alias(false);
        oa << std::string("after");
    }
    REQUIRE(blocks.v.size() == 1);
    std::thread w([&] { pipe.second.send_frame(buf, blocks); });
    auto got = pipe.first.recv_frame(1u << 30);
    w.join();
    multiprocessing::detail::memory_source src(got.first, got.second);
    multiprocessing::detail::iarchive ia(src);
    std::vector<double> v2;
    std::string after;
    ia >> v2 >> after;
    CHECK(v2 == v);
    CHECK(after == "after");
    // A string decoded over a block's edge is copied together.
    auto x = pattern(100u << 10, 9);
    staged_frame f;
    build_staged(f, {{&x, block_kind::char_vector}});
    std::thread w2([&] { pipe.second.send_frame(f.buf, f.blocks); });
    got = pipe.first.recv_frame(1u << 30);
    w2.join();
    multiprocessing::detail::memory_source src2(got.first, got.second);
    const char* p = src2.take(f.whole.size());
    CHECK(std::equal(p, p + f.whole.size(), f.whole.begin()));
}

TEST_CASE("a forged staged-block table breaks only that connection", "[shm][bulk]") {
    struct forged {
        const char* what;
        std::vector<char> table;
        std::uint32_t frame_len;
    };
    std::vector<forged> cases = {
        {"no blocks", staged_table(0, {}), 10},
        {"too many blocks", staged_table(65, {}), 10},
        {"kind 0", staged_table(1, {{{0, 4, 0}}}), 10},
        {"kind 4", staged_table(1, {{{0, 4, 4}}}), 10},
        {"empty block", staged_table(1, {{{0, 0, 1}}}), 10},
        {"past the end", staged_table(1, {{{8, 4, 1}}}), 10},
        {"longer than the frame", staged_table(1, {{{0, 11, 1}}}), 10},
        {"overlapping", staged_table(2, {{{0, 4, 1}}, {{2, 4, 1}}}), 10},
        {"out of order", staged_table(2, {{{6, 2, 1}}, {{0, 2, 1}}}), 10},
        {"huge offset", staged_table(1, {{{~0ull - 1, 4, 1}}}), 10},
        {"frame over the limit", staged_table(1, {{{0, 4, 1}}}), 0x7ffffff0u},
    };
    for (auto& c : cases) {
        INFO(c.what);
        auto pipe = shm_pipe();
        auto t = c.table;
        for (int i = 3; i >= 0; --i) t.push_back(static_cast<char>((c.frame_len >> (8 * i)) & 0xff));
        t.insert(t.end(), 16, 'q');
        pipe.second.send_raw(t.data(), t.size());
        CHECK_THROWS_WITH(pipe.first.recv_frame(1u << 20), Catch::StartsWith("bad frame"));
        CHECK(pipe.first.closed());
    }
    // A table over the socket (no ring) is a bad length too.
    auto pipe = mp::connection::Pipe();
    auto t = staged_table(1, {{{0, 4, 1}}});
    pipe.second.send_raw(t.data(), t.size());
    CHECK_THROWS_WITH(pipe.first.recv_frame(1u << 20), Catch::StartsWith("bad frame"));
    // A block cut off by the peer's exit.
    auto p2 = shm_pipe();
    auto t2 = staged_table(1, {{{4, 100000, 1}}});
    for (int ch : {0x00, 0x01, 0x86, 0xa8}) t2.push_back(static_cast<char>(ch));  // 100008 bytes
    t2.insert(t2.end(), 8, 'h');
    t2.insert(t2.end(), 5000, 'b');
    p2.second.send_raw(t2.data(), t2.size());
    p2.second.close();
    CHECK_THROWS_AS(p2.first.recv_frame(1u << 20), mp::connection::detail::truncated_frame);
}
