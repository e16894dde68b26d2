// The std::tuple, std::variant and std::optional adapters, directly and as
// method arguments and results across processes.
#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <limits>

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

namespace {
template <class T>
std::vector<char> by_archive(const T& v) {
    std::vector<char> out;
    {
        mp::detail::vector_sink sink(out);
        mp::detail::oarchive oa(sink);
        oa << v;
    }
    return out;
}
template <class T>
std::vector<char> by_plain(const T& v) {
    std::vector<char> out;
    mp::detail::put_plain(out, v);
    return out;
}
template <class T>
T read_archive(const std::vector<char>& b) {
    mp::detail::memory_source src(b.data(), b.size());
    mp::detail::iarchive ia(src);
    T v{};
    ia >> v;
    return v;
}
template <class T>
T read_plain(const std::vector<char>& b) {
    T v{};
    mp::detail::plain_reader{b.data(), b.size()}.get(v);
    return v;
}
template <class T>
bool same_both_ways(const T& v) {
    auto a = by_archive(v), p = by_plain(v);
    return a == p && read_plain<T>(a) == v && read_archive<T>(p) == v;
}
}  // namespace

TEST_CASE("plain values (numbers, strings) are written without an archive in the archive's own bytes",
          "[serialization]") {
    CHECK(same_both_ways<char>('x'));
    CHECK(same_both_ways<signed char>(-5));
    CHECK(same_both_ways<unsigned char>(250));
    CHECK(same_both_ways<short>(-12345));
    CHECK(same_both_ways<unsigned short>(54321));
    CHECK(same_both_ways<int>(std::numeric_limits<int>::min()));
    CHECK(same_both_ways<unsigned>(4000000000u));
    CHECK(same_both_ways<long>(-1234567890123L));
    CHECK(same_both_ways<long long>(std::numeric_limits<long long>::max()));
    CHECK(same_both_ways<unsigned long long>(18446744073709551615ull));
    CHECK(same_both_ways<float>(-1.25f));
    CHECK(same_both_ways<double>(6.02214076e23));
    CHECK(read_plain<long double>(by_archive<long double>(1.5L)) == 1.5L);  // padding bytes may differ
    CHECK(same_both_ways<std::string>(""));
    CHECK(same_both_ways<std::string>(std::string("nul\0inside", 10)));
    CHECK(same_both_ways<std::string>(std::string(100000, 'z')));
    static_assert(!mp::detail::plain_wire_v<bool>, "a bool goes through the archive (its byte is checked there)");
    // A truncated body fails as the archive fails.
    auto cut = by_plain(std::string("abcdef"));
    cut.pop_back();
    CHECK_THROWS_AS(read_plain<std::string>(cut), mp::detail::archive_size_error);
    CHECK_THROWS_AS(read_archive<std::string>(cut), mp::detail::archive_size_error);
    std::vector<char> three{1, 2, 3};
    CHECK_THROWS_AS(read_plain<int>(three), boost::archive::archive_exception);
    CHECK_THROWS_AS(read_archive<int>(three), boost::archive::archive_exception);
}
