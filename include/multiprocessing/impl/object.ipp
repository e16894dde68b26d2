// Out-of-line members of the classes in <multiprocessing/object.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/object.hpp"

namespace multiprocessing {

MULTIPROCESSING_DECL auto object::dict_t::operator=(const dict_t& o) -> dict_t& {
    if (this != &o) p_ = std::make_unique<data>(*o);
    return *this;
}

MULTIPROCESSING_DECL auto object::dict_t::operator->() -> data* {
    if (!p_) p_ = std::make_unique<data>();
    return p_.get();
}

MULTIPROCESSING_DECL auto object::dict_t::empty() -> const data& {
    static const data* e = new data;
    return *e;
}

MULTIPROCESSING_DECL object object::dict(std::initializer_list<std::pair<object, object>> items) {
    object o;
    o.v_ = dict_t{};
    for (auto& kv : items) o.setitem(kv.first, kv.second);
    return o;
}

MULTIPROCESSING_DECL std::string object::type_name() const {
    if (auto* p = std::get_if<proxy_t>(&v_)) return p->py ? p->py->type_name() : hooks().type_name(*p->ref);
    static const char* names[] = {"NoneType", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict"};
    return names[v_.index()];
}

MULTIPROCESSING_DECL object object::_proxy_of(const std::string& typeid_, const std::string& address, std::uint64_t id) {
    if (!hooks().acquire) throw ValueError("an object holding a proxy needs <multiprocessing/managers.hpp>");
    object o;
    o.v_ = proxy_t{hooks().acquire(typeid_, address, id), nullptr};
    return o;
}

MULTIPROCESSING_DECL void object::_proxy_token(std::string& typeid_, std::string& address, std::uint64_t& id) const {
    hooks().token(cpp_ref(), typeid_, address, id);
}

MULTIPROCESSING_DECL const std::shared_ptr<managers::detail::python_ref>* object::python_ref() const {
    auto* p = std::get_if<proxy_t>(&v_);
    return p && p->py ? &p->py : nullptr;
}

MULTIPROCESSING_DECL const std::shared_ptr<managers::detail::ref_entry>* object::proxy_ref() const {
    auto* p = std::get_if<proxy_t>(&v_);
    return p && p->ref ? &p->ref : nullptr;
}

MULTIPROCESSING_DECL std::int64_t object::as_int() const {
    if (is_bool()) return std::get<bool>(v_);
    return get<std::int64_t>("int");
}

MULTIPROCESSING_DECL double object::as_float() const {
    if (is_int() || is_bool()) return static_cast<double>(as_int());
    return get<double>("float");
}

MULTIPROCESSING_DECL const std::vector<object>& object::items() const {
    if (auto* t = std::get_if<tuple_t>(&v_)) return t->items;
    return get<list_t>("list").items;
}

MULTIPROCESSING_DECL std::vector<object>& object::items() {
    if (auto* t = std::get_if<tuple_t>(&v_)) return t->items;
    return get<list_t>("list").items;
}

MULTIPROCESSING_DECL std::size_t object::size() const {
    switch (type()) {
    case kind::str: return as_str().size();
    case kind::bytes: return as_bytes().data.size();
    case kind::tuple: case kind::list: return items().size();
    case kind::dict: return dict_items().size();
    default: throw TypeError("object of type '" + type_name() + "' has no len()");
    }
}

MULTIPROCESSING_DECL const object& object::operator[](const object& k) const {
    if (type() == kind::dict) {
        auto& d = std::get<dict_t>(v_);
        detail::hash_object(k);  // TypeError for unhashable keys, even when empty
        auto it = d->index.find(k);
        if (it == d->index.end()) throw KeyError(repr(k));
        return d->items[it->second].second;
    }
    auto& v = items();
    std::int64_t i = k.as_int(), n = static_cast<std::int64_t>(v.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw IndexError(std::string(type() == kind::list ? "list" : "tuple") + " index out of range");
    return v[static_cast<std::size_t>(i)];
}

MULTIPROCESSING_DECL void object::setitem(const object& k, const object& v) {
    auto& d = get<dict_t>("dict");
    detail::hash_object(k);  // TypeError for unhashable keys
    auto it = d->index.find(k);
    if (it != d->index.end()) d->items[it->second].second = v;
    else {
        d->index.emplace(k, d->items.size());
        d->items.emplace_back(k, v);
    }
}

MULTIPROCESSING_DECL object& object::operator+=(const object& y) {
    object r = add(*this, y, true);
    *this = std::move(r);
    return *this;
}

MULTIPROCESSING_DECL std::vector<object> object::iterate() const {
    switch (type()) {
    case kind::tuple: case kind::list: return items();
    case kind::dict: {
        std::vector<object> v;
        for (auto& kv : dict_items()) v.push_back(kv.first);
        return v;
    }
    case kind::str: {
        std::vector<object> v;
        auto& s = as_str();
        for (std::size_t i = 0; i < s.size();) {
            auto c = static_cast<unsigned char>(s[i]);
            std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (i + n > s.size()) n = 1;
            v.emplace_back(s.substr(i, n));
            i += n;
        }
        return v;
    }
    case kind::bytes: {
        std::vector<object> v;
        for (char c : as_bytes().data) v.emplace_back(static_cast<std::int64_t>(static_cast<unsigned char>(c)));
        return v;
    }
    default: throw TypeError("'" + type_name() + "' object is not iterable");
    }
}

MULTIPROCESSING_DECL const managers::detail::ref_entry& object::cpp_ref() const {
    const proxy_t& p = get<proxy_t>("proxy");
    if (!p.ref)
        throw TypeError("a proxy of a CPython manager's object cannot be sent to a C++ manager or process");
    return *p.ref;
}

MULTIPROCESSING_DECL int object::num_cmp(const object& a, const object& b) {
    auto sign = [](auto x, auto y) { return x < y ? -1 : y < x ? 1 : 0; };
    if (!a.is_float() && !b.is_float()) return sign(a.as_int(), b.as_int());
    if (a.is_float() && b.is_float()) {
        double x = std::get<double>(a.v_), y = std::get<double>(b.v_);
        if (std::isnan(x) || std::isnan(y)) return 2;
        return sign(x, y);
    }
    if (a.is_float()) {
        int c = int_float_cmp(b.as_int(), std::get<double>(a.v_));
        return c == 2 ? 2 : -c;
    }
    return int_float_cmp(a.as_int(), std::get<double>(b.v_));
}

MULTIPROCESSING_DECL int object::int_float_cmp(std::int64_t i, double d) {
    if (std::isnan(d)) return 2;
    if (d >= 9223372036854775808.0) return -1;   // 2**63 and above
    if (d < -9223372036854775808.0) return 1;    // below -2**63
    double t = std::trunc(d);
    auto ti = static_cast<std::int64_t>(t);      // exact: |t| <= 2**63, t != 2**63
    if (i != ti) return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

MULTIPROCESSING_DECL bool object::equal(const object& a, const object& b) {
    if (a.is_number() && b.is_number()) return num_cmp(a, b) == 0;
    if (a.type() != b.type()) return false;
    switch (a.type()) {
    case kind::none: return true;
    case kind::proxy: {
        auto& x = std::get<proxy_t>(a.v_);
        auto& y = std::get<proxy_t>(b.v_);
        if (x.py || y.py) return x.py && y.py && x.py->same(*y.py);
        return hooks().same(*x.ref, *y.ref);
    }
    case kind::str: return a.as_str() == b.as_str();
    case kind::bytes: return a.as_bytes() == b.as_bytes();
    case kind::tuple: case kind::list: return a.items() == b.items();
    case kind::dict: {
        auto& x = std::get<dict_t>(a.v_);
        auto& y = std::get<dict_t>(b.v_);
        if (x->items.size() != y->items.size()) return false;
        for (auto& kv : x->items) {
            auto it = y->index.find(kv.first);
            if (it == y->index.end() || !(y->items[it->second].second == kv.second)) return false;
        }
        return true;
    }
    default: return false;
    }
}

MULTIPROCESSING_DECL bool object::compare(const object& a, const object& b, cmp_op op) {
    if (a.is_number() && b.is_number()) {
        int c = num_cmp(a, b);
        if (c == 2) return false;  // nan: every ordering is false
        return apply(c, 0, op);
    }
    if (a.type() == b.type()) {
        switch (a.type()) {
        case kind::str: return apply(a.as_str(), b.as_str(), op);
        case kind::bytes: return apply(a.as_bytes().data, b.as_bytes().data, op);
        case kind::tuple: case kind::list: {
            // The first items that differ decide, with the same operator.
            auto& x = a.items();
            auto& y = b.items();
            for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
                if (!(x[i] == y[i])) return compare(x[i], y[i], op);
            return apply(x.size(), y.size(), op);
        }
        default: break;
        }
    }
    static const char* names[] = {"<", "<=", ">", ">="};
    throw TypeError(std::string("'") + names[op] + "' not supported between instances of '" + a.type_name() +
                    "' and '" + b.type_name() + "'");
}

MULTIPROCESSING_DECL object object::add(const object& a, const object& b, bool inplace) {
    auto unsupported = [&] {
        return TypeError(std::string("unsupported operand type(s) for ") + (inplace ? "+=" : "+") + ": '" +
                         a.type_name() + "' and '" + b.type_name() + "'");
    };
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return object(a.as_float() + b.as_float());
        std::int64_t r;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r))
            throw OverflowError("int result does not fit in 64 bits");
        return object(r);
    }
    switch (a.type()) {
    case kind::str:
        if (!b.is_str()) throw TypeError("can only concatenate str (not \"" + b.type_name() + "\") to str");
        return object(a.as_str() + b.as_str());
    case kind::bytes:
        if (b.type() != kind::bytes) throw TypeError("can't concat " + b.type_name() + " to bytes");
        return object(multiprocessing::bytes{a.as_bytes().data + b.as_bytes().data});
    case kind::tuple: {
        if (b.type() != kind::tuple)
            throw TypeError("can only concatenate tuple (not \"" + b.type_name() + "\") to tuple");
        auto v = a.items();
        v.insert(v.end(), b.items().begin(), b.items().end());
        return tuple(std::move(v));
    }
    case kind::list: {
        auto v = a.items();
        if (inplace) {
            auto more = b.iterate();  // `l += x` extends by any iterable
            v.insert(v.end(), more.begin(), more.end());
        } else {
            if (b.type() != kind::list)
                throw TypeError("can only concatenate list (not \"" + b.type_name() + "\") to list");
            v.insert(v.end(), b.items().begin(), b.items().end());
        }
        return list(std::move(v));
    }
    default: throw unsupported();
    }
}

MULTIPROCESSING_DECL std::string object::repr_() const {
    using multiprocessing::detail::py_float_repr;
    using multiprocessing::detail::py_str_repr;
    switch (type()) {
    case kind::none: return "None";
    case kind::boolean: return std::get<bool>(v_) ? "True" : "False";
    case kind::integer: return std::to_string(std::get<std::int64_t>(v_));
    case kind::floating: return py_float_repr(std::get<double>(v_));
    case kind::str: return py_str_repr(as_str());
    case kind::bytes: return detail::py_bytes_repr(as_bytes().data);
    case kind::tuple: {
        auto& v = items();
        if (v.size() == 1) return "(" + v[0].repr_() + ",)";
        return multiprocessing::detail::py_seq_repr(v.begin(), v.end(), "(", ")");
    }
    case kind::list: {
        auto& v = items();
        return multiprocessing::detail::py_seq_repr(v.begin(), v.end(), "[", "]");
    }
    case kind::dict: {
        std::string s = "{";
        bool first = true;
        for (auto& kv : dict_items()) {
            if (!first) s += ", ";
            first = false;
            s += kv.first.repr_() + ": " + kv.second.repr_();
        }
        return s + "}";
    }
    case kind::proxy: {
        auto& p = std::get<proxy_t>(v_);
        return p.py ? p.py->repr() : hooks().repr(*p.ref);
    }
    }
    return "?";
}

}  // namespace multiprocessing
