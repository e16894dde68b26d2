// Header-only (the default) or separately compiled.  A program that
// defines MULTIPROCESSING_SEPARATE_COMPILATION in every file (CMake:
// link multiprocessing::compiled) gets the library's non-template parts
// (every non-template member function, in impl/*.ipp; sockets, the server
// process, the built-in SyncManager types) from one compiled file,
// <multiprocessing/impl/src.hpp>, as Asio's BOOST_ASIO_SEPARATE_COMPILATION
// does.
#pragma once

#if defined(MULTIPROCESSING_SEPARATE_COMPILATION)
#define MULTIPROCESSING_DECL
#else
#define MULTIPROCESSING_HEADER_ONLY 1
#define MULTIPROCESSING_DECL inline
#endif
