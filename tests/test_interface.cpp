// Remote clients without the class (issue 17 item 6): MP_INTERFACE declares
// the methods a client calls; connect() checks them against the server.
#include <catch2/catch.hpp>

#include "helpers.hpp"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace mp = multiprocessing;
using mp::managers::RemoteError;

// ---- the server's side: the classes themselves ----
namespace served {
class Counter {
public:
    explicit Counter(int n) : n_(n) {}
    int increment() { return ++n_; }

private:
    int n_;
};
MP_EXPOSE(Counter, increment)

class Store {
public:
    Store() = default;
    explicit Store(std::string prefix) : prefix_(std::move(prefix)) {}
    void put(const std::string& s) { items_ += prefix_ + s; }
    std::string get() const { return items_; }
    std::size_t size() const { return items_.size(); }
    std::string peek(std::size_t n = 1) const { return items_.substr(0, n); }
    int add(int k) { return total_ += k; }
    double add(double k) { return dtotal_ += k; }
    std::shared_ptr<Counter> child(int start) { return std::make_shared<Counter>(start); }
    void fail() { throw std::out_of_range("nothing here"); }

private:
    std::string prefix_, items_;
    int total_ = 0;
    double dtotal_ = 0;
};
MP_EXPOSE(Store, put, get, size, peek, (add, int(int), double(double)), child, fail)
}  // namespace served

struct ServingManager : mp::managers::BaseManager<ServingManager> {
    using BaseManager::BaseManager;
};

// ---- the client's side: only declarations ----
namespace client {
MP_INTERFACE(Counter, (increment, int()));
MP_INTERFACE(Store, (put, void(const std::string&)), (get, std::string() const), (size, std::size_t() const),
             (peek, std::string() const, std::string(std::size_t) const), (add, int(int), double(double)), (child, std::shared_ptr<Counter>(int)), (fail, void()));
// Only what this client calls.
MP_INTERFACE(StoreSize, (size, std::size_t() const));
MP_INTERFACE(StoreWrongResult, (size, std::size_t() const), (get, int()));
MP_INTERFACE(StoreWrongParams, (add, int(int), int(long long)));
MP_INTERFACE(StoreMissing, (size, std::size_t() const), (fly, void(int)));
}  // namespace client

struct ClientManager : mp::managers::BaseManager<ClientManager> {
    using BaseManager::BaseManager;
};
struct WrongResultManager : mp::managers::BaseManager<WrongResultManager> {
    using BaseManager::BaseManager;
};
struct WrongParamsManager : mp::managers::BaseManager<WrongParamsManager> {
    using BaseManager::BaseManager;
};
struct MissingManager : mp::managers::BaseManager<MissingManager> {
    using BaseManager::BaseManager;
};
struct UnknownManager : mp::managers::BaseManager<UnknownManager> {
    using BaseManager::BaseManager;
};
struct InterfaceServerManager : mp::managers::BaseManager<InterfaceServerManager> {
    using BaseManager::BaseManager;
};

namespace {
const bool registered = [] {
    auto shared = std::make_shared<served::Store>();
    ServingManager::register_type<served::Store>("get_store", [shared] { return shared; });
    ServingManager::register_type<served::Store>("make_store", [](std::string p) { return served::Store(p); });
    ServingManager::register_type<served::Store>("Store");
    ServingManager::register_type<served::Counter>("Counter");
    ClientManager::register_type<client::Store>("get_store");
    ClientManager::register_type<client::StoreSize>("Store");
    WrongResultManager::register_type<client::StoreWrongResult>("get_store");
    WrongParamsManager::register_type<client::StoreWrongParams>("get_store");
    MissingManager::register_type<client::StoreMissing>("get_store");
    UnknownManager::register_type<client::StoreSize>("no_such_typeid");
    InterfaceServerManager::register_type<client::Store>("get_store");
    return true;
}();

// Makes the server program know the constructor Store(std::string), as a
// server program that creates such Stores itself does.
[[maybe_unused]] void instantiate_constructor(ServingManager& m) { m.create<served::Store>(std::string()); }

template <class M>
std::string connect_error(const ServingManager& server) {
    M m(server.address(), server.authkey());
    try {
        m.connect();
    } catch (const mp::TypeError& e) {
        return e.what();
    }
    return "connected";
}
}  // namespace

TEST_CASE("a client that declares only an interface calls the server's objects", "[interface]") {
    (void)registered;
    ServingManager server;
    server.start();
    ClientManager m(server.address(), server.authkey());
    m.connect();
    auto s = m.create<client::Store>();  // Python: m.get_store()
    s.put("a");
    s.put(std::string("b"));
    CHECK(s.get() == "ab");
    CHECK(s.size() == 2);
    CHECK(s.peek() == "a");  // the server's default argument
    CHECK(s.peek(5) == "ab");
    CHECK(s.add(2) == 2);      // int(int)
    CHECK(s.add(0.5) == 0.5);  // double(double)
    CHECK(s.add(3) == 5);
    // The same shared object as a second create() (the callable returns it).
    CHECK(m.create<client::Store>().get() == "ab");
    CHECK(s._token().typeid_ == "get_store");

    // A method returning a new shared object gives a proxy of the declared interface.
    std::size_t before = server.number_of_objects();
    {
        client::Counter c = s.child(40);
        CHECK(c.increment() == 41);
        CHECK(c.increment() == 42);
        CHECK(server.number_of_objects() == before + 1);
    }
    CHECK(test::wait_until([&] { return server.number_of_objects() == before; }));

    // Exceptions keep their type.
    CHECK_THROWS_AS(s.fail(), std::out_of_range);

    // Constructor arguments: a registered callable, and a constructor.
    auto made = m.create_as<client::Store>("make_store", std::string("x-"));
    made.put("y");
    CHECK(made.get() == "x-y");
    auto sized = m.create_as<client::StoreSize>("Store", std::string("p"));
    CHECK(sized.size() == 0);
    CHECK_THROWS_WITH(m.create_as<client::StoreSize>("Store", 1.5),
                      Catch::Contains("has no constructor for the arguments given"));
    server.shutdown();
}

TEST_CASE("connect() names the method an interface declares differently from the server", "[interface]") {
    ServingManager server;
    server.start();
    CHECK(connect_error<WrongResultManager>(server) ==
          "interface client::StoreWrongResult of typeid 'get_store': method 'get' is declared int() here, "
          "but the server's is std::string()");
    CHECK_THAT(connect_error<WrongParamsManager>(server),
               Catch::Contains("method 'add' is declared int(long long) here, but the server's is int(int) or "
                               "double(double)"));
    CHECK(connect_error<MissingManager>(server) ==
          "interface client::StoreMissing of typeid 'get_store': the server does not expose method 'fly'");
    CHECK_THAT(connect_error<UnknownManager>(server),
               Catch::StartsWith("interface client::StoreSize of typeid 'no_such_typeid': the server at ") &&
                   Catch::EndsWith("has no such typeid"));
    // A declared subset passes.
    CHECK(connect_error<ClientManager>(server) == "connected");
    server.shutdown();
}

TEST_CASE("a server that has only the interface refuses to make the object", "[interface]") {
    InterfaceServerManager m;
    m.start();
    try {
        m.create<client::Store>();
        FAIL("created");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "TypeError");
        CHECK_THAT(e.message(), Catch::Contains("registered in the server with MP_INTERFACE only"));
    }
    m.shutdown();
}

TEST_CASE("connect() refuses a malformed method list, naming the line", "[interface]") {
    // A server that answers hello and then describes get_store with a
    // signature hash that is not a number.
    std::string path = "/tmp/mp-iface-" + std::to_string(::getpid());
    namespace conn = mp::connection;
    namespace d = mp::managers::detail;
    conn::Listener l(conn::Address(path), std::string("k"));
    mp::Process fake([&l] {
        // connect() first checks the authkey on a connection of its own,
        // closed at once: serve connections one after another.
        for (bool described = false; !described;) {
            auto c = l.accept();
            try {
                for (;;) {
                    std::string req = c.recv_bytes();
                    d::RequestHeader h{};
                    REQUIRE(req.size() >= sizeof h);
                    std::memcpy(&h, req.data(), sizeof h);
                    std::vector<char> out;
                    d::begin_reply(out, d::status::ok, h.request_id);
                    described = h.kind == static_cast<std::uint8_t>(d::kind::describe);
                    if (described) {
                        std::string body = "size\t12x\tstd::size_t()\n";
                        out.insert(out.end(), body.begin(), body.end());
                    }
                    c.send_frame(out);
                    if (described) break;  // the client keeps its connection (pooled): no EOF to wait for
                }
            } catch (const mp::EOFError&) {
            }
        }
    });
    fake.start();
    {
        ClientManager m(conn::Address(path), std::string("k"));
        try {
            m.connect();
            FAIL("connected");
        } catch (const mp::ProcessError& e) {
            CHECK_THAT(e.what(), Catch::StartsWith("interface client::") &&
                                     Catch::Contains("the server at '" + path +
                                                     "' sent a malformed method list (line 'size\t12x\tstd::size_t()')"));
        }
    }
    CHECK(test::join_or_kill(fake, 10) == 0);
}
