// SyncManager's registration of its built-in types (managers/sync_manager.hpp).
#pragma once

#include "multiprocessing/managers/sync_manager.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL void SyncManager::register_builtin_types() {
    static const bool once = (register_container_types(), register_sync_types(), register_pool_types(), true);
    (void)once;
}

}  // namespace multiprocessing::managers
