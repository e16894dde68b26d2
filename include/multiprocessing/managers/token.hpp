// Python's Token and RemoteError (managers.py): the name of a shared object
// and the error that carries a server-side exception back.
#pragma once

#include "multiprocessing/connection.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace multiprocessing::managers {

/// Python's Token: names one shared object (typeid, server address, id).
/// `typeid` is a C++ keyword, hence `typeid_`.
struct Token {
    std::string typeid_;
    connection::Address address;
    std::uint64_t id = 0;

    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & typeid_ & address & id; }
    friend bool operator==(const Token& a, const Token& b) {
        return a.id == b.id && a.address == b.address && a.typeid_ == b.typeid_;
    }
};

namespace detail {

/// An address as proxies inside objects carry it ("T<port>|<host>" or "U<path>").
inline std::string encode_address(const connection::Address& a) {
    if (a.is_tcp()) return "T" + std::to_string(a.port()) + "|" + a.host();
    return "U" + a.path();
}
inline connection::Address decode_address(const std::string& s) {
    if (!s.empty() && s[0] == 'T') {
        auto bar = s.find('|');
        return connection::Address(s.substr(bar + 1), static_cast<unsigned short>(std::stoi(s.substr(1, bar - 1))));
    }
    return connection::Address(s.substr(1));
}

/// Python's class name of the proxy a typeid gets from SyncManager (the
/// part of our typeid before '[', e.g. "list[List<object>]" -> ListProxy).
inline std::string proxy_class_name(const std::string& typeid_) {
    std::string base = typeid_.substr(0, typeid_.find('['));
    static const std::pair<const char*, const char*> names[] = {
        {"list", "ListProxy"}, {"dict", "DictProxy"}, {"set", "SetProxy"}, {"Value", "ValueProxy"},
        {"Array", "ArrayProxy"}, {"Namespace", "NamespaceProxy"}, {"Lock", "AcquirerProxy"},
        {"RLock", "AcquirerProxy"}, {"Semaphore", "AcquirerProxy"}, {"BoundedSemaphore", "AcquirerProxy"},
        {"Condition", "ConditionProxy"}, {"Event", "EventProxy"}, {"Barrier", "BarrierProxy"},
        {"Pool", "PoolProxy"}};
    for (auto& n : names)
        if (base == n.first) return n.second;
    return "AutoProxy[" + base + "]";
}

}  // namespace detail

/// Python's RemoteError: an exception raised in the server whose type the
/// caller cannot rebuild (or a protocol-level failure such as calling a
/// method that is not exposed).  Carries the server-side type name and
/// message; what() is laid out like Python's, between two rules.
class RemoteError : public std::runtime_error {
public:
    RemoteError(std::string type_name, std::string message)
        : std::runtime_error(format(type_name, message)),
          type_name_(std::move(type_name)),
          message_(std::move(message)) {}
    const std::string& type_name() const { return type_name_; }
    const std::string& message() const { return message_; }

private:
    static std::string format(const std::string& t, const std::string& m) {
        std::string rule(75, '-');
        return "\n" + rule + "\n" + t + ": " + m + "\n" + rule;
    }
    std::string type_name_, message_;
};

}  // namespace multiprocessing::managers
