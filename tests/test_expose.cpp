// What a C++ class can expose (issue 17 item 5): MP_EXPOSE inside the
// user's namespace, C string and string_view parameters, and the error for
// a type registered after start().
#include <catch2/catch.hpp>

#include "helpers.hpp"

#include <cstring>
#include <string>
#include <string_view>

namespace mp = multiprocessing;
using mp::managers::RemoteError;

namespace shop {
// Exposed inside its own namespace, next to the class.
class Till {
public:
    std::string greet(std::string_view who) const { return "hello " + std::string(who); }
    std::size_t length(const char* s) const { return std::strlen(s); }
    // The pointer aims into the received string, alive for the whole call.
    std::string shout(char* s) const {
        for (char* p = s; *p; ++p) *p = static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
        return s;
    }
    int add(int k) { return total_ += k; }

private:
    int total_ = 0;
};
MP_EXPOSE(Till, greet, length, shout, add)

namespace deep {
struct Tally {
    int n = 0;
    int bump() { return ++n; }
};
}  // namespace deep
}  // namespace shop

// A class of a namespace exposed at global scope, with a single method.
MP_EXPOSE(shop::deep::Tally, bump)

// Overloads, exposed with their signatures.
class Calc {
public:
    int add(int a) { return total_ += a; }
    double add(double a) { return dtotal_ += a; }
    std::string add(const std::string& s) { return text_ += s; }
    int add(int a, int b) { return total_ += a * b; }
    std::string show() const { return "const"; }
    std::string show() { return "mutable"; }
    int total() const { return total_; }

private:
    int total_ = 0;
    double dtotal_ = 0;
    std::string text_;
};
MP_EXPOSE(Calc, (add, int(int), double(double), std::string(const std::string&), int(int, int)),
          (show, std::string() const), total)

struct ExposeManager : mp::managers::BaseManager<ExposeManager> {};

namespace {
const bool registered = [] {
    ExposeManager::register_type<shop::Till>("Till");
    ExposeManager::register_type<shop::deep::Tally>("Tally");
    ExposeManager::register_type<Calc>("Calc");
    return true;
}();
}  // namespace

TEST_CASE("MP_EXPOSE in the class's own namespace and at global scope for a namespaced class", "[expose]") {
    (void)registered;
    ExposeManager m;
    m.start();
    auto t = m.create<shop::Till>();
    CHECK(t.add(2) == 2);
    CHECK(t.add(3) == 5);
    auto y = m.create<shop::deep::Tally>();
    CHECK(y.bump() == 1);
    CHECK(y.bump() == 2);
    static_assert(std::is_base_of_v<shop::MpExposedProxy<shop::Till>, mp::managers::Proxy<shop::Till>>);
    m.shutdown();
}

TEST_CASE("string_view, const char* and char* parameters", "[expose]") {
    ExposeManager m;
    m.start();
    auto t = m.create<shop::Till>();
    CHECK(t.greet("world") == "hello world");
    CHECK(t.greet(std::string_view("view, not the whole").substr(0, 4)) == "hello view");
    CHECK(t.greet(std::string("string")) == "hello string");
    const char* c = "four";
    CHECK(t.length(c) == 4);
    CHECK(t.length("") == 0);
    CHECK(t.length(std::string("embedded")) == 8);
    char buf[] = "quiet";
    CHECK(t.shout(buf) == "QUIET");
    CHECK(std::string(buf) == "quiet");  // the server changed its own copy
    m.shutdown();
}

struct LateManager : mp::managers::BaseManager<LateManager> {};
struct Late {
    int value() const { return 7; }
};
MP_EXPOSE(Late, value)

TEST_CASE("a type registered after start() is unknown to that server, and the error says why", "[expose]") {
    LateManager m;
    m.start();
    LateManager::register_type<Late>("Late");
    try {
        m.create<Late>();
        FAIL("create succeeded");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "KeyError");
        CHECK_THAT(e.message(), Catch::Contains("unknown typeid 'Late'") &&
                                    Catch::Contains("registered after start()") &&
                                    Catch::Contains("call register_type before start()"));
    }
    m.shutdown();
    // A manager started afterwards knows it.
    LateManager m2;
    m2.start();
    CHECK(m2.create<Late>().value() == 7);
    m2.shutdown();
}

TEST_CASE("overloaded methods exposed with their signatures", "[expose]") {
    ExposeManager m;
    m.start();
    auto c = m.create<Calc>();
    CHECK(c.add(2) == 2);              // int(int): exact
    CHECK(c.add(1.5) == 1.5);          // double(double): exact, not int(int)
    CHECK(c.add(2.5f) == 4.0);         // float: double(double), which takes it without narrowing
    CHECK(c.total() == 2);
    CHECK(c.add(short(1)) == 3);       // short: int(int)
    CHECK(c.add("ab") == "ab");        // a C string: no exact match, converts to std::string only
    CHECK(c.add(std::string("cd")) == "abcd");
    CHECK(c.add(3, 4) == 15);          // int(int, int)
    CHECK(c.show() == "const");        // the const overload, the one listed
    // call_async names one overload by its pointer, as C++ does.
    CHECK(mp::managers::call_async<static_cast<int (Calc::*)(int)>(&Calc::add)>(c, 4).get() == 19);
    // The server lists an overloaded name once.
    try {
        c._callmethod<int>("nothere");
        FAIL("no error");
    } catch (const RemoteError& e) {
        CHECK_THAT(e.message(), Catch::Contains("('add', 'show', 'total')"));
    }
    m.shutdown();
}

// Default arguments: a call may leave them out; the server's C++ fills them in.
class Greeter {
public:
    std::string greet(const std::string& who = "world", int times = 1, std::string_view sep = " ") const {
        std::string s = "hello";
        for (int i = 0; i < times; ++i) s += std::string(sep) + who;
        return s;
    }
    int scale(int x, int factor = 10) { return x * factor; }
    // Evaluated in the server at each call, as C++ does.
    int next(int step = default_step()) { return count_ += step; }
    static int default_step() { return 5; }

private:
    int count_ = 0;
};
MP_EXPOSE(Greeter, greet, scale, next)

struct DefaultsManager : mp::managers::BaseManager<DefaultsManager> {};

TEST_CASE("default arguments may be left out", "[expose]") {
    DefaultsManager::register_type<Greeter>("Greeter");
    DefaultsManager m;
    m.start();
    auto g = m.create<Greeter>();
    CHECK(g.greet() == "hello world");
    CHECK(g.greet("bob") == "hello bob");
    CHECK(g.greet("bob", 2) == "hello bob bob");
    CHECK(g.greet("bob", 2, "-") == "hello-bob-bob");
    CHECK(g.scale(3) == 30);
    CHECK(g.scale(3, 2) == 6);
    CHECK(g.next() == 5);
    CHECK(g.next(1) == 6);
    CHECK(g.next() == 11);
    // Python's _callmethod with fewer arguments finds the shorter signature too.
    CHECK(g._callmethod<int>("scale", 4) == 40);
    m.shutdown();
}

// A class whose exposed methods come from its second base (at an offset),
// and a base of a class with a virtual table: each method must run on its
// own subobject.
struct Label {
    std::string text = "label";
};
struct Counted {
    long long n = 0;
    long long bump(long long by = 1) { return n += by; }
    long long count() const { return n; }
};
struct LabelledTally : Label, Counted {
    std::string text_now() const { return text; }
};
MP_EXPOSE(LabelledTally, bump, count, text_now)
MP_EXPOSE(Counted, bump, count)
struct Base0 {
    int x = 0;
    void set(int v) { x = v; }
    int get() const { return x; }
};
struct Virtual : Base0 {
    virtual ~Virtual() = default;
    virtual std::string kind() const { return "virtual"; }
};
MP_EXPOSE(Virtual, set, get, kind)

struct InheritManager : mp::managers::BaseManager<InheritManager> {};

TEST_CASE("methods a class inherits run on their own base subobject", "[expose]") {
    InheritManager::register_type<LabelledTally>("LabelledTally");
    InheritManager::register_type<Virtual>("Virtual");
    // A callable may return a derived class: the server keeps a pointer to
    // the registered base, wherever it lies in the object.
    InheritManager::register_type<Counted>("tally_of_labelled", [] {
        auto p = std::make_shared<LabelledTally>();
        p->n = 100;
        return p;
    });
    InheritManager m;
    m.start();
    auto t = m.create<LabelledTally>();
    CHECK(t.bump() == 1);
    CHECK(t.bump(41) == 42);  // the default-argument path too
    CHECK(t.count() == 42);
    CHECK(t.text_now() == "label");  // the other base untouched
    auto v = m.create<Virtual>();
    v.set(7);
    CHECK(v.get() == 7);
    CHECK(v.kind() == "virtual");  // the vtable pointer untouched
    auto d = m.create_as<Counted>("tally_of_labelled");
    CHECK(d.count() == 100);
    CHECK(d.bump(5) == 105);
    m.shutdown();
}
