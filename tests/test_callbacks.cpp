// A method that calls back into its own manager (issue 14, item 8): through
// a proxy to its own object, or to another object that calls it back.  In
// CPython this works (no per-object lock); here it used to deadlock on the
// object's lock.  Every call runs under a call_timeout, so a regression
// fails with TimeoutError instead of hanging.
#include "helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;
using mp::managers::Proxy;

class Node;
using NodeProxy = Proxy<Node>;

class Node {
public:
    explicit Node(int v = 1) : v_(v) {}
    int value() const { return v_; }
    void set(int v) { v_ = v; }
    // Calls its own object back while its own call is running.
    int via(NodeProxy self) const;
    // Writes through the proxy, then reads its own member: one object.
    int set_via(NodeProxy self, int v);
    // Two levels deep: self.via(self) calls self.value().
    int via_via(NodeProxy self) const;
    // A -> B -> A: asks another node to read this one.
    int ask(NodeProxy other, NodeProxy self) const;
    int fail() const { throw mp::KeyError("'nope'"); }
    int fail_via(NodeProxy self) const;
    std::shared_ptr<Node> child(int v) const { return std::make_shared<Node>(v); }
    int child_via(NodeProxy self) const;
    // Holds this object, meets another caller, then calls `other` back.
    int meet(NodeProxy other, NodeProxy self, mp::managers::BarrierProxy both) const;

private:
    int v_;
};
MP_EXPOSE(Node, value, set, via, set_via, via_via, ask, fail, fail_via, child, child_via, meet)

// Defined once Proxy<Node> is complete.
int Node::via(NodeProxy self) const { return self.value() + 1; }
int Node::set_via(NodeProxy self, int v) {
    self.set(v);
    return v_;
}
int Node::via_via(NodeProxy self) const { return self.via(self) + 10; }
int Node::ask(NodeProxy other, NodeProxy self) const { return other.via(self) * 100; }
int Node::fail_via(NodeProxy self) const { return self.fail(); }
int Node::child_via(NodeProxy self) const { return self.child(v_ + 5).value(); }
int Node::meet(NodeProxy other, NodeProxy self, mp::managers::BarrierProxy both) const {
    both.wait(20.0);
    return other.via(self);
}

struct CallbackManager : mp::managers::BaseManager<CallbackManager> {};

static const bool registered = [] {
    CallbackManager::register_type<Node>("Node");
    return true;
}();

TEST_CASE("a method may call its own object back through a proxy", "[callbacks]") {
    CallbackManager manager;
    manager.start();
    mp::managers::call_timeout limit(10.0);
    auto a = manager.create<Node>(1);
    CHECK(a.via(a) == 2);
    CHECK(a.set_via(a, 7) == 7);
    CHECK(a.value() == 7);
    CHECK(a.via_via(a) == 18);
}

TEST_CASE("a call back through another object (A -> B -> A) does not deadlock", "[callbacks]") {
    CallbackManager manager;
    manager.start();
    mp::managers::call_timeout limit(10.0);
    auto a = manager.create<Node>(3);
    auto b = manager.create<Node>(4);
    CHECK(a.ask(b, a) == 400);
    CHECK(b.ask(a, b) == 500);
}

TEST_CASE("an error in a call back arrives as itself through both calls", "[callbacks]") {
    CallbackManager manager;
    manager.start();
    mp::managers::call_timeout limit(10.0);
    auto a = manager.create<Node>(1);
    CHECK_THROWS_AS(a.fail_via(a), mp::KeyError);
    CHECK(a.via(a) == 2);  // and the object is usable after it
}

TEST_CASE("a call back may return a new shared object, released afterwards", "[callbacks][lifetime]") {
    CallbackManager manager;
    manager.start();
    mp::managers::call_timeout limit(10.0);
    auto a = manager.create<Node>(2);
    auto base = manager.number_of_objects();
    CHECK(a.child_via(a) == 7);
    CHECK(test::wait_until([&] { return manager.number_of_objects() == base; }, 5));
}

TEST_CASE("calls back from many processes at once stay atomic and finish", "[callbacks][fork]") {
    CallbackManager manager;
    manager.start();
    auto a = manager.create<Node>(0);
    std::vector<mp::Process> workers;
    for (int w = 0; w < 4; ++w)
        workers.emplace_back([a] {
            mp::managers::call_timeout limit(20.0);
            // The outer call keeps the object's lock while its call back
            // runs, so no other process's set comes in between.
            for (int i = 0; i < 50; ++i)
                if (a.set_via(a, i) != i) throw mp::SystemExit{2};
        });
    for (auto& w : workers) w.start();
    for (auto& w : workers) CHECK(test::join_or_kill(w, 60) == 0);
    mp::managers::call_timeout limit(10.0);
    CHECK(a.via(a) == 50);
}

TEST_CASE("calls back in opposite orders at once: one fails as a deadlock, none hangs", "[callbacks][fork]") {
    // a.meet holds a and waits for b; b.meet holds b and waits for a.
    // CPython runs both; here the one that closes the cycle fails.
    CallbackManager manager;
    manager.start();
    auto sync = mp::Manager();
    auto both = sync.Barrier(2, 20.0);
    auto a = manager.create<Node>(3);
    auto b = manager.create<Node>(4);
    mp::Process other([a, b, both] {
        mp::managers::call_timeout limit(30.0);
        try {
            if (b.meet(a, b, both) != 5) throw mp::SystemExit{2};
        } catch (const std::runtime_error& e) {
            throw mp::SystemExit{std::string(e.what()).find("deadlock") == 0 ? 7 : 3};
        }
    });
    other.start();
    mp::managers::call_timeout limit(30.0);
    bool mine_failed = false;
    int mine = 0;
    try {
        mine = a.meet(b, a, both);
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("deadlock") == 0);
        mine_failed = true;
    }
    if (!mine_failed) CHECK(mine == 4);
    CHECK(test::join_or_kill(other, 60) == (mine_failed ? 0 : 7));
    CHECK(a.ask(b, a) == 400);  // both objects are free again
}
