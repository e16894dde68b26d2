// multiprocessing::compiled: the library's non-template parts, compiled once
// (see <multiprocessing/detail/config.hpp>).
#include <multiprocessing/impl/src.hpp>
