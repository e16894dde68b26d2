// Between pickle values and multiprocessing::object, for the kinds both
// have: None, bool, int, float, str, bytes, tuple, list and dict.
#pragma once

#include "multiprocessing/detail/pickle.hpp"
#include "multiprocessing/object.hpp"

#include <functional>

namespace multiprocessing::detail::pickle {

/// What a caller makes of a pickled instance (a server: of a proxy).
using instance_fn = std::function<object(const value&)>;
/// What a caller makes of an object holding a proxy.
using proxy_fn = std::function<value(const object&)>;

/// The object a pickled value stands for.  A dict keeps the last of
/// duplicate keys, as Python's loads does.  TypeError for what object cannot
/// hold yet: set, frozenset, and instances (Token, exceptions...), which
/// the caller interprets itself (on_instance, if given, does, at any
/// depth); TypeError also for an unhashable dict key.
inline object to_object(const value& v, const instance_fn* on_instance = nullptr) {
    using K = value::kind;
    switch (v.k) {
        case K::none: return object();
        case K::boolean: return object(v.b);
        case K::integer: return object(v.i);
        case K::floating: return object(v.f);
        case K::str: return object(v.s);
        case K::bytes: return object(multiprocessing::bytes{v.s});
        case K::tuple: case K::list: {
            std::vector<object> items;
            items.reserve(v.items.size());
            for (auto& x : v.items) items.push_back(to_object(x, on_instance));
            return v.k == K::tuple ? object::tuple(std::move(items)) : object::list(std::move(items));
        }
        case K::dict: {
            object d = object::dict();
            for (std::size_t k = 0; k + 1 < v.items.size(); k += 2)
                d.setitem(to_object(v.items[k], on_instance), to_object(v.items[k + 1], on_instance));
            return d;
        }
        case K::set: case K::frozenset:
            throw TypeError(std::string("a Python ") + (v.k == K::set ? "set" : "frozenset") +
                            " cannot be held by multiprocessing::object");
        case K::instance:
            if (on_instance) return (*on_instance)(v);
            break;
        case K::global: break;
    }
    throw TypeError("a pickled " + std::string(v.k == K::global ? "global" : "instance of") + " '" +
                    std::string((v.k == K::global ? v : v.cls()).module()) + "." +
                    std::string((v.k == K::global ? v : v.cls()).name()) + "' is not a plain value");
}

/// The pickle value of an object.  TypeError for an object holding a proxy
/// unless on_proxy, which then writes it (at any depth).
inline value from_object(const object& o, const proxy_fn* on_proxy = nullptr) {
    using K = object::kind;
    switch (o.type()) {
        case K::none: return value();
        case K::boolean: return value::boolean(o.as_bool());
        case K::integer: return value::integer(o.as_int());
        case K::floating: return value::floating(o.as_float());
        case K::str: return value::str(o.as_str());
        case K::bytes: return value::bytes(o.as_bytes().data);
        case K::tuple: case K::list: {
            std::vector<value> items;
            items.reserve(o.items().size());
            for (auto& x : o.items()) items.push_back(from_object(x, on_proxy));
            return value::seq(o.type() == K::tuple ? value::kind::tuple : value::kind::list, std::move(items));
        }
        case K::dict: {
            std::vector<value> items;
            items.reserve(2 * o.dict_items().size());
            for (auto& kv : o.dict_items()) {
                items.push_back(from_object(kv.first, on_proxy));
                items.push_back(from_object(kv.second, on_proxy));
            }
            return value::seq(value::kind::dict, std::move(items));
        }
        case K::proxy:
            if (on_proxy) return (*on_proxy)(o);
            break;
    }
    throw TypeError("an object holding a proxy has no plain pickle value");
}

}  // namespace multiprocessing::detail::pickle
