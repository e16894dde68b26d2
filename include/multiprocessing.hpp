// Umbrella header: everything in the library.
#pragma once

#include "multiprocessing/connection.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/managers.hpp"
#include "multiprocessing/object.hpp"
#include "multiprocessing/pool.hpp"
#include "multiprocessing/process.hpp"
#include "multiprocessing/shared_memory.hpp"
#include "multiprocessing/sharedctypes.hpp"
