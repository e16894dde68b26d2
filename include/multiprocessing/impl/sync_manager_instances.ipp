// The server side of SyncManager's default types (dynamic `object` values),
// which every program using Manager() instantiates: declared `extern
// template` by sync_manager.hpp and defined once by impl/src.hpp under
// separate compilation.  Included inside namespace multiprocessing::managers
// with MULTIPROCESSING_INSTANTIATE set; no include guard on purpose.
MULTIPROCESSING_INSTANTIATE struct detail::auto_registered<SyncManager, Dict<object, object>>;
MULTIPROCESSING_INSTANTIATE struct detail::auto_registered<SyncManager, List<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::auto_registered<SyncManager, Set<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::auto_registered<SyncManager, NamespaceRef>;
MULTIPROCESSING_INSTANTIATE struct detail::auto_registered<SyncManager, ValueRef<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<QueueRef<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<LockRef>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<SemaphoreRef>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<EventRef>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<ConditionRef>;
MULTIPROCESSING_INSTANTIATE struct detail::sync_factories<SyncManager>::sync_registered<BarrierRef>;
MULTIPROCESSING_INSTANTIATE struct detail::pool_factories<SyncManager>::pool_registered;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<Dict<object, object>, std::vector<std::pair<object, object>>>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<List<object>, std::vector<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<Set<object>, std::vector<object>>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<NamespaceRef>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<ValueRef<object>, std::string, object>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<QueueRef<object>, long long>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<LockRef, bool>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<SemaphoreRef, long long, bool>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<EventRef>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<ConditionRef>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<ConditionRef, Token>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<BarrierRef, long long, double>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<BarrierRef, long long, server_action, double>;
MULTIPROCESSING_INSTANTIATE struct detail::constructor_registrar<PoolRef, bool, long long>;
// The client side: each default type's registration fingerprint (every
// exposed method's signature), which create() sends.
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<Dict<object, object>>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<List<object>>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<Set<object>>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<NamespaceRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<ValueRef<object>>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<QueueRef<object>>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<LockRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<SemaphoreRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<EventRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<ConditionRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<BarrierRef>>();
MULTIPROCESSING_INSTANTIATE std::uint64_t detail::fingerprint<Proxy<PoolRef>>();
MULTIPROCESSING_INSTANTIATE class Proxy<Dict<object, object>>;
MULTIPROCESSING_INSTANTIATE class BaseManager<SyncManager>;
