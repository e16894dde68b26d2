// SharedMemoryManager: a BaseManager whose server makes shared memory
// segments for its clients and unlinks every one of them when it ends.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/shared_memory.hpp"

#include <dirent.h>
#include <sys/mman.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace multiprocessing::managers {

namespace detail {

/// Names in /dev/shm that start with prefix.
inline std::vector<std::string> segments_with_prefix(const std::string& prefix) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d))
            if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) out.emplace_back(e->d_name);
        ::closedir(d);
    }
    return out;
}

/// shm_unlink()s every segment whose name starts with prefix: the owner's
/// last resort for a server that was killed before its cleanup.
inline void unlink_prefixed(const std::string& prefix) noexcept {
    if (prefix.empty()) return;
    try {
        for (auto& n : segments_with_prefix(prefix)) ::shm_unlink(("/" + n).c_str());
    } catch (...) {  // out of memory: nothing better to do in a destructor's path
    }
}

/// In the server process: the segments clients asked for (Python's
/// SharedMemoryTracker).  Every name carries the server's prefix, so the
/// owner can find them even if the server dies without cleaning up.
class segment_table {
public:
    static segment_table& instance();
    /// A fresh server starts empty (a forked server inherits its parent's copy).
    void reset(std::string prefix);
    std::string create(std::uint64_t size);
    void release(const std::string& name);
    std::vector<std::string> list() const;
    void unlink_all() noexcept;

private:
    mutable std::mutex mu_;
    std::string prefix_;
    std::set<std::string> names_;
};

/// The referent clients call; state lives in the process-wide segment_table.
class SharedMemoryTracker {
public:
    std::string create(std::uint64_t size) { return segment_table::instance().create(size); }
    void release_segment(const std::string& name) { segment_table::instance().release(name); }
    std::vector<std::string> list_segments() const { return segment_table::instance().list(); }
};

MP_PROXY(SharedMemoryTrackerProxy, SharedMemoryTracker, create, release_segment, list_segments);

}  // namespace detail

template <>
struct self_locking<detail::SharedMemoryTracker> : std::true_type {};  // the table locks itself

/// Python's SharedMemoryManager: start() forks a server that makes shared
/// memory segments on request and unlinks all of them at shutdown().
/// SharedMemory(size) and ShareableList(seq) return objects mapped in the
/// calling process, as in Python; pass their name() to other processes.
///
/// Differs from Python:
///  - The server creates each segment and records it before its name is
///    returned, so no segment exists untracked even if the asking process
///    is killed mid-call (Python creates it in the client, then tracks it).
///  - Segments are also unlinked when the owner process dies (the server
///    exits with it) and, by the owner's shutdown(), when the server itself
///    was killed: names are "psm_<manager>_<segment>", 21 characters, and
///    the owner removes whatever carries its manager's part.
///  - SharedMemory()/ShareableList() before start() raise ValueError with
///    a plain message.
class SharedMemoryManager : public BaseManager<SharedMemoryManager> {
public:
    using Item = shared_memory::Item;

    explicit SharedMemoryManager(Address address = {}, AuthKey authkey = {}, ServerOptions options = {},
                                 double shutdown_timeout = 1.0);
    SharedMemoryManager(SharedMemoryManager&& o) noexcept;
    SharedMemoryManager& operator=(SharedMemoryManager&& o) noexcept;
    /// Shuts down a server this process started, as ~BaseManager does; a
    /// connected manager leaves the server running.
    ~SharedMemoryManager();

    /// Registers the tracker typeid and the server's exit hook (done by the
    /// constructor; call it before serving from get_server() elsewhere).
    static void register_builtin_types();

    /// Python's start(initializer).
    void start(std::function<void()> initializer = {});

    /// Python's connect(): use the segments of a running SharedMemoryManager.
    void connect();

    /// Python's shutdown(): the server unlinks every segment it made, then
    /// exits.  If it had died first, the owner unlinks them itself.
    void shutdown();

    /// Python's get_server(): serve SharedMemoryManager from this process.
    Server get_server();

    /// Python's smm.SharedMemory(size): a new segment of `size` bytes
    /// (zero-filled), mapped here and unlinked when the manager shuts down.
    shared_memory::SharedMemory SharedMemory(std::size_t size);

    /// Python's smm.ShareableList(sequence): a new list in a segment that
    /// is unlinked when the manager shuts down.
    shared_memory::ShareableList ShareableList(const std::vector<Item>& sequence);
    shared_memory::ShareableList ShareableList(std::initializer_list<Item> sequence);

    /// Names of the segments the server tracks (Python's list_segments).
    std::vector<std::string> list_segments();
    /// Unlinks one tracked segment now (Python's release_segment);
    /// ValueError if the server does not track it.
    void release_segment(const std::string& name);

private:
    detail::SharedMemoryTrackerProxy& tracker();
    void release_quietly(const std::string& name) noexcept;

    std::string prefix_;  // "psm_<8 hex>_": every segment this manager's server makes
    detail::SharedMemoryTrackerProxy tracker_;
};

}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/shared_memory_manager.ipp"
#endif
