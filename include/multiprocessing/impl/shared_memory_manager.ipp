// Out-of-line members of the classes in <multiprocessing/managers/shared_memory_manager.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/managers/shared_memory_manager.hpp"

namespace multiprocessing::managers {

MULTIPROCESSING_DECL SharedMemoryManager::SharedMemoryManager(Address address , AuthKey authkey , ServerOptions options ,
                                 double shutdown_timeout) : BaseManager(std::move(address), std::move(authkey), options, shutdown_timeout) {
    register_builtin_types();
}

MULTIPROCESSING_DECL SharedMemoryManager& SharedMemoryManager::operator=(SharedMemoryManager&& o) noexcept {
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

MULTIPROCESSING_DECL SharedMemoryManager::~SharedMemoryManager() {
    try {
        if (owns_server()) shutdown();
    } catch (...) {
    }
}

MULTIPROCESSING_DECL void SharedMemoryManager::register_builtin_types() {
    static const bool once = [] {
        register_type<detail::SharedMemoryTracker, detail::SharedMemoryTrackerProxy>("SharedMemoryTracker");
        registry()->add_exit_hook([] { detail::segment_table::instance().unlink_all(); });
        return true;
    }();
    (void)once;
}

MULTIPROCESSING_DECL void SharedMemoryManager::start(std::function<void()> initializer) {
    std::string prefix = "psm_" + detail::random_hex(4) + "_";
    BaseManager::start([prefix, init = std::move(initializer)] {
        detail::segment_table::instance().reset(prefix);
        if (init) init();
    });
    prefix_ = prefix;
    tracker_ = create<detail::SharedMemoryTrackerProxy>();
}

MULTIPROCESSING_DECL void SharedMemoryManager::connect() {
    BaseManager::connect();
    tracker_ = create<detail::SharedMemoryTrackerProxy>();
}

MULTIPROCESSING_DECL void SharedMemoryManager::shutdown() {
    if (state() != State::started) return;
    if (pid() > 0 && !owns_server()) return;  // a forked copy: the server is not ours to stop
    tracker_ = {};
    BaseManager::shutdown();
    if (pid() > 0) detail::unlink_prefixed(prefix_);
}

MULTIPROCESSING_DECL Server SharedMemoryManager::get_server() {
    detail::segment_table::instance().reset("psm_" + detail::random_hex(4) + "_");
    return BaseManager::get_server();
}

MULTIPROCESSING_DECL shared_memory::SharedMemory SharedMemoryManager::SharedMemory(std::size_t size) {
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

MULTIPROCESSING_DECL shared_memory::ShareableList SharedMemoryManager::ShareableList(const std::vector<Item>& sequence) {
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

MULTIPROCESSING_DECL shared_memory::ShareableList SharedMemoryManager::ShareableList(std::initializer_list<Item> sequence) {
    return ShareableList(std::vector<Item>(sequence));
}

MULTIPROCESSING_DECL detail::SharedMemoryTrackerProxy& SharedMemoryManager::tracker() {
    if (state() != State::started || !tracker_) throw ValueError("SharedMemoryManager is not started");
    return tracker_;
}

MULTIPROCESSING_DECL void SharedMemoryManager::release_quietly(const std::string& name) noexcept {
    try {
        tracker_.release_segment(name);
    } catch (...) {
    }
}

}  // namespace multiprocessing::managers

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL segment_table& segment_table::instance() {
    static segment_table* t = new segment_table;  // never destroyed: used from exit hooks
    return *t;
}

MULTIPROCESSING_DECL void segment_table::reset(std::string prefix) {
    std::lock_guard<std::mutex> g(mu_);
    prefix_ = std::move(prefix);
    names_.clear();
}

MULTIPROCESSING_DECL std::string segment_table::create(std::uint64_t size) {
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

MULTIPROCESSING_DECL void segment_table::release(const std::string& name) {
    std::lock_guard<std::mutex> g(mu_);
    if (names_.erase(name) == 0) throw ValueError("segment " + name + " is not tracked by this manager");
    ::shm_unlink(("/" + name).c_str());  // gone already (the user unlinked it) is fine
}

MULTIPROCESSING_DECL std::vector<std::string> segment_table::list() const {
    std::lock_guard<std::mutex> g(mu_);
    return {names_.begin(), names_.end()};
}

MULTIPROCESSING_DECL void segment_table::unlink_all() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& n : names_) ::shm_unlink(("/" + n).c_str());
    names_.clear();
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers {

MULTIPROCESSING_DECL SharedMemoryManager::SharedMemoryManager(SharedMemoryManager&& o) noexcept : BaseManager(std::move(o)), prefix_(std::move(o.prefix_)), tracker_(std::move(o.tracker_)) {}

MULTIPROCESSING_DECL std::vector<std::string> SharedMemoryManager::list_segments() { return tracker().list_segments(); }

MULTIPROCESSING_DECL void SharedMemoryManager::release_segment(const std::string& name) { tracker().release_segment(name); }

}  // namespace multiprocessing::managers
