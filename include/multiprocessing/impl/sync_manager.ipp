// SyncManager's registration of its built-in types (managers/sync_manager.hpp).
#pragma once

#include "multiprocessing/managers/sync_manager.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void SyncManager::register_builtin_types() {
    static const bool once = [] {
        register_container_types();
        register_sync_types();
        register_pool_types();
        // The typeids CPython's SyncManager clients create, and what their
        // arguments mean here.
        namespace pk = multiprocessing::detail::pickle;
        using multiprocessing::detail::type_name;
        auto& r = *registry();
        auto alias = [&r](const char* name, const std::string& type, std::vector<pk::value> defaults,
                          std::vector<pk::value> fixed = {}) {
            r.add_python_alias(name, {std::string(name) + "[" + type + "]", std::move(defaults), std::move(fixed)});
        };
        alias("dict", type_name<Dict<object, object>>(), {pk::value::seq(pk::value::kind::dict, {})});
        alias("list", type_name<List<object>>(), {pk::value::seq(pk::value::kind::list, {})});
        alias("set", type_name<Set<object>>(), {pk::value::seq(pk::value::kind::list, {})});
        alias("Namespace", type_name<NamespaceRef>(), {});
        alias("Value", type_name<ValueRef<object>>(), {});
        alias("Queue", type_name<QueueRef<object>>(), {pk::value::integer(0)});
        alias("JoinableQueue", type_name<QueueRef<object>>(), {pk::value::integer(0)});
        alias("Lock", type_name<LockRef>(), {}, {pk::value::boolean(false)});
        alias("RLock", type_name<LockRef>(), {}, {pk::value::boolean(true)});
        alias("Semaphore", type_name<SemaphoreRef>(), {pk::value::integer(1)}, {pk::value::boolean(false)});
        alias("BoundedSemaphore", type_name<SemaphoreRef>(), {pk::value::integer(1)}, {pk::value::boolean(true)});
        alias("Event", type_name<EventRef>(), {});
        alias("Condition", type_name<ConditionRef>(), {});
        alias("Barrier", type_name<BarrierRef>(), {pk::value::floating(-1)});
        return true;
    }();
    (void)once;
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers {

MULTIPROCESSING_DECL SyncManager::SyncManager(Address address, AuthKey authkey, ServerOptions options,
                         double shutdown_timeout) : BaseManager(std::move(address), std::move(authkey), options, shutdown_timeout) {
    register_builtin_types();
}

}  // namespace multiprocessing::managers
