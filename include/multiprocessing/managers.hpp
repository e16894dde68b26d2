// multiprocessing.managers: a server process owns shared objects; other
// processes call their methods through typed proxies.  This header has it
// all; managers/ holds its parts, one header each (base: BaseManager,
// BaseProxy, Proxy<T>; token: Token, RemoteError; server: Server; containers, sync, pool_proxy,
// sync_manager, shared_memory_manager, expose).
//
//   class Counter { public: int increment(); int value() const; ... };
//   MP_EXPOSE(Counter, increment, value)
//   struct MyManager : mp::managers::BaseManager<MyManager> {};
//   MyManager::register_type<Counter>("Counter");
//   MyManager m; m.start();
//   auto c = m.create<Counter>(0);   // Python: m.Counter(0)
//   c.increment();                   // runs in the server, atomically
#pragma once

#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/managers/containers.hpp"
#include "multiprocessing/managers/pool_proxy.hpp"
#include "multiprocessing/managers/python_manager.hpp"
#include "multiprocessing/managers/referent.hpp"
#include "multiprocessing/managers/self_locking.hpp"
#include "multiprocessing/managers/shared_memory_manager.hpp"
#include "multiprocessing/managers/sync.hpp"
#include "multiprocessing/managers/sync_manager.hpp"
