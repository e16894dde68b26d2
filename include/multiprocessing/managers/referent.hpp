// What code running in the server (a referent's constructor or methods)
// may use: who is calling, whether the caller is gone, handing things over,
// the cycle collector's visitor, and exception types that cross as
// themselves.  Python's managers have none of these but register_exception's
// role (pickling any exception).
#pragma once

#include "multiprocessing/detail/protocol.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/managers/self_locking.hpp"
#include "multiprocessing/managers/token.hpp"

#include <functional>
#include <memory>

namespace multiprocessing::managers {

/// What a class holding proxies receives in its `_gc_traverse` member.
using gc_visitor = detail::gc_visitor;

/// For a class holding proxies (directly, in objects or in containers):
///   void _gc_traverse(const gc_visitor& v) const { gc_visit(members_, v); }
/// lets the server's cycle collector see them, so cycles through objects
/// of the class are freed (Python's objects need no such declaration).
template <class T>
void gc_visit(const T& x, const gc_visitor& v) {
    detail::gc_traverse<T>::run(x, v);
}

/// Who is calling, for methods running in the server: the client process
/// (session) and its calling thread (connection).  Outside a call both are 0.
/// An RLock uses this as its owner; Python's managers have no equivalent.
struct Caller {
    std::uint64_t session = 0;
    std::uint64_t connection = 0;
};
inline Caller current_caller() {
    auto* c = detail::current_call();
    return c ? Caller{c->session, c->connection} : Caller{};
}

/// For methods that block in the server: true once the caller has
/// disconnected (its process died) or the server is stopping, so a waiter
/// can give up without taking anything.  Poll it while waiting.
inline bool caller_gone() {
    auto* c = detail::current_call();
    return c && c->caller_gone();
}

/// For methods that hand something to their caller (a queue item, a
/// semaphore permit): call it once the thing is taken.  The reply then asks
/// the client to acknowledge it, and if the caller's process is gone before
/// it has the reply (or it refuses a reply it no longer waits for),
/// take_back runs in the server to put the thing back.  So nothing is handed
/// to a dead process; Python has no such guarantee.  No-op outside a call.
inline void hand_over(std::function<void()> take_back) {
    if (auto* c = detail::current_call()) c->hand_over(std::move(take_back));
}

/// For code running in the server (a constructor or an exposed method): the
/// referent of a proxy of this same server, given its token, if it is a T.
/// This is how Condition(lock) shares the lock object itself, as Python's
/// RebuildProxy hands the server its own object.  Throws ValueError when
/// the token names another server, an unknown object or another type, or
/// when called outside the server.  The caller uses the object directly,
/// outside the server's per-object lock: T should do its own locking
/// (managers::self_locking<T>), as the built-in Lock and Queue do.
template <class T>
std::shared_ptr<T> local_referent(const Token& t) {
    auto* c = detail::current_call();
    if (!c) throw ValueError("local_referent() works only in the server, during a call");
    auto p = c->local_object(t, std::type_index(typeid(T)));
    if (!p)
        throw ValueError("'" + t.typeid_ + "' object " + std::to_string(t.id) + " is not a " +
                         multiprocessing::detail::type_name<T>() + " of this manager");
    return std::static_pointer_cast<T>(p);
}

/// Lets an exception type of your own cross the process boundary as itself
/// (it must be constructible from a std::string).  Python pickles any
/// exception; C++ needs the type named once.  Call it in both programs.
template <class E>
void register_exception() { detail::exception_table::instance().add<E>(); }

}  // namespace multiprocessing::managers
