// SyncManager's shared data types (dict, list, set, Value, Array, Namespace).
#pragma once

namespace multiprocessing::managers::detail {

/// Mixin of SyncManager: the factory methods for shared containers.
template <class Manager>
class container_factories {
protected:
    static void register_container_types() {}
};

}  // namespace multiprocessing::managers::detail
