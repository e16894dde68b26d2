// Readable C++ type names for error messages and fingerprints.
#pragma once

#include <cxxabi.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>

namespace multiprocessing::detail {

inline std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                             std::free);
    return status == 0 && p ? std::string(p.get()) : std::string(mangled);
}

template <class T>
std::string type_name() { return demangle(typeid(T).name()); }

/// FNV-1a: stable across processes and builds, unlike std::hash.
inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
    return h;
}

}  // namespace multiprocessing::detail
