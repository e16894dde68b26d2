// The std::tuple, std::variant and std::optional adapters, directly and as
// method arguments and results across processes.
#include "helpers.hpp"

#include <catch2/catch.hpp>

namespace mp = multiprocessing;
namespace conn = multiprocessing::connection;

template <class T>
static T round_trip(const T& v) {
    auto [a, b] = conn::Pipe();
    a.send(v);
    return b.recv<T>();
}

TEST_CASE("tuple, variant and optional round trip", "[serialization]") {
    std::tuple<int, std::string, std::vector<double>> t{7, "seven", {7.5, -1}};
    CHECK(round_trip(t) == t);
    CHECK(round_trip(std::tuple<>{}) == std::tuple<>{});
    std::optional<std::string> none, some = std::string("x");
    CHECK(round_trip(none) == none);
    CHECK(round_trip(some) == some);
    using V = std::variant<int, std::string, std::vector<int>>;
    for (V v : {V{5}, V{std::string("s")}, V{std::vector<int>{1, 2}}}) CHECK(round_trip(v) == v);
    std::vector<std::optional<std::tuple<int, V>>> nested{std::nullopt, std::make_tuple(1, V{std::string("n")})};
    CHECK(round_trip(nested) == nested);
}

TEST_CASE("a forged variant index is refused", "[serialization]") {
    auto [a, b] = conn::Pipe();
    a.send(std::size_t(9));  // index 9 of a 2-alternative variant
    CHECK_THROWS_AS((b.recv<std::variant<int, double>>()), boost::archive::archive_exception);
}

class Store {
public:
    std::optional<int> find(const std::string& k) const { return k == "a" ? std::optional<int>(1) : std::nullopt; }
    std::tuple<int, std::string> pair_of(std::variant<int, std::string> v) const {
        if (auto* i = std::get_if<int>(&v)) return {*i, "int"};
        return {0, std::get<std::string>(v)};
    }
};
MP_EXPOSE(Store, find, pair_of)
struct AdapterManager : mp::managers::BaseManager<AdapterManager> {};

TEST_CASE("std adapters as proxy arguments and results", "[serialization][core]") {
    AdapterManager::register_type<Store>("Store");
    AdapterManager m;
    m.start();
    auto s = m.create<Store>();
    CHECK(s.find("a") == 1);
    CHECK_FALSE(s.find("b").has_value());
    CHECK(s.pair_of(3) == std::make_tuple(3, std::string("int")));
    CHECK(s.pair_of(std::string("str")) == std::make_tuple(0, std::string("str")));
}
