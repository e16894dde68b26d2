// The exception table's standard entries (detail/protocol.hpp): inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION.
#pragma once

#include "multiprocessing/detail/protocol.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL exception_table::exception_table() {
    multiprocessing::detail::fork_state::instance().reset_in_child(&mu_);
    add<std::logic_error>();
    add<std::invalid_argument>();
    add<std::domain_error>();
    add<std::length_error>();
    add<std::out_of_range>();
    add<std::runtime_error>();
    add<std::range_error>();
    add<std::overflow_error>();
    add<std::underflow_error>();
    add<ProcessError>();
    add<BufferTooShort>();
    add<AuthenticationError>();
    add<TimeoutError>();
    add<ConnectionError>();
    add<EOFError>();
    add<TypeError>();
    add<ValueError>();
    add<KeyError>();
    add<IndexError>();
    add<NotImplementedError>();
    add<StopIteration>();
    add<AttributeError>();
    add<OverflowError>();
    by_type_[std::type_index(typeid(std::exception))] = "std::exception";
    throwers_["std::exception"] = [](const std::string& m) { throw RemoteError("std::exception", m); };
    // Standard exceptions without a message constructor come back as
    // themselves (their what() is fixed by the library anyway).
    add_plain<std::bad_alloc>();
    add_plain<std::bad_array_new_length>();
    add_plain<std::bad_cast>();
    add_plain<std::bad_typeid>();
    add_plain<std::bad_function_call>();
    add_plain<std::bad_weak_ptr>();
    add_plain<std::bad_optional_access>();
    add_plain<std::bad_variant_access>();
    add_plain<std::bad_any_cast>();
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL exception_table& exception_table::instance() {
    static exception_table* t = new exception_table;
    return *t;
}

MULTIPROCESSING_DECL std::string exception_table::name_of(const std::exception& e) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_type_.find(std::type_index(typeid(e)));
    return it == by_type_.end() ? std::string() : it->second;
}

MULTIPROCESSING_DECL void exception_table::rethrow(const std::string& type, const std::string& message) {
        std::function<void(const std::string&)> f;
        {
            std::lock_guard<std::mutex> g(mu_);
            auto it = throwers_.find(type);
            if (it != throwers_.end()) f = it->second;
        }
        if (f) f(message);
        throw RemoteError(type, message);
    }

}  // namespace multiprocessing::managers::detail
