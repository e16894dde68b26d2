// Out-of-line members of the classes in <multiprocessing/detail/registry.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/registry.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL object_lock::object_lock(std::mutex* mu) {
    if (!mu) return;
    auto& h = held();
    if (std::find(h.begin(), h.end(), mu) != h.end()) return;
    if (h.empty()) mu->lock();
    else acquire_nested(mu, h);
    mu_ = mu;
    h.push_back(mu);
}

MULTIPROCESSING_DECL object_lock::~object_lock() {
    if (!mu_) return;
    auto& h = held();
    h.erase(std::find(h.begin(), h.end(), mu_));
    mu_->unlock();
}

MULTIPROCESSING_DECL std::vector<std::mutex*>& object_lock::held() {
    static thread_local std::vector<std::mutex*> h;
    return h;
}

MULTIPROCESSING_DECL auto object_lock::graph() -> wait_graph& {
    static wait_graph* g = new wait_graph;  // leaked: server threads may outlive statics
    return *g;
}

MULTIPROCESSING_DECL bool object_lock::holds(const std::vector<std::mutex*>& h, const std::mutex* m) {
    return std::find(h.begin(), h.end(), m) != h.end();
}

MULTIPROCESSING_DECL bool object_lock::closes_cycle(const wait_graph& g, const std::vector<std::mutex*>& mine, std::mutex* wants) {
    for (std::size_t step = 0; step <= g.waiting.size(); ++step) {
        const waiter* holder = nullptr;
        for (auto& w : g.waiting)
            if (w.held != &mine && holds(*w.held, wants)) holder = &w;
        if (!holder) return false;
        wants = holder->wants;
        if (holds(mine, wants)) return true;
    }
    return false;
}

MULTIPROCESSING_DECL void object_lock::acquire_nested(std::mutex* mu, const std::vector<std::mutex*>& mine) {
    if (mu->try_lock()) return;
    auto& g = graph();
    {
        std::lock_guard<std::mutex> lk(g.mu);
        if (closes_cycle(g, mine, mu))
            throw std::runtime_error(
                "deadlock: a call back into a shared object waits for a call that waits for this one");
        g.waiting.push_back({&mine, mu});
    }
    struct leave {
        wait_graph& g;
        const std::vector<std::mutex*>* mine;
        ~leave() {
            std::lock_guard<std::mutex> lk(g.mu);
            for (auto it = g.waiting.begin(); it != g.waiting.end(); ++it)
                if (it->held == mine) {
                    g.waiting.erase(it);
                    break;
                }
        }
    } on_exit{g, &mine};
    // Polled, not blocked on: only calls back that meet a busy object
    // get here.
    for (int us = 10; !mu->try_lock(); us = std::min(us * 2, 1000))
        std::this_thread::sleep_for(std::chrono::microseconds(us));
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL void registry::add(std::shared_ptr<type_entry> e) {
    std::lock_guard<std::mutex> g(mu_);
    typeid_by_proxy_.emplace(e->proxy, e->typeid_);
    auto r = by_referent_.emplace(e->referent, e);
    if (!r.second && r.first->second->typeid_ == e->typeid_) r.first->second = e;  // registered again
    by_typeid_[e->typeid_] = std::move(e);
}

MULTIPROCESSING_DECL std::shared_ptr<const type_entry> registry::find(const std::string& typeid_) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_typeid_.find(typeid_);
    return it == by_typeid_.end() ? nullptr : it->second;
}

MULTIPROCESSING_DECL std::string registry::typeid_for_proxy(std::type_index t) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = typeid_by_proxy_.find(t);
    return it == typeid_by_proxy_.end() ? std::string() : it->second;
}

MULTIPROCESSING_DECL std::shared_ptr<const type_entry> registry::find_referent(std::type_index t) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_referent_.find(t);
    return it == by_referent_.end() ? nullptr : it->second;
}

MULTIPROCESSING_DECL std::vector<std::string> registry::typeids() const {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::string> v;
    for (auto& kv : by_typeid_) v.push_back(kv.first);
    return v;
}

MULTIPROCESSING_DECL void registry::add_python_alias(const std::string& name, python_alias a) {
    std::lock_guard<std::mutex> g(mu_);
    aliases_[name] = std::move(a);
}

MULTIPROCESSING_DECL auto registry::find_python_alias(const std::string& name) const -> std::optional<python_alias> {
    std::lock_guard<std::mutex> g(mu_);
    auto it = aliases_.find(name);
    if (it == aliases_.end()) return std::nullopt;
    return it->second;
}

MULTIPROCESSING_DECL void registry::add_exit_hook(std::function<void()> f) {
    std::lock_guard<std::mutex> g(mu_);
    exit_hooks_.push_back(std::move(f));
}

MULTIPROCESSING_DECL void registry::run_exit_hooks() const {
    std::vector<std::function<void()>> hooks;
    {
        std::lock_guard<std::mutex> g(mu_);
        hooks = exit_hooks_;
    }
    for (auto& h : hooks) h();
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL const method_entry* type_entry::find(std::string_view name, std::uint64_t sig) const {
    auto range = by_name.equal_range(name);
    for (auto it = range.first; it != range.second; ++it)
        if (it->second->sig == sig) return it->second;
    return range.first == range.second ? nullptr : range.first->second;
}

MULTIPROCESSING_DECL std::vector<std::string> type_entry::python_exposed() const {
    std::vector<std::string> v;
    for (auto& m : methods)
        if (std::find(v.begin(), v.end(), m.name) == v.end()) v.emplace_back(m.name);
    for (auto& kv : py_methods)
        if (std::find(v.begin(), v.end(), kv.first) == v.end()) v.push_back(kv.first);
    return v;
}

MULTIPROCESSING_DECL std::string type_entry::exposed_list() const {
    std::string s = "(";
    std::size_t n = 0;
    for (std::size_t i = 0; i < methods.size(); ++i) {
        bool seen = false;
        for (std::size_t j = 0; j < i; ++j) seen = seen || methods[j].name == methods[i].name;
        if (seen) continue;
        s += (n++ ? ", '" : "'") + std::string(methods[i].name) + "'";
    }
    if (n == 1) s += ",";
    return s + ")";
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL constructor_table& constructor_table::instance() {
    static constructor_table* t = new constructor_table;
    return *t;
}

MULTIPROCESSING_DECL void constructor_table::add(std::uint64_t sig, std::type_index referent, std::string text, factory_fn f,
             pk::args_fn py_args) {
    std::lock_guard<std::mutex> g(mu_);
    table_.emplace(sig, entry{referent, std::move(text), std::move(f), py_args});
}

MULTIPROCESSING_DECL auto constructor_table::find(std::uint64_t sig) -> const entry* {
    std::lock_guard<std::mutex> g(mu_);
    auto it = table_.find(sig);
    return it == table_.end() ? nullptr : &it->second;
}

MULTIPROCESSING_DECL auto constructor_table::python_constructors(std::type_index referent) -> std::vector<const entry*> {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<const entry*> v;
    for (auto& kv : table_)
        if (kv.second.referent == referent && kv.second.py_args) v.push_back(&kv.second);
    return v;
}

MULTIPROCESSING_DECL std::vector<std::string> constructor_table::signatures_for(std::type_index referent) {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::string> v;
    for (auto& kv : table_)
        if (kv.second.referent == referent) v.push_back(kv.second.text);
    return v;
}

}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {



}  // namespace multiprocessing::managers::detail

namespace multiprocessing::managers::detail {



}  // namespace multiprocessing::managers::detail
