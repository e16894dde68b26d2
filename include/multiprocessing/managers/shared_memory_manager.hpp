// SharedMemoryManager: a BaseManager whose server makes shared memory
// segments for its clients and unlinks every one of them when it ends.
#pragma once

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
    static segment_table& instance() {
        static segment_table* t = new segment_table;  // never destroyed: used from exit hooks
        return *t;
    }
    /// A fresh server starts empty (a forked server inherits its parent's copy).
    void reset(std::string prefix) {
        std::lock_guard<std::mutex> g(mu_);
        prefix_ = std::move(prefix);
        names_.clear();
    }
    std::string create(std::uint64_t size) {
        std::lock_guard<std::mutex> g(mu_);
        if (prefix_.empty()) prefix_ = "psm_" + random_hex(4) + "_";
        for (;;) {  // a clash with an existing name just draws again
            std::string name = prefix_ + random_hex(4);
            try {
                // Made and recorded under one lock, so no segment exists untracked.
                shared_memory::SharedMemory::create(static_cast<std::size_t>(size), name);
                names_.insert(name);
                return name;
            } catch (const FileExistsError&) {
            }
        }
    }
    void release(const std::string& name) {
        std::lock_guard<std::mutex> g(mu_);
        if (names_.erase(name) == 0) throw ValueError("segment " + name + " is not tracked by this manager");
        ::shm_unlink(("/" + name).c_str());  // gone already (the user unlinked it) is fine
    }
    std::vector<std::string> list() const {
        std::lock_guard<std::mutex> g(mu_);
        return {names_.begin(), names_.end()};
    }
    void unlink_all() noexcept {
        std::lock_guard<std::mutex> g(mu_);
        for (auto& n : names_) ::shm_unlink(("/" + n).c_str());
        names_.clear();
    }

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
                                 double shutdown_timeout = 1.0)
        : BaseManager(std::move(address), std::move(authkey), options, shutdown_timeout) {
        register_builtin_types();
    }
    SharedMemoryManager(SharedMemoryManager&& o) noexcept
        : BaseManager(std::move(o)), prefix_(std::move(o.prefix_)), tracker_(std::move(o.tracker_)) {}
    SharedMemoryManager& operator=(SharedMemoryManager&& o) noexcept {
        if (this != &o) {
            try {
                if (owns_server()) shutdown();
            } catch (...) {
            }
            BaseManager::operator=(std::move(o));
            prefix_ = std::move(o.prefix_);
            tracker_ = std::move(o.tracker_);
        }
        return *this;
    }
    /// Shuts down a server this process started, as ~BaseManager does; a
    /// connected manager leaves the server running.
    ~SharedMemoryManager() {
        try {
            if (owns_server()) shutdown();
        } catch (...) {
        }
    }

    /// Registers the tracker typeid and the server's exit hook (done by the
    /// constructor; call it before serving from get_server() elsewhere).
    static void register_builtin_types() {
        static const bool once = [] {
            register_type<detail::SharedMemoryTracker, detail::SharedMemoryTrackerProxy>("SharedMemoryTracker");
            registry()->add_exit_hook([] { detail::segment_table::instance().unlink_all(); });
            return true;
        }();
        (void)once;
    }

    /// Python's start(initializer).
    void start(std::function<void()> initializer = {}) {
        std::string prefix = "psm_" + detail::random_hex(4) + "_";
        BaseManager::start([prefix, init = std::move(initializer)] {
            detail::segment_table::instance().reset(prefix);
            if (init) init();
        });
        prefix_ = prefix;
        tracker_ = create<detail::SharedMemoryTrackerProxy>();
    }

    /// Python's connect(): use the segments of a running SharedMemoryManager.
    void connect() {
        BaseManager::connect();
        tracker_ = create<detail::SharedMemoryTrackerProxy>();
    }

    /// Python's shutdown(): the server unlinks every segment it made, then
    /// exits.  If it had died first, the owner unlinks them itself.
    void shutdown() {
        if (state() != State::started) return;
        if (pid() > 0 && !owns_server()) return;  // a forked copy: the server is not ours to stop
        tracker_ = {};
        BaseManager::shutdown();
        if (pid() > 0) detail::unlink_prefixed(prefix_);
    }

    /// Python's get_server(): serve SharedMemoryManager from this process.
    Server get_server() {
        detail::segment_table::instance().reset("psm_" + detail::random_hex(4) + "_");
        return BaseManager::get_server();
    }

    /// Python's smm.SharedMemory(size): a new segment of `size` bytes
    /// (zero-filled), mapped here and unlinked when the manager shuts down.
    shared_memory::SharedMemory SharedMemory(std::size_t size) {
        auto& t = tracker();
        if (size == 0) throw ValueError("'size' must be a positive number different from zero");
        std::string name = t.create(size);
        try {
            return shared_memory::SharedMemory::attach(name);
        } catch (...) {
            release_quietly(name);
            throw;
        }
    }

    /// Python's smm.ShareableList(sequence): a new list in a segment that
    /// is unlinked when the manager shuts down.
    shared_memory::ShareableList ShareableList(const std::vector<Item>& sequence) {
        auto& t = tracker();
        std::string name;
        try {
            return shared_memory::ShareableList::in_block(sequence, [&](std::size_t bytes) {
                name = t.create(bytes);
                return shared_memory::SharedMemory::attach(name);
            });
        } catch (...) {
            if (!name.empty()) release_quietly(name);
            throw;
        }
    }
    shared_memory::ShareableList ShareableList(std::initializer_list<Item> sequence) {
        return ShareableList(std::vector<Item>(sequence));
    }

    /// Names of the segments the server tracks (Python's list_segments).
    std::vector<std::string> list_segments() { return tracker().list_segments(); }
    /// Unlinks one tracked segment now (Python's release_segment);
    /// ValueError if the server does not track it.
    void release_segment(const std::string& name) { tracker().release_segment(name); }

private:
    detail::SharedMemoryTrackerProxy& tracker() {
        if (state() != State::started || !tracker_) throw ValueError("SharedMemoryManager is not started");
        return tracker_;
    }
    void release_quietly(const std::string& name) noexcept {
        try {
            tracker_.release_segment(name);
        } catch (...) {
        }
    }

    std::string prefix_;  // "psm_<8 hex>_": every segment this manager's server makes
    detail::SharedMemoryTrackerProxy tracker_;
};

}  // namespace multiprocessing::managers
