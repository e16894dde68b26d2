// CPython's Token as pickle carries it, read and written in one place for
// both kinds of interop: a C++ client of a CPython manager
// (managers/python_manager.hpp) and a C++ server of CPython clients
// (impl/python_server.ipp).
#pragma once

#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/pickle.hpp"

#include <optional>
#include <string>
#include <utility>

namespace multiprocessing::managers::detail {

/// Token(typeid, address, id) as CPython pickles it: its __getstate__
/// tuple, the address a path or (host, port), the id a hex string.
inline multiprocessing::detail::pickle::value pickle_token(const std::string& typeid_, const connection::Address& a,
                                                           const std::string& id) {
    using value = multiprocessing::detail::pickle::value;
    value where = a.is_tcp() ? value::tuple({value::str(a.host()), value::integer(a.port())}) : value::str(a.path());
    value state = value::tuple({value::str(typeid_), std::move(where), value::str(id)});
    return value::instance(value::global("multiprocessing.managers", "Token"), value::tuple({}), true, &state);
}

/// The address in a pickled Token's state: a path, or (host, port) with a
/// port in 1..65535; nullopt for anything else.
inline std::optional<connection::Address> token_address(const multiprocessing::detail::pickle::value& where) {
    using K = multiprocessing::detail::pickle::value::kind;
    if (where.k == K::str) return connection::Address(where.s);
    if (where.k == K::tuple && where.items.size() == 2 && where.items[0].k == K::str &&
        where.items[1].k == K::integer && where.items[1].i > 0 && where.items[1].i < 65536)
        return connection::Address(where.items[0].s, static_cast<unsigned short>(where.items[1].i));
    return std::nullopt;
}

}  // namespace multiprocessing::managers::detail
