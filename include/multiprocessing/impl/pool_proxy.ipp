// Out-of-line members of the classes in <multiprocessing/managers/pool_proxy.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/pool_proxy.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL std::vector<std::string> Proxy<AsyncResultRef>::get(std::optional<double> timeout) const {
    return _call_exposed_<&R::get>("get", timeout.value_or(-1));
}

MULTIPROCESSING_DECL bool Proxy<AsyncResultRef>::wait(std::optional<double> timeout) const {
    return _call_exposed_<&R::wait>("wait", timeout.value_or(-1));
}

MULTIPROCESSING_DECL bool Proxy<AsyncResultRef>::ready() const { return _call_exposed_<&R::ready>("ready"); }

MULTIPROCESSING_DECL bool Proxy<AsyncResultRef>::successful() const { return _call_exposed_<&R::successful>("successful"); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL std::string Proxy<IteratorRef>::next(std::optional<double> timeout) const {
    return _call_exposed_<&R::next>("next", timeout.value_or(-1));
}

MULTIPROCESSING_DECL std::vector<std::string> Proxy<IteratorRef>::next_batch(long long max, std::optional<double> timeout) const {
    return _call_exposed_<&R::next_batch>("next_batch", max, timeout.value_or(-1));
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void Proxy<PoolRef>::close() const { _call_exposed_<&Ref::close>("close"); }

MULTIPROCESSING_DECL void Proxy<PoolRef>::terminate() const { _call_exposed_<&Ref::terminate>("terminate"); }

MULTIPROCESSING_DECL bool Proxy<PoolRef>::join(std::optional<double> timeout) const {
    return _call_exposed_<&Ref::join>("join", timeout.value_or(-1));
}

MULTIPROCESSING_DECL std::vector<long long> Proxy<PoolRef>::pids() const { return _call_exposed_<&Ref::pids>("pids"); }

MULTIPROCESSING_DECL long long Proxy<PoolRef>::chunk(std::optional<long long> c) { return c ? *c : -1; }

}  // namespace multiprocessing::managers
