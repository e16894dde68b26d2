// The second file of test_compiled: a class registered here, a TCP
// manager (the compiled socket set-up) and a client that connects to it.
#include "shared.hpp"
#include "../helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;
using mp::connection::Address;

long long bump(mp::managers::Proxy<mp::managers::Dict<mp::object, mp::object>> d, const std::string& key) {
    mp::object v = d.get(mp::object(key), mp::object(0));
    d[key] = v.as_int() + 1;
    return v.as_int() + 1;
}

// This file's globals may already hold proxies in objects or make a
// server_action: the library's initializers they need (the hooks, the image
// id) must have run first, although the library is linked after this file.
static const bool hooks_before_globals = mp::managers::detail::object_proxy_hooks::instance().repr != nullptr;
static const std::uint64_t image_id_seen = mp::managers::detail::image_id;

TEST_CASE("compiled: the library's initializers run before this file's globals", "[compiled]") {
    CHECK(hooks_before_globals);
    CHECK(image_id_seen != 0);
    CHECK(image_id_seen == mp::managers::detail::image_id);
}

static const bool registered = [] {
    TallyManager::register_type<Tally>("Tally");
    return true;
}();

TEST_CASE("compiled: a registered class over TCP, from a second manager that connects", "[compiled]") {
    TallyManager m(Address("127.0.0.1", 0), std::string("compiled-key"));
    m.start();
    REQUIRE(m.address().port() != 0);
    auto t = m.create<Tally>(40);
    CHECK(t.add(2) == 42);
    CHECK(t.label("n=") == "n=42");

    TallyManager client(m.address(), std::string("compiled-key"));
    client.connect();
    auto t2 = client.create<Tally>();
    CHECK(t2.add(5) == 5);
    CHECK(t.value() == 42);

    TallyManager wrong(m.address(), std::string("wrong-key"));
    CHECK_THROWS_AS(wrong.connect(), mp::AuthenticationError);
}

TEST_CASE("compiled: a server from get_server() on a Unix socket", "[compiled]") {
    TallyManager m(Address{}, std::string("k"));
    auto server = m.get_server();
    CHECK(server.address().is_unix());
    std::thread serving([&] { server.serve_forever(false); });
    struct stop {
        mp::managers::Server& s;
        std::thread& t;
        ~stop() {
            s.shutdown();
            t.join();
        }
    } stopper{server, serving};
    TallyManager client(server.address(), std::string("k"));
    client.connect();
    CHECK(client.create<Tally>(1).add(1) == 2);
}
