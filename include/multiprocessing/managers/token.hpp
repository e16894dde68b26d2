// Python's Token and RemoteError (managers.py): the name of a shared object
// and the error that carries a server-side exception back.
#pragma once

#include "multiprocessing/connection.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>

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
