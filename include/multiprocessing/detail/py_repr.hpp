// Python's repr() for C++ values, so typed containers print what CPython
// prints for the same data: 'text' with Python's quoting, floats in
// Python's shortest round-trip form, True/False, [..], {k: v}.
#pragma once

#include "multiprocessing/detail/unicode_printable.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <typeinfo>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace multiprocessing::detail {

/// Python's repr of a float: shortest round trip, exponent when the decimal
/// exponent is < -4 or >= 16, always a '.0' or exponent for integers.
inline std::string py_float_repr(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    std::string sci(buf, r.ptr);  // d.ddde[+-]XX
    auto e = sci.find('e');
    std::string mant = sci.substr(0, e);
    int exp = std::stoi(sci.substr(e + 1));
    bool neg = mant[0] == '-';
    if (neg) mant.erase(0, 1);
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    std::string out;
    if (exp < -4 || exp >= 16) {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        out += eb;
    } else if (exp < 0) {
        out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    } else {
        std::size_t intlen = static_cast<std::size_t>(exp) + 1;
        if (digits.size() <= intlen) out = digits + std::string(intlen - digits.size(), '0') + ".0";
        else out = digits.substr(0, intlen) + "." + digits.substr(intlen);
    }
    return neg ? "-" + out : out;
}

/// Python's repr of bytes: b'...' with Python's quote choice and \xNN
/// escapes for everything outside printable ASCII.
inline std::string py_bytes_repr(std::string_view s) {
    bool has_single = s.find('\'') != std::string_view::npos;
    bool has_double = s.find('"') != std::string_view::npos;
    char q = (has_single && !has_double) ? '"' : '\'';
    std::string out = "b";
    out += q;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == static_cast<unsigned char>(q) || c == '\\') { out += '\\'; out += ch; }
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c >= 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else out += ch;
    }
    out += q;
    return out;
}

/// Python's repr of a str (UTF-8 in, UTF-8 out): Python's quote choice,
/// escapes for control and other non-printable characters (by CPython's
/// str.isprintable() table), printable non-ASCII text kept as it is.
inline std::string py_str_repr(const std::string& s) {
    bool has_single = s.find('\'') != std::string::npos;
    bool has_double = s.find('"') != std::string::npos;
    char q = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, q);
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c == static_cast<unsigned char>(q) || c == '\\') { out += '\\'; out += static_cast<char>(c); }
            else if (c == '\n') out += "\\n";
            else if (c == '\r') out += "\\r";
            else if (c == '\t') out += "\\t";
            else if (c < 0x20 || c == 0x7f) {
                char b[8];
                std::snprintf(b, sizeof b, "\\x%02x", c);
                out += b;
            } else out += static_cast<char>(c);
            ++i;
            continue;
        }
        // Decode one UTF-8 sequence; invalid bytes are kept as they are.
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len == 1 || i + len > s.size()) { out += static_cast<char>(c); ++i; continue; }
        std::uint32_t cp = c & (0x3F >> (len - 1));
        for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        if (py_isprintable(cp)) {
            out.append(s, i, len);
        } else {
            char b[16];
            if (cp < 0x100) std::snprintf(b, sizeof b, "\\x%02x", cp);
            else if (cp < 0x10000) std::snprintf(b, sizeof b, "\\u%04x", cp);
            else std::snprintf(b, sizeof b, "\\U%08x", cp);
            out += b;
        }
        i += len;
    }
    out += q;
    return out;
}

// Falls back to operator<< for types Python has no repr for.
template <class T, class = void>
struct is_streamable : std::false_type {};
template <class T>
struct is_streamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <class T>
std::string py_repr(const T& v);
template <class T>
std::string py_repr(const std::vector<T>& v);
template <class T>
std::string py_repr(const std::optional<T>& v);
template <class A, class B>
std::string py_repr(const std::pair<A, B>& p);

template <class It>
std::string py_seq_repr(It b, It e, const char* open, const char* close) {
    std::string s = open;
    for (auto it = b; it != e; ++it) {
        if (it != b) s += ", ";
        s += py_repr(*it);
    }
    return s + close;
}

template <class T>
std::string py_repr(const T& v) {
    using D = std::decay_t<T>;
    if constexpr (std::is_same_v<D, bool>) return v ? "True" : "False";
    else if constexpr (std::is_same_v<D, char>) return py_str_repr(std::string(1, v));
    else if constexpr (std::is_integral_v<D>) return std::to_string(v);
    else if constexpr (std::is_floating_point_v<D>) return py_float_repr(static_cast<double>(v));
    else if constexpr (std::is_same_v<D, std::string>) return py_str_repr(v);
    else if constexpr (std::is_same_v<D, std::nullptr_t>) return "None";
    else if constexpr (is_streamable<D>::value) {
        std::ostringstream os;
        os << v;
        return os.str();
    } else {
        return "<" + std::string(typeid(D).name()) + ">";
    }
}

template <class T>
std::string py_repr(const std::vector<T>& v) { return py_seq_repr(v.begin(), v.end(), "[", "]"); }
template <class T>
std::string py_repr(const std::optional<T>& v) { return v ? py_repr(*v) : "None"; }
template <class A, class B>
std::string py_repr(const std::pair<A, B>& p) { return "(" + py_repr(p.first) + ", " + py_repr(p.second) + ")"; }

}  // namespace multiprocessing::detail
