// Boost.Serialization for std::tuple (Boost 1.74 has none): the elements
// in order.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>

namespace boost::serialization {

template <class Ar, class... T>
void serialize(Ar& ar, std::tuple<T...>& t, unsigned) {
    std::apply([&](auto&... x) { ((ar & x), ...); }, t);
}

}  // namespace boost::serialization
