// SyncManager and Manager(): a BaseManager with Python's built-in typeids.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/managers/containers.hpp"
#include "multiprocessing/managers/pool_proxy.hpp"
#include "multiprocessing/managers/sync.hpp"

namespace multiprocessing::managers {

/// Python's SyncManager: a manager whose registry already holds the shared
/// containers (dict, list, ...) and synchronization types (Queue, Lock, ...),
/// made with methods named like Python's typeids.
class SyncManager : public BaseManager<SyncManager>,
                    public detail::container_factories<SyncManager>,
                    public detail::sync_factories<SyncManager>,
                    public detail::pool_factories<SyncManager> {
public:
    explicit SyncManager(Address address = {}, AuthKey authkey = {}, ServerOptions options = {},
                         double shutdown_timeout = 1.0);
    SyncManager(SyncManager&&) = default;
    SyncManager& operator=(SyncManager&&) = default;

    /// Registers the built-in typeids (done by the constructor; a program
    /// that serves SyncManager types from get_server() gets them the same way).
    static void register_builtin_types();

    /// Lets CPython clients of this process's server create the built-in
    /// types with `object` values by Python's names (`m.dict()`,
    /// `m.Queue()`, `m.Lock()`, `m.Value('i', 7)`...): call it before
    /// start() or get_server().  Not done by default because it compiles
    /// the server side of every built-in type into each file that calls it
    /// (free with MULTIPROCESSING_SEPARATE_COMPILATION).  Classes registered
    /// with register_type are served to Python clients without it.
    template <class M = SyncManager>
    static void register_python_types() {
        M::register_builtin_types();
        M::template register_python_container_types<M>();
        M::template register_python_sync_types<M>();
    }
};

#if !defined(MULTIPROCESSING_HEADER_ONLY)
// Separate compilation: the default (object) types' server side is
// instantiated once, in <multiprocessing/impl/src.hpp>.
#define MULTIPROCESSING_INSTANTIATE extern template
#include "multiprocessing/impl/sync_manager_instances.ipp"
#undef MULTIPROCESSING_INSTANTIATE
#endif

}  // namespace multiprocessing::managers

namespace multiprocessing {

/// Python's multiprocessing.Manager(): a started SyncManager.  It shuts down
/// when the returned object is destroyed.
inline managers::SyncManager Manager() {
    managers::SyncManager m;
    m.start();
    return m;
}

}  // namespace multiprocessing

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/sync_manager.ipp"
#endif
