// multiprocessing::shared_memory: ports of CPython's _TestSharedMemory
// (SharedMemory and ShareableList basics, across processes), plus layout
// compatibility with CPython itself when python3 is available.
//
// Every named segment a test makes is tracked: each test unlinks what it
// made and checks /dev/shm no longer has it; a scope guard removes the
// leftovers of a failed test; the last test checks the whole run's names.
#include "helpers.hpp"

#include <multiprocessing/exceptions.hpp>
#include <multiprocessing/process.hpp>
#include <multiprocessing/shared_memory.hpp>

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiprocessing;
namespace sm = multiprocessing::shared_memory;
using sm::Item;
using sm::ShareableList;
using sm::SharedMemory;

namespace {

std::set<std::string>& all_names() {
    static std::set<std::string> s;
    return s;
}

bool shm_exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

/// Tracks the segments one test makes; unlinks any left on scope exit.
struct ShmScope {
    std::vector<std::string> names;
    /// A fresh name owned by this run: mpt<pid>_<tag>.
    std::string fresh(const std::string& tag) { return track("mpt" + std::to_string(::getpid()) + "_" + tag); }
    std::string track(std::string name) {
        names.push_back(name);
        all_names().insert(name);
        return name;
    }
    std::vector<std::string> leftovers() const {
        std::vector<std::string> out;
        for (auto& n : names)
            if (shm_exists(n)) out.push_back(n);
        return out;
    }
    ~ShmScope() {
        for (auto& n : names) ::shm_unlink(("/" + n).c_str());
    }
};

using test::join_or_kill;

struct RunResult {
    int rc = -1;
    std::string out, err;
};

/// Runs `PYENV_VERSION=3.13.0 python3 -c script args...`, at most `seconds`
/// (then SIGKILL); always reaped.
RunResult run_python(const std::string& script, const std::vector<std::string>& args = {},
                     double seconds = 60.0) {
    RunResult r;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return r;
    if (::pipe2(err, O_CLOEXEC) != 0) { ::close(out[0]); ::close(out[1]); return r; }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::setenv("PYENV_VERSION", "3.13.0", 1);
        std::vector<std::string> argv_s = {"python3", "-c", script};
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_s) argv.push_back(&a[0]);
        argv.push_back(nullptr);
        ::execvp("python3", argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    bool open_out = true, open_err = true;
    while ((open_out || open_err) && std::chrono::steady_clock::now() < deadline) {
        pollfd p[2] = {{open_out ? out[0] : -1, POLLIN, 0}, {open_err ? err[0] : -1, POLLIN, 0}};
        if (::poll(p, 2, 100) <= 0) continue;
        char buf[4096];
        for (int k = 0; k < 2; ++k) {
            if (!(p[k].revents & (POLLIN | POLLHUP))) continue;
            ssize_t n = ::read(k ? err[0] : out[0], buf, sizeof buf);
            if (n <= 0) (k ? open_err : open_out) = false;
            else (k ? r.err : r.out).append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    for (;;) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            r.err += "\n[killed: timeout]";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return r;
}

bool have_cpython() {
    static int ok = -1;
    if (ok < 0) ok = run_python("import multiprocessing.shared_memory, sys; assert sys.version_info >= (3, 9)", {}, 30).rc == 0;
    return ok == 1;
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t b = 0;
    while (b < s.size()) {
        auto e = s.find('\n', b);
        if (e == std::string::npos) e = s.size();
        out.push_back(s.substr(b, e - b));
        b = e + 1;
    }
    return out;
}

// No resource tracker in the Python children: it would unlink (and warn
// about) segments the C++ side still owns when the script exits.
const char* py_prelude =
    "import sys\n"
    "from multiprocessing import resource_tracker, shared_memory\n"
    "resource_tracker.register = lambda *a, **k: None\n"
    "resource_tracker.unregister = lambda *a, **k: None\n";

}  // namespace

TEST_CASE("SharedMemory basics", "[shared_memory]") {
    ShmScope scope;
    std::string name = scope.fresh("tsmb");
    SharedMemory sms(name, true, 512);

    CHECK(sms.name() == name);
    CHECK(sms.size() >= 512);
    CHECK(sms.buf().size() >= sms.size());
    CHECK(sms.repr().find(name) != std::string::npos);
    CHECK(sms.repr().find(std::to_string(sms.size())) != std::string::npos);
    CHECK(sms.repr() == "SharedMemory('" + name + "', size=512)");

    sms.buf()[0] = 42;
    CHECK(sms.buf()[0] == 42);

    {   // Attach to the existing segment.
        SharedMemory also(name);
        CHECK(also.buf()[0] == 42);
        CHECK(also.size() == sms.size());  // the real size, reported on attach
        also.close();
    }
    {   // Attaching ignores a size.
        SharedMemory same(name, false, static_cast<std::ptrdiff_t>(20 * sms.size()));
        CHECK(same.size() < 20 * sms.size());
    }

    CHECK_THROWS_AS(SharedMemory(std::nullopt, true, -2), mp::ValueError);
    CHECK_THROWS_AS(SharedMemory(std::nullopt, false), mp::ValueError);
    CHECK_THROWS_AS(SharedMemory(), mp::ValueError);

    {   // Posix shm can only be unlinked once.
        std::string dbl = scope.fresh("dblunlink");
        SharedMemory uno(dbl, true, 5000);
        CHECK(uno.size() >= 5000);
        SharedMemory duo(dbl);
        duo.unlink();
        duo.close();
        uno.close();
        CHECK_THROWS_AS(uno.unlink(), mp::FileNotFoundError);
    }

    CHECK_THROWS_AS(SharedMemory(name, true, 512), mp::FileExistsError);
    CHECK_THROWS_AS(SharedMemory("mpt_test01_notthere"), mp::FileNotFoundError);
    try {
        SharedMemory("mpt_test01_notthere");
    } catch (const mp::FileNotFoundError& e) {
        CHECK(std::string(e.what()) == "[Errno 2] No such file or directory: '/mpt_test01_notthere'");
    }
    // FileExistsError/FileNotFoundError are catchable as std::runtime_error.
    CHECK_THROWS_AS(SharedMemory(name, true, 1), std::runtime_error);

    sms.close();
    sms.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("SharedMemory name with embedded null", "[shared_memory]") {
    ShmScope scope;
    std::string name = scope.fresh("null");
    SharedMemory sms(name, true, 512);
    CHECK_THROWS_AS(SharedMemory(name + std::string("\0a", 2), false, 512), mp::ValueError);
    sms.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("SharedMemory invalid creation", "[shared_memory]") {
    CHECK_THROWS_AS(SharedMemory(std::nullopt, true, -1), mp::ValueError);
    CHECK_THROWS_AS(SharedMemory(std::nullopt, true, 0), mp::ValueError);
    CHECK_THROWS_AS(SharedMemory(std::nullopt, true), mp::ValueError);
    CHECK_THROWS_WITH(SharedMemory(std::nullopt, true, 0), "'size' must be a positive number different from zero");
    CHECK_THROWS_WITH(SharedMemory(std::nullopt, true, -1), "'size' must be a positive integer");
    CHECK_THROWS_WITH(SharedMemory(), "'name' can only be None if create=True");
}

TEST_CASE("SharedMemory generated names", "[shared_memory]") {
    ShmScope scope;
    auto a = SharedMemory::create(1);
    auto b = SharedMemory(std::nullopt, true, 1);
    scope.track(a.name());
    scope.track(b.name());
    CHECK(a.name().rfind("psm_", 0) == 0);
    CHECK(a.name().size() == 12);  // as Python: within BSD's 14-char limit with the '/'
    CHECK(a.name() != b.name());
    CHECK(shm_exists(a.name()));
    CHECK(a.size() == 1);

    // A dead segment cannot be attached to again (Python's pickle_unpickle_dead_object).
    std::string held = a.name();
    a.close();
    a.unlink();
    CHECK_THROWS_AS(SharedMemory::attach(held), mp::FileNotFoundError);
    b.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("SharedMemory zero-filled, close is idempotent, move", "[shared_memory]") {
    ShmScope scope;
    auto s = SharedMemory::create(4096, scope.fresh("close"));
    bool zero = true;
    for (auto c : s.buf()) zero = zero && c == 0;
    CHECK(zero);
    s.buf().write(0, "pickle");
    CHECK(s.buf().tobytes(0, 6) == "pickle");

    SharedMemory s2 = std::move(s);  // a moved-from block is closed and nameless
    CHECK(s.buf().empty());
    CHECK(s2.buf().tobytes(0, 6) == "pickle");
    s.close();
    s.unlink();  // no name: nothing to do

    s2.close();
    s2.close();
    CHECK(s2.buf().empty());
    CHECK(s2.buf().data() == nullptr);
    {   // Closing does not destroy: attach again by name.
        SharedMemory again(s2.name());
        CHECK(again.buf().tobytes(0, 6) == "pickle");
        again.buf().write(0, "newval");
        SharedMemory third(s2.name());
        CHECK(third.buf().tobytes(0, 6) == "newval");
    }
    s2.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("memoryview access", "[shared_memory]") {
    ShmScope scope;
    auto s = SharedMemory::create(16, scope.fresh("view"));
    auto b = s.buf();
    b.at(-1) = 7;
    CHECK(b[15] == 7);
    CHECK_THROWS_AS(b.at(16), mp::IndexError);
    CHECK_THROWS_AS(b.at(-17), mp::IndexError);
    CHECK_THROWS_AS(b.write(10, "1234567"), mp::IndexError);
    b.write(10, "123456");
    CHECK(b.sub(10).tobytes() == "123456");
    CHECK(b.sub(100).size() == 0);
    CHECK(b.tobytes(14, 100) == std::string("5") + "6");
    s.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("SharedMemory across processes", "[shared_memory]") {
    ShmScope scope;
    auto sms = SharedMemory::create(512);
    scope.track(sms.name());

    // Another process attaches by name and writes.
    std::string name = sms.name();
    mp::Process p([name] {
        SharedMemory local(name);
        local.buf().write(0, "howdy");
        local.close();
    });
    p.start();
    REQUIRE(join_or_kill(p) == 0);
    CHECK(sms.buf().tobytes(0, 5) == "howdy");

    // A forked child shares the parent's mapping itself (Python passes the
    // object; fork inherits the MAP_SHARED mapping).
    mp::Process q([&sms] { sms.buf().write(0, "HELLO"); });
    q.start();
    REQUIRE(join_or_kill(q) == 0);
    CHECK(sms.buf().tobytes(0, 5) == "HELLO");

    sms.close();
    sms.unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("ShareableList basics", "[shared_memory][shareable_list]") {
    ShmScope scope;
    ShareableList sl{"howdy", sm::bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42};
    scope.track(sl.shm().name());

    // repr
    CHECK(sl.repr().find(sl.shm().name()) != std::string::npos);
    CHECK(sl.repr() == "ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42], name='" +
                           sl.shm().name() + "')");

    // Index out of range (get / set)
    CHECK_THROWS_AS(sl.get(7), mp::IndexError);
    CHECK_THROWS_AS(sl[7] = 2, mp::IndexError);
    CHECK_THROWS_AS(sl.get(-8), mp::IndexError);

    // Assign without format change (str -> str)
    std::string before = sl.format();
    sl[0] = "howdy";
    CHECK(sl.format() == before);

    CHECK(sl.format() == "8s8sdqxxxxxx?xxxxxxxx?q");
    CHECK(sl.size() == 7);

    CHECK_THROWS_AS(sl.index("100"), mp::ValueError);
    CHECK(sl.index(100) == 3);

    CHECK(sl[0] == "howdy");
    CHECK(sl[-2] == true);
    CHECK(sl.get(-2).is_bool());

    std::vector<Item> expect{"howdy", sm::bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42};
    CHECK(sl.tolist() == expect);

    // Modify individual values.
    sl[3] = 42;
    CHECK(sl[3] == 42);
    sl[4] = "some";  // change type at a position
    CHECK(sl[4] == "some");
    CHECK(sl.format() == "8s8sdq8sxxxxxxx?q");
    CHECK_THROWS_WITH(sl[4] = "far too many", Catch::Contains("exceeds available storage"));
    CHECK(sl[4] == "some");
    sl[0] = "encod\xc3\xa9s";  // exactly 8 bytes of UTF-8
    CHECK(sl[0] == "encod\xc3\xa9s");
    CHECK(sl[1] == sm::bytes{"HoWdY"});  // no spillage
    CHECK_THROWS_WITH(sl[0] = "encod\xc3\xa9\x65s", Catch::Contains("exceeds available storage"));
    CHECK(sl[1] == sm::bytes{"HoWdY"});
    CHECK_THROWS_WITH(sl[1] = sm::bytes{"123456789"}, Catch::Contains("exceeds available storage"));
    CHECK(sl[1] == sm::bytes{"HoWdY"});

    // count()
    CHECK(sl.count(42) == 2);
    CHECK(sl.count(sm::bytes{"HoWdY"}) == 1);
    CHECK(sl.count(sm::bytes{"adios"}) == 0);

    // A duplicate under a given name.
    std::string dup = scope.fresh("duplicate");
    {
        ShareableList copy(sl.tolist(), dup);
        CHECK(copy.shm().name() != sl.shm().name());
        CHECK(copy.shm().name() == dup);
        CHECK(copy.tolist() == sl.tolist());
        CHECK(copy.format() == sl.format());
        copy[-1] = 77;
        CHECK(copy[-1] == 77);
        CHECK(sl[-1] != 77);
        copy.shm().close();
        copy.shm().unlink();
    }

    // A second handle on the same list.
    {
        auto tethered = ShareableList::attach(sl.shm().name());
        CHECK(tethered.shm().name() == sl.shm().name());
        tethered[-1] = 880;
        CHECK(sl[-1] == 880);
        CHECK(tethered.size() == sl.size());
        CHECK(tethered.format() == sl.format());
        tethered.shm().close();
    }

    sl.shm().close();
    CHECK_THROWS_AS(sl.format(), mp::ValueError);  // not a null dereference
    sl.shm().unlink();

    // An empty list.
    {
        ShareableList empty;
        scope.track(empty.shm().name());
        CHECK(empty.size() == 0);
        CHECK(empty.format().empty());
        CHECK(empty.count("any") == 0);
        CHECK_THROWS_AS(empty.index(nullptr), mp::ValueError);
        CHECK(empty.shm().size() == 16);
        CHECK(empty.repr() == "ShareableList([], name='" + empty.shm().name() + "')");
        empty.shm().close();
        empty.shm().unlink();
    }
    CHECK(scope.leftovers().empty());
}

TEST_CASE("ShareableList every type, type changes and Python equality", "[shared_memory][shareable_list]") {
    ShmScope scope;
    ShareableList sl({std::int64_t(INT64_MAX), INT64_MIN, 0.1, -0.0, 1e100, false, true, nullptr, "",
                      sm::bytes{}, sm::bytes{std::string("\0a\xff", 3)}, "it's", "\xc3\xbcn\xc3\xaf"},
                     scope.fresh("types"));
    CHECK(sl.size() == 13);
    CHECK(sl.get(0).as_int() == INT64_MAX);
    CHECK(sl.get(1).as_int() == INT64_MIN);
    CHECK(sl.get(2).as_float() == 0.1);
    CHECK(std::signbit(sl.get(3).as_float()));
    CHECK(sl.get(5).is_bool());
    CHECK_FALSE(sl.get(5).as_bool());
    CHECK(sl.get(7).is_none());
    CHECK(sl.get(8).as_str().empty());
    CHECK(sl.get(9).as_bytes().data.empty());
    CHECK(sl.get(10).as_bytes().data == std::string("\0a\xff", 3));  // leading NUL kept
    CHECK(sl.get(11).as_str() == "it's");
    CHECK_THROWS_AS(sl.get(0).as_str(), mp::TypeError);
    CHECK(sl.format() == "qqdddxxxxxxx?xxxxxxx?xxxxxx?x8s8s8s8s8s");
    CHECK(sl.repr() == "ShareableList([9223372036854775807, -9223372036854775808, 0.1, -0.0, 1e+100, "
                       "False, True, None, '', b'', b'\\x00a\\xff', \"it's\", '\xc3\xbcn\xc3\xaf'], name='" +
                           sl.shm().name() + "')");

    // Python equality: 1 == 1.0 == True; str != bytes.
    sl[0] = 1;
    sl[2] = 1.0;
    CHECK(sl.count(1) == 3);     // 1, 1.0 and True
    CHECK(sl.count(true) == 3);
    CHECK(sl.count(0) == 2);     // -0.0 and False
    CHECK(sl.index(1.0) == 0);
    CHECK(Item("a") != Item(sm::bytes{"a"}));
    CHECK(Item(nullptr) == Item());
    CHECK(Item(9007199254740992LL) == Item(9007199254740992.0));  // 2**53
    CHECK(Item(9007199254740993LL) != Item(9007199254740992.0));  // 2**53+1: no rounding, as Python

    // Each slot accepts every fixed-size type; str/bytes must fit.
    sl[8] = 3.5;
    CHECK(sl[8] == 3.5);
    CHECK(sl.format().find("d8s") != std::string::npos);
    sl[8] = "12345678";  // back to str in the same 8-byte slot
    CHECK(sl[8] == "12345678");
    sl[0] = "abcdefgh";  // an int slot is 8 bytes too
    CHECK(sl[0] == "abcdefgh");
    CHECK(sl.format().substr(0, 2) == "8s");
    CHECK_THROWS_AS(sl[0] = "abcdefghi", mp::ValueError);
    sl[7] = sm::bytes{"xy"};
    CHECK(sl[7] == sm::bytes{"xy"});
    sl[7] = nullptr;
    CHECK(sl[7] == nullptr);
    CHECK(sl.get(7).is_none());

    // Trailing NULs are lost, as in Python (slots are NUL-padded).
    sl[9] = sm::bytes{std::string("ab\0\0", 4)};
    CHECK(sl[9] == sm::bytes{"ab"});

    CHECK_THROWS_AS(Item(std::uint64_t(1) << 63), mp::ValueError);
    sl.shm().unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("ShareableList str slots", "[shared_memory][shareable_list]") {
    ShmScope scope;
    // Slots are 8*(len//8+1), len in code points for str, as in Python.
    ShareableList sl({"1234567", "12345678", "\xc3\xa9\xc3\xa9\xc3\xa9", sm::bytes{"1234567890123456"},
                      // 7 four-byte code points: Python's 8-byte slot would truncate
                      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"},
                     scope.fresh("slots"));
    CHECK(sl.format() == "8s16s8s24s32s");
    CHECK(sl[4] == "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                   "\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
    sl[2] = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";  // 8 bytes fit the 8-byte slot
    CHECK(sl[2] == "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK_THROWS_AS(sl[2] = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\x61", mp::ValueError);
    sl.shm().unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("ShareableList attach errors and iteration", "[shared_memory][shareable_list]") {
    ShmScope scope;
    CHECK_THROWS_AS(ShareableList::attach("mpt_no_such_list"), mp::FileNotFoundError);

    // A block that is not a list: huge count.
    auto raw = SharedMemory::create(64, scope.fresh("notalist"));
    std::int64_t n = 1000;
    std::memcpy(raw.buf().data(), &n, 8);
    CHECK_THROWS_AS(ShareableList::attach(raw.name()), mp::ValueError);
    raw.unlink();

    ShareableList sl({1, 2, 3}, scope.fresh("iter"));
    std::int64_t sum = 0;
    for (Item v : sl) sum += v.as_int();
    CHECK(sum == 6);
    Item first = sl[0];
    CHECK(first == 1);
    sl[1] = sl[2];  // proxy to proxy
    CHECK(sl[1] == 3);
    std::string held = sl.shm().name();
    sl.shm().close();
    CHECK_THROWS_AS(sl.get(0), mp::ValueError);  // closed
    sl.shm().unlink();
    CHECK_THROWS_AS(ShareableList::attach(held), mp::FileNotFoundError);
    CHECK(scope.leftovers().empty());
}

TEST_CASE("ShareableList across processes", "[shared_memory][shareable_list]") {
    ShmScope scope;
    ShareableList sl({0, "start", 0.0});
    scope.track(sl.shm().name());
    std::string name = sl.shm().name();
    mp::Process p([name] {
        auto mine = ShareableList::attach(name);
        if (mine.size() != 3 || mine[1] != "start") throw std::runtime_error("bad attach");
        mine[0] = 12345;
        mine[1] = "child";
        mine[2] = nullptr;
    });
    p.start();
    REQUIRE(join_or_kill(p) == 0);
    CHECK(sl[0] == 12345);
    CHECK(sl[1] == "child");
    CHECK(sl[2] == nullptr);
    CHECK(sl.format() == "q8sxxxxxx?x");
    sl.shm().unlink();
    CHECK(scope.leftovers().empty());
}

TEST_CASE("CPython attaches to a list made here, and the other way round", "[shared_memory][cpython]") {
    if (!have_cpython()) {
        WARN("PYENV_VERSION=3.13.0 python3 not available; CPython layout check skipped");
        return;
    }
    ShmScope scope;
    const std::vector<Item> items{"howdy", sm::bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42,
                                  "encod\xc3\xa9s", "", sm::bytes{}, 1e100, -0.0, INT64_MAX, INT64_MIN,
                                  false, "it's", sm::bytes{std::string("\0a\xff", 3)}, "\xc3\xbcn\xc3\xaf", 0.1};
    const std::string py_items =
        "['howdy', b'HoWdY', -273.154, 100, None, True, 42, 'encod\\xe9s', '', b'', 1e100, -0.0, "
        "2**63-1, -2**63, False, \"it's\", b'\\x00a\\xff', '\\xfcn\\xef', 0.1]";

    SECTION("C++ list read and written by CPython") {
        ShareableList sl(items, scope.fresh("topy"));
        const std::string repr = sl.repr(), format = sl.format();
        auto r = run_python(std::string(py_prelude) +
                                "sl = shared_memory.ShareableList(name=sys.argv[1])\n"
                                "print(repr(sl)); print(sl.format); print(len(sl))\n"
                                "assert list(sl) == " + py_items + ", list(sl)\n"
                                "sl[0] = 'py'; sl[2] = 7; sl[3] = 2.5; sl[4] = b'xy'; sl[6] = None\n"
                                "sl.shm.close()\n",
                            {sl.shm().name()});
        INFO(r.err);
        REQUIRE(r.rc == 0);
        auto out = lines(r.out);
        REQUIRE(out.size() == 3);
        CHECK(out[0] == repr);
        CHECK(out[1] == format);
        CHECK(out[2] == std::to_string(items.size()));
        CHECK(sl[0] == "py");
        CHECK(sl.get(2).as_int() == 7);
        CHECK(sl.get(3).as_float() == 2.5);
        CHECK(sl[4] == sm::bytes{"xy"});
        CHECK(sl.get(6).is_none());
        sl.shm().unlink();
    }

    SECTION("CPython list read here, byte for byte equal to ours") {
        std::string py_name = scope.fresh("frompy");
        auto r = run_python(std::string(py_prelude) +
                                "sl = shared_memory.ShareableList(" + py_items + ", name=sys.argv[1])\n"
                                "print(repr(sl)); print(sl.format); print(sl.shm.size)\n"
                                "sl.shm.close()\n",
                            {py_name});
        INFO(r.err);
        REQUIRE(r.rc == 0);
        auto out = lines(r.out);
        REQUIRE(out.size() == 3);

        auto theirs = ShareableList::attach(py_name);
        CHECK(theirs.repr() == out[0]);
        CHECK(theirs.format() == out[1]);
        CHECK(theirs.tolist() == items);
        CHECK(theirs.shm().size() == std::stoul(out[2]));

        ShareableList ours(items, scope.fresh("same"));
        REQUIRE(ours.shm().size() == theirs.shm().size());
        CHECK(std::memcmp(ours.shm().buf().data(), theirs.shm().buf().data(), ours.shm().size()) == 0);

        theirs[1] = sm::bytes{"12345678"};
        theirs[0] = 3.25;
        auto r2 = run_python(std::string(py_prelude) +
                                 "sl = shared_memory.ShareableList(name=sys.argv[1])\n"
                                 "print(sl[0], sl[1])\n"
                                 "sl.shm.close()\n",
                             {py_name});
        INFO(r2.err);
        CHECK(r2.out == "3.25 b'12345678'\n");
        theirs.shm().unlink();
        ours.shm().unlink();
    }

    SECTION("SharedMemory bytes both ways") {
        auto s = SharedMemory::create(64, scope.fresh("rawpy"));
        s.buf().write(0, "hello");
        auto r = run_python(std::string(py_prelude) +
                                "m = shared_memory.SharedMemory(sys.argv[1])\n"
                                "print(bytes(m.buf[:5]), m.size)\n"
                                "m.buf[5:10] = b'world'\n"
                                "m.close()\n",
                            {s.name()});
        INFO(r.err);
        REQUIRE(r.rc == 0);
        CHECK(r.out == "b'hello' 64\n");
        CHECK(s.buf().tobytes(0, 10) == "helloworld");
        s.unlink();
    }
    CHECK(scope.leftovers().empty());
}

// Last by declaration order: nothing this run made is left in /dev/shm.
TEST_CASE("no segment of ours is left in /dev/shm", "[shared_memory][cleanup]") {
    std::vector<std::string> left;
    for (auto& n : all_names())
        if (shm_exists(n)) left.push_back(n);
    std::string prefix = "mpt" + std::to_string(::getpid()) + "_";
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d))
            if (std::string(e->d_name).rfind(prefix, 0) == 0) left.push_back(e->d_name);
        ::closedir(d);
    }
    INFO("names tracked this run: " << all_names().size());
    CHECK(left.empty());
}
