// Every std type the codec can carry, in one include: Boost's own adapters
// plus ours for std::tuple, std::variant and std::optional.
#pragma once

#include "multiprocessing/detail/serialization/optional.hpp"
#include "multiprocessing/detail/serialization/tuple.hpp"
#include "multiprocessing/detail/serialization/variant.hpp"

#include <boost/serialization/deque.hpp>
#include <boost/serialization/list.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/set.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/unordered_map.hpp>
#include <boost/serialization/unordered_set.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>
