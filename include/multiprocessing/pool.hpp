// multiprocessing.pool as SyncManager serves it: manager.Pool(processes)
// runs functions registered by name in worker processes forked by the
// manager's server.
//
//   int sqr(int x) { return x * x; }
//   MP_REGISTER_FUNCTION(sqr)                 // before main(), in every program
//   auto manager = mp::Manager();
//   auto pool = manager.Pool(4);
//   int r = pool.apply(sqr, 7);               // 49, typed from sqr itself
//   std::vector<int> v = pool.map(sqr, std::vector<int>{1, 2, 3});
//   int s = pool.apply<int>("sqr", 7);        // by name, e.g. from a remote client
#pragma once

#include "multiprocessing/managers.hpp"
