// Boost.Serialization for std::optional (Boost 1.74 has none): a presence
// flag, then the value.
#pragma once

#include <boost/serialization/split_free.hpp>

#include <optional>

namespace boost::serialization {

template <class Ar, class T>
void save(Ar& ar, const std::optional<T>& o, unsigned) {
    bool has = o.has_value();
    ar << has;
    if (has) ar << *o;
}

template <class Ar, class T>
void load(Ar& ar, std::optional<T>& o, unsigned) {
    bool has = false;
    ar >> has;
    if (!has) {
        o.reset();
        return;
    }
    T v{};
    ar >> v;
    o = std::move(v);
}

template <class Ar, class T>
void serialize(Ar& ar, std::optional<T>& o, unsigned v) { split_free(ar, o, v); }

}  // namespace boost::serialization
