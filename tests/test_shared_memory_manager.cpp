// SharedMemoryManager: ports of CPython's _TestSharedMemory manager cases
// (test_shared_memory_SharedMemoryManager_basics, ..._ignores_sigint), plus
// the lifetimes Python leaves open: a creator SIGKILLed, the owner
// SIGKILLed, the server SIGKILLed.  Every test ends by checking that no
// segment of its manager is left in /dev/shm.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace mp = multiprocessing;
namespace sm = multiprocessing::shared_memory;
using mp::managers::SharedMemoryManager;
using sm::Item;

namespace {

bool shm_exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

using mp::managers::detail::segments_with_prefix;

/// "psm_1234abcd_" from "psm_1234abcd_5678ef01": the manager's part.
std::string manager_prefix(const std::string& name) { return name.substr(0, 13); }

std::vector<Item> range(int n) {
    std::vector<Item> v;
    for (int i = 0; i < n; ++i) v.emplace_back(i);
    return v;
}

}  // namespace

TEST_CASE("SharedMemoryManager basics (CPython test_shared_memory_SharedMemoryManager_basics)", "[smm]") {
    std::string prefix;
    {
        SharedMemoryManager smm1;
        CHECK_THROWS_AS(smm1.SharedMemory(9), mp::ValueError);  // not started
        CHECK_THROWS_AS(smm1.ShareableList({1}), mp::ValueError);
        smm1.start();
        std::vector<sm::ShareableList> lol;
        for (int i = 5; i < 10; ++i) lol.push_back(smm1.ShareableList(range(i)));
        std::vector<sm::SharedMemory> lom;
        for (int j = 32; j < 128; j += 16) lom.push_back(smm1.SharedMemory(static_cast<std::size_t>(j)));

        auto doppleganger_list0 = sm::ShareableList::attach(lol[0].shm().name());
        CHECK(doppleganger_list0.size() == 5);
        CHECK(doppleganger_list0[4] == Item(4));
        auto doppleganger_shm0 = sm::SharedMemory::attach(lom[0].name());
        CHECK(doppleganger_shm0.buf().size() >= 32);
        CHECK(lom[1].size() == 48);

        auto tracked = smm1.list_segments();
        CHECK(tracked.size() == 11);
        prefix = manager_prefix(tracked.front());
        for (auto& n : tracked) CHECK(n.rfind(prefix, 0) == 0);
        CHECK(segments_with_prefix(prefix).size() == 11);

        std::string held_name = lom[0].name();
        smm1.shutdown();
        CHECK_THROWS_AS(sm::SharedMemory::attach(held_name), mp::FileNotFoundError);
        // Mappings made before the shutdown stay valid (unlink only drops names).
        lom[2].buf()[0] = 7;
        CHECK(lom[2].buf()[0] == 7);
        CHECK(lol[1][3] == Item(3));
    }
    CHECK(segments_with_prefix(prefix).empty());

    std::string held_name;
    {
        SharedMemoryManager smm2;  // Python's `with SharedMemoryManager() as smm2:`
        smm2.start();
        auto sl = smm2.ShareableList({"h", "o", "w", "d", "y"});
        auto shm = smm2.SharedMemory(128);
        held_name = sl.shm().name();
        CHECK(sl.repr() == "ShareableList(['h', 'o', 'w', 'd', 'y'], name='" + held_name + "')");
        prefix = manager_prefix(held_name);
    }
    CHECK_THROWS_AS(sm::ShareableList::attach(held_name), mp::FileNotFoundError);
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager ShareableList keeps Python's semantics", "[smm]") {
    SharedMemoryManager smm;
    smm.start();
    auto sl = smm.ShareableList({"howdy", sm::bytes{"HoWdY"}, -273.154, 100, nullptr, true, 42});
    CHECK(sl.size() == 7);
    CHECK(sl.format() == "8s8sdqxxxxxx?xxxxxxxx?q");
    CHECK(sl[0] == Item("howdy"));
    CHECK(sl.index(Item(42)) == 6);
    CHECK(sl.count(Item(100)) == 1);
    sl[2] = Item("hi");  // a fixed 8-byte slot takes a short str
    CHECK(sl[2] == Item("hi"));
    CHECK_THROWS_AS(sl[0] = Item("encyclopedia"), mp::ValueError);  // longer than its slot
    CHECK_THROWS_AS(sl[7].get(), mp::IndexError);

    auto empty = smm.ShareableList(std::vector<Item>{});
    CHECK(empty.size() == 0);
    CHECK(smm.list_segments().size() == 2);
    std::string prefix = manager_prefix(sl.shm().name());
    smm.shutdown();
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager segments re-attach by name in other processes", "[smm]") {
    SharedMemoryManager smm;
    smm.start();
    auto shm = smm.SharedMemory(4096);
    auto sl = smm.ShareableList({0, "", 0.0});
    std::string shm_name = shm.name(), sl_name = sl.shm().name();

    mp::Process p([shm_name, sl_name] {
        sm::SharedMemory local(shm_name);
        local.buf().write(100, "from the child");
        auto l = sm::ShareableList::attach(sl_name);
        l[0] = Item(7);
        l[1] = Item("seven");
        l[2] = Item(7.5);
    });
    p.start();
    REQUIRE(test::join_or_kill(p) == 0);
    CHECK(shm.buf().tobytes(100, 14) == "from the child");
    CHECK(sl.tolist() == std::vector<Item>{7, "seven", 7.5});

    // A forked child uses the manager it inherited to make a segment of its own.
    test::Channel ch;
    mp::Process q([&smm, &ch] {
        auto mine = smm.SharedMemory(64);
        mine.buf().write(0, "child's");
        ch.write_line(mine.name());
    });
    q.start();
    std::string child_made = ch.read_line(10.0);
    REQUIRE(test::join_or_kill(q) == 0);
    REQUIRE_FALSE(child_made.empty());
    auto list = smm.list_segments();
    CHECK(std::find(list.begin(), list.end(), child_made) != list.end());
    CHECK(sm::SharedMemory::attach(child_made).buf().tobytes(0, 7) == "child's");

    std::string prefix = manager_prefix(shm_name);
    smm.shutdown();
    CHECK_FALSE(shm_exists(child_made));
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager release_segment unlinks one segment now", "[smm]") {
    SharedMemoryManager smm;
    smm.start();
    auto a = smm.SharedMemory(16);
    auto b = smm.SharedMemory(16);
    smm.release_segment(a.name());
    CHECK_FALSE(shm_exists(a.name()));
    CHECK(shm_exists(b.name()));
    CHECK(smm.list_segments() == std::vector<std::string>{b.name()});
    CHECK_THROWS_AS(smm.release_segment(a.name()), mp::ValueError);  // no longer tracked
    CHECK_THROWS_AS(smm.release_segment("psm_not_ours"), mp::ValueError);
    // A segment the user unlinked already is no error at shutdown.
    b.unlink();
    CHECK_THROWS_AS(smm.SharedMemory(0), mp::ValueError);
    std::string prefix = manager_prefix(b.name());
    smm.shutdown();
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager server ignores SIGINT (CPython bpo-36368)", "[smm]") {
    SharedMemoryManager smm;
    smm.start();
    auto sl = smm.ShareableList(range(10));
    ::kill(smm.pid(), SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto sl2 = smm.ShareableList(range(10));
    CHECK(sl2.size() == 10);
    CHECK(test::pid_alive(smm.pid()));
    std::string prefix = manager_prefix(sl.shm().name());
    smm.shutdown();
    CHECK(smm.exitcode() == 0);
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager keeps a SIGKILLed creator's segments until shutdown", "[smm][faults]") {
    SharedMemoryManager smm;
    smm.start();
    test::Channel ch;
    mp::Process creator([&smm, &ch] {
        auto s = smm.SharedMemory(1 << 20);
        s.buf().write(0, "survives its maker");
        auto l = smm.ShareableList({1, 2, 3});
        ch.write_line(s.name() + " " + l.shm().name());
        test::forever();
    });
    creator.set_daemon(true);  // reaped by its destructor if a check below fails first
    creator.start();
    std::string line = ch.read_line(10.0);
    creator.kill();
    CHECK(test::join_or_kill(creator, 10.0) == -SIGKILL);
    REQUIRE(line.find(' ') != std::string::npos);
    std::string s_name = line.substr(0, line.find(' ')), l_name = line.substr(line.find(' ') + 1);

    // Still there for the others, as in Python: the manager owns segments.
    CHECK(sm::SharedMemory::attach(s_name).buf().tobytes(0, 18) == "survives its maker");
    CHECK(sm::ShareableList::attach(l_name).tolist() == std::vector<Item>{1, 2, 3});
    CHECK(smm.list_segments().size() == 2);

    smm.shutdown();
    CHECK_FALSE(shm_exists(s_name));
    CHECK_FALSE(shm_exists(l_name));
}

TEST_CASE("SharedMemoryManager owner SIGKILLed: the server unlinks everything and exits", "[smm][faults]") {
    test::become_subreaper();  // the orphaned server is re-parented to us, so we can reap it
    test::Channel ch;
    mp::Process owner([&ch] {
        SharedMemoryManager smm;
        smm.start();
        auto a = smm.SharedMemory(1 << 16);
        auto b = smm.ShareableList({"x", 1});
        auto c = smm.SharedMemory(1 << 20);
        ch.write_line(std::to_string(smm.pid()) + " " + manager_prefix(a.name()));
        test::forever();
    });
    owner.set_daemon(true);  // reaped by its destructor if a check below fails first
    owner.start();
    std::string line = ch.read_line(10.0);
    REQUIRE(line.find(' ') != std::string::npos);
    pid_t server = static_cast<pid_t>(std::stol(line.substr(0, line.find(' '))));
    std::string prefix = line.substr(line.find(' ') + 1);
    CHECK(segments_with_prefix(prefix).size() == 3);

    owner.kill();
    CHECK(test::join_or_kill(owner, 10.0) == -SIGKILL);
    CHECK(test::wait_until([&] { return segments_with_prefix(prefix).empty(); }, 10.0));
    CHECK(test::wait_until([&] { return !test::pid_alive(server); }, 10.0));
    if (test::pid_alive(server)) ::kill(server, SIGKILL);
    mp::managers::detail::unlink_prefixed(prefix);  // only matters if the checks above failed
}

TEST_CASE("SharedMemoryManager server SIGKILLed: the owner's shutdown unlinks its segments", "[smm][faults]") {
    SharedMemoryManager smm;
    smm.start();
    auto a = smm.SharedMemory(4096);
    auto b = smm.ShareableList({1, 2});
    std::string prefix = manager_prefix(a.name());
    CHECK(segments_with_prefix(prefix).size() == 2);
    ::kill(smm.pid(), SIGKILL);
    CHECK_THROWS(smm.list_segments());  // the server is gone
    smm.shutdown();
    CHECK(smm.exitcode() == -SIGKILL);
    CHECK(segments_with_prefix(prefix).empty());
}

TEST_CASE("SharedMemoryManager connect(): another process's segments are the manager's", "[smm]") {
    SharedMemoryManager smm;
    smm.start();
    auto address = smm.address();
    auto key = smm.authkey();
    test::Channel ch;
    mp::Process other([address, key, &ch] {
        SharedMemoryManager client(address, key);
        client.connect();
        auto s = client.SharedMemory(256);
        s.buf().write(0, "connected");
        ch.write_line(s.name());
    });
    other.start();
    std::string name = ch.read_line(10.0);
    REQUIRE(test::join_or_kill(other) == 0);
    REQUIRE_FALSE(name.empty());
    CHECK(sm::SharedMemory::attach(name).buf().tobytes(0, 9) == "connected");
    CHECK(smm.list_segments() == std::vector<std::string>{name});
    smm.shutdown();
    CHECK_FALSE(shm_exists(name));
}
