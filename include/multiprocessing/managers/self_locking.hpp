// managers::self_locking: a referent type's opt-out of per-object locking.
#pragma once

#include <type_traits>

namespace multiprocessing::managers {

/// Declare `template <> struct self_locking<T> : std::true_type {};` for a
/// type that does its own locking: the server then lets several calls on
/// one object run at once (a blocking queue needs that).  By default calls
/// on one object are serialized, so every method call is atomic (Python's
/// server takes no per-object lock at all).
template <class T>
struct self_locking : std::false_type {};

}  // namespace multiprocessing::managers
