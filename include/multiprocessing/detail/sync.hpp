// SyncManager's queues and synchronization primitives (Queue, Lock, ...).
#pragma once

namespace multiprocessing::managers::detail {

/// Mixin of SyncManager: the factory methods for queues and locks.
template <class Manager>
class sync_factories {
protected:
    static void register_sync_types() {}
};

}  // namespace multiprocessing::managers::detail
