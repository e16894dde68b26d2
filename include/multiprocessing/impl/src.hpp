// The separately compiled part of the library.  Include it in exactly one
// .cpp file of a program whose files all define
// MULTIPROCESSING_SEPARATE_COMPILATION; CMake's multiprocessing::compiled
// target is that file, built once (src/multiprocessing.cpp).
#pragma once

#if !defined(MULTIPROCESSING_SEPARATE_COMPILATION)
#error "<multiprocessing/impl/src.hpp> needs MULTIPROCESSING_SEPARATE_COMPILATION (header-only builds do not use it)"
#endif

#include "multiprocessing.hpp"
#include "multiprocessing/impl/connection.ipp"
#include "multiprocessing/impl/protocol.ipp"
#include "multiprocessing/impl/server.ipp"
#include "multiprocessing/impl/python_server.ipp"
#include "multiprocessing/impl/sync_manager.ipp"
#include "multiprocessing/impl/async.ipp"
#include "multiprocessing/impl/client.ipp"
#include "multiprocessing/impl/containers.ipp"
#include "multiprocessing/impl/fork.ipp"
#include "multiprocessing/impl/object.ipp"
#include "multiprocessing/impl/pickle.ipp"
#include "multiprocessing/impl/pool.ipp"
#include "multiprocessing/impl/pool_proxy.ipp"
#include "multiprocessing/impl/process.ipp"
#include "multiprocessing/impl/python_manager.ipp"
#include "multiprocessing/impl/registry.ipp"
#include "multiprocessing/impl/server_methods.ipp"
#include "multiprocessing/impl/shared_memory.ipp"
#include "multiprocessing/impl/shared_memory_manager.ipp"
#include "multiprocessing/impl/sharedctypes.ipp"
#include "multiprocessing/impl/shm_stream.ipp"
#include "multiprocessing/impl/sync.ipp"

namespace multiprocessing::managers {
#define MULTIPROCESSING_INSTANTIATE template
#include "multiprocessing/impl/sync_manager_instances.ipp"
#undef MULTIPROCESSING_INSTANTIATE
}  // namespace multiprocessing::managers
