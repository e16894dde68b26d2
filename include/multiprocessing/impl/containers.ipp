// Out-of-line members of the classes in <multiprocessing/managers/containers.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/containers.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL object NamespaceRef::getattr(const std::string& name) const {
    auto v = attrs_.get(name);
    if (!v) throw AttributeError("'Namespace' object has no attribute " + multiprocessing::detail::py_str_repr(name));
    return *v;
}

MULTIPROCESSING_DECL void NamespaceRef::delattr(const std::string& name) {
    if (!attrs_.contains(name))
        throw AttributeError("'Namespace' object has no attribute " + multiprocessing::detail::py_str_repr(name));
    attrs_.delitem(name);
}

MULTIPROCESSING_DECL std::string NamespaceRef::repr() const {
    std::vector<std::string> parts;
    for (auto& kv : attrs_)
        if (kv.first.rfind("_", 0) != 0) parts.push_back(kv.first + "=" + repr_of(kv.second));
    std::sort(parts.begin(), parts.end());
    std::string s = "Namespace(";
    for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
    return s + ")";
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL object Proxy<NamespaceRef>::getattr(const std::string& name) const { return _call_exposed_<&R::getattr>("__getattribute__", name); }

MULTIPROCESSING_DECL void Proxy<NamespaceRef>::setattr(const std::string& name, const object& v) const { _call_exposed_<&R::setattr>("__setattr__", name, v); }

MULTIPROCESSING_DECL void Proxy<NamespaceRef>::delattr(const std::string& name) const { _call_exposed_<&R::delattr>("__delattr__", name); }

MULTIPROCESSING_DECL bool Proxy<NamespaceRef>::hasattr(const std::string& name) const { return _call_exposed_<&R::hasattr>("hasattr", name); }

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void NamespaceRef::setattr(const std::string& name, const object& v) { attrs_.setitem(name, v); }

MULTIPROCESSING_DECL bool NamespaceRef::hasattr(const std::string& name) const { return attrs_.contains(name); }

MULTIPROCESSING_DECL std::string NamespaceRef::repr_of(const object& o) { return multiprocessing::repr(o); }

}  // namespace multiprocessing::managers
