// Boost.Serialization for std::variant (Boost 1.74 has none): the index,
// then the alternative.  An index out of range (forged or from a different
// definition) throws instead of being trusted.
#pragma once

#include <boost/archive/archive_exception.hpp>
#include <boost/serialization/split_free.hpp>

#include <cstddef>
#include <utility>
#include <variant>

namespace boost::serialization {

template <class Ar, class... T>
void save(Ar& ar, const std::variant<T...>& v, unsigned) {
    std::size_t i = v.index();
    ar << i;
    std::visit([&](const auto& x) { ar << x; }, v);
}

namespace mp_detail {
template <std::size_t I, class Ar, class... T>
void load_alternative(Ar& ar, std::variant<T...>& v, std::size_t index) {
    if constexpr (I < sizeof...(T)) {
        if (index == I) {
            std::variant_alternative_t<I, std::variant<T...>> x{};
            ar >> x;
            v.template emplace<I>(std::move(x));
            return;
        }
        load_alternative<I + 1>(ar, v, index);
    } else {
        throw boost::archive::archive_exception(boost::archive::archive_exception::unsupported_class_version,
                                                "std::variant index out of range");
    }
}
}  // namespace mp_detail

template <class Ar, class... T>
void load(Ar& ar, std::variant<T...>& v, unsigned) {
    std::size_t i = 0;
    ar >> i;
    mp_detail::load_alternative<0>(ar, v, i);
}

template <class Ar, class... T>
void serialize(Ar& ar, std::variant<T...>& v, unsigned version) { split_free(ar, v, version); }

}  // namespace boost::serialization
