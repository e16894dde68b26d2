// SyncManager's shared containers: dict, list, set, Value, Array.
//
// Each is a referent class living in the server plus a Proxy
// specialization with Python's method names where C++ allows and C++
// spellings (operator[], size(), contains(), erase(), iteration) where its
// idiom is stronger.  Every method is one atomic call in the server; that
// includes `d[k] += v`, which in Python is two calls that can lose updates
// (gh-137233).  Iteration is live, as in CPython: one call per step.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/managers/base.hpp"
#include "multiprocessing/detail/py_repr.hpp"
#include "multiprocessing/detail/registry.hpp"
#include "multiprocessing/detail/serialization/std.hpp"
#include "multiprocessing/detail/timsort.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/object.hpp"

#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <new>
#include <vector>

namespace multiprocessing::managers {

namespace detail {

/// Python's l * n: empty for n <= 0 or an empty l (at once, whatever n);
/// std::bad_alloc (MemoryError) for a size no vector can have, before
/// anything is copied.
template <class T>
std::vector<T> repeated(const std::vector<T>& v, long long n) {
    std::vector<T> out;
    if (n <= 0 || v.empty()) return out;
    if (static_cast<unsigned long long>(n) > out.max_size() / v.size()) throw std::bad_alloc();
    out.reserve(v.size() * static_cast<std::size_t>(n));
    for (long long k = 0; k < n; ++k) out.insert(out.end(), v.begin(), v.end());
    return out;
}

template <class T, class = void>
struct has_plus_assign : std::false_type {};
template <class T>
struct has_plus_assign<T, std::void_t<decltype(std::declval<T&>() += std::declval<const T&>())>> : std::true_type {};

template <class T, class = void>
struct has_less : std::false_type {};
template <class T>
struct has_less<T, std::void_t<decltype(std::declval<const T&>() < std::declval<const T&>())>> : std::true_type {};

template <class T, class = void>
struct is_hashable : std::false_type {};
template <class T>
struct is_hashable<T, std::void_t<decltype(std::hash<T>{}(std::declval<const T&>()))>> : std::true_type {};

/// Python's index rules: negative counts from the end; out of range throws.
inline std::size_t py_index(long long i, std::size_t n, const char* what) {
    long long j = i < 0 ? i + static_cast<long long>(n) : i;
    if (j < 0 || j >= static_cast<long long>(n)) throw IndexError(what);
    return static_cast<std::size_t>(j);
}

/// Where a live iteration over a Dict or Set stands: the key last yielded
/// and its position, the size seen at the start and the keys still
/// expected (CPython's di_used and len).
template <class K>
struct iter_state {
    std::optional<K> last;
    std::uint64_t pos = 0, used = 0, remaining = 0;
    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & last & pos & used & remaining; }
};

/// What `*it++` on a live iterator yields: the element it stepped past.
template <class T>
struct stepped_value {
    T value;
    const T& operator*() const { return value; }
};

/// Python's iter(list_proxy): asks for l[i] at each step, so every step sees
/// the list as it is then (CPython's sequence iterator over a ListProxy).
/// Nothing is fetched until the element is looked at; once past the end it
/// stays ended.  Copies share one position, as references to one Python
/// iterator do, and the proxy they hold keeps the list alive.
template <class P, class T>
class index_iterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    index_iterator() = default;
    explicit index_iterator(P p) : s_(std::make_shared<state>(std::move(p))) {}

    reference operator*() const {
        if (at_end()) throw StopIteration();
        return *s_->cur;
    }
    pointer operator->() const { return &**this; }
    index_iterator& operator++() {
        if (s_ && !s_->ended) {
            ++s_->i;
            s_->cur.reset();
        }
        return *this;
    }
    stepped_value<T> operator++(int) {
        stepped_value<T> old{**this};
        ++*this;
        return old;
    }
    friend bool operator==(const index_iterator& a, const index_iterator& b) {
        if (a.at_end() || b.at_end()) return a.at_end() == b.at_end();
        return a.s_ == b.s_;
    }
    friend bool operator!=(const index_iterator& a, const index_iterator& b) { return !(a == b); }

private:
    struct state {
        explicit state(P q) : p(std::move(q)) {}
        P p;
        std::size_t i = 0;
        std::optional<T> cur;
        bool ended = false;
    };
    bool at_end() const {
        if (!s_) return true;
        if (!s_->ended && !s_->cur) {
            s_->cur = s_->p._iter_item(s_->i);
            if (!s_->cur) s_->ended = true;
        }
        return s_->ended;
    }
    std::shared_ptr<state> s_;
};

/// Python's iter(dict_proxy) (and a SetProxy's): one call per step to the
/// server, which yields the next key in insertion order or raises
/// RuntimeError when the size changed since begin(), as CPython's dict
/// iterator does.  That error repeats on every later step (CPython makes it
/// sticky too); "keys changed during iteration" ends the iteration.  Copies
/// share one position.
template <class P, class K>
class key_iterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = K;
    using difference_type = std::ptrdiff_t;
    using pointer = const K*;
    using reference = const K&;

    key_iterator() = default;
    key_iterator(P p, std::size_t size) : s_(std::make_shared<state>(std::move(p))) {
        s_->st.used = s_->st.remaining = size;
    }

    reference operator*() const {
        if (at_end()) throw StopIteration();
        return *s_->cur;
    }
    pointer operator->() const { return &**this; }
    key_iterator& operator++() {
        if (!at_end()) s_->cur.reset();  // a step takes a key, looked at or not
        return *this;
    }
    stepped_value<K> operator++(int) {
        stepped_value<K> old{**this};
        ++*this;
        return old;
    }
    friend bool operator==(const key_iterator& a, const key_iterator& b) {
        if (a.at_end() || b.at_end()) return a.at_end() == b.at_end();
        return a.s_ == b.s_;
    }
    friend bool operator!=(const key_iterator& a, const key_iterator& b) { return !(a == b); }

private:
    struct state {
        explicit state(P q) : p(std::move(q)) {}
        P p;
        iter_state<K> st;
        std::optional<K> cur;
        std::string sticky;
        bool ended = false;
    };
    bool at_end() const {
        if (!s_) return true;
        if (!s_->ended && !s_->cur) fetch(*s_);
        return s_->ended;
    }
    static void fetch(state& s) {
        if (!s.sticky.empty()) throw std::runtime_error(s.sticky);
        std::optional<std::pair<K, std::uint64_t>> r;
        try {
            r = s.p._iter_step(s.st);
        } catch (const std::runtime_error& e) {
            if (typeid(e) != typeid(std::runtime_error)) throw;
            std::string m = e.what();
            if (m.find("changed size") != std::string::npos) s.sticky = m;
            else s.ended = true;
            throw;
        }
        if (!r) {
            s.ended = true;
            return;
        }
        s.cur = std::move(r->first);
        s.st.last = s.cur;
        s.st.pos = r->second + 1;
        s.st.remaining -= 1;
    }
    std::shared_ptr<state> s_;
};

}  // namespace detail

/// The referent of SyncManager::dict<K, V>(): keeps insertion order like
/// Python's dict.  K needs std::hash (or operator< if it has none).
///
/// As in CPython, a key is found by the entry holding that very key object
/// first and by == after, so a key not equal to itself (nan) is still found
/// by its own entry (popitem, setdefault); every lookup hashes the key, so
/// an unhashable key raises TypeError even in an empty dict; and a method
/// that raises leaves the dict as it was (update stops at the failing pair,
/// as CPython's does).
template <class K, class V>
class Dict {
    // Each entry keeps its position: CPython's index in the entries array,
    // which is what a live iterator walks by.
    struct entry : std::pair<K, V> {
        std::uint64_t seq;
    };
    using list_t = std::list<entry>;
    using node_t = typename list_t::iterator;
    // The index points at the keys stored in items_ (stable list nodes).
    struct key_hash {
        std::size_t operator()(const K* k) const { return std::hash<K>{}(*k); }
    };
    struct key_eq {
        bool operator()(const K* a, const K* b) const { return a == b || *a == *b; }
    };
    struct key_less {
        bool operator()(const K* a, const K* b) const { return *a < *b; }
    };
    using index_t = std::conditional_t<detail::is_hashable<K>::value,
                                       std::unordered_map<const K*, node_t, key_hash, key_eq>,
                                       std::map<const K*, node_t, key_less>>;

public:
    using key_type = K;
    using mapped_type = V;

    Dict() = default;
    Dict(const Dict& o) { for (auto& kv : o.items_) insert_new(kv.first, kv.second); }
    Dict& operator=(const Dict& o) {
        if (this != &o) {
            Dict copy(o);
            swap(copy);
        }
        return *this;
    }
    // Moving a std::list keeps its nodes, so the index stays valid.
    Dict(Dict&& o) noexcept : items_(std::move(o.items_)), index_(std::move(o.index_)), next_seq_(o.next_seq_) {
        o.clear();
    }
    Dict& operator=(Dict&& o) noexcept {
        if (this != &o) {
            clear();
            swap(o);
        }
        return *this;
    }
    void swap(Dict& o) noexcept {
        items_.swap(o.items_);
        index_.swap(o.index_);
        std::swap(next_seq_, o.next_seq_);
    }
    explicit Dict(const std::vector<std::pair<K, V>>& items) { update(items); }

    V getitem(const K& k) const { return find(k)->second; }
    void setitem(const K& k, const V& v) {
        auto it = lookup(k);
        if (it != items_.end()) it->second = v;
        else insert_new(k, v);
    }
    void delitem(const K& k) { erase_node(find(k)); }
    bool contains(const K& k) const { return lookup(k) != items_.end(); }
    std::size_t len() const { return items_.size(); }
    std::optional<V> get(const K& k) const {
        auto it = lookup(k);
        return it == items_.end() ? std::nullopt : std::optional<V>(it->second);
    }
    V get_default(const K& k, const V& d) const {
        auto it = lookup(k);
        return it == items_.end() ? d : it->second;
    }
    // pop() on an empty dict hashes nothing, as in CPython (so d.pop([])
    // is KeyError there, TypeError once the dict has items).
    V pop(const K& k) {
        if (items_.empty()) throw KeyError(multiprocessing::detail::py_repr(k));
        auto it = find(k);
        V v = std::move(it->second);
        erase_node(it);
        return v;
    }
    V pop_default(const K& k, const V& d) {
        if (items_.empty()) return d;
        auto it = lookup(k);
        if (it == items_.end()) return d;
        V v = std::move(it->second);
        erase_node(it);
        return v;
    }
    std::pair<K, V> popitem() {
        if (items_.empty()) throw KeyError("'popitem(): dictionary is empty'");
        auto it = std::prev(items_.end());
        std::pair<K, V> kv = *it;
        erase_node(it);
        return kv;
    }
    V setdefault(const K& k, const V& d) {
        auto it = lookup(k);
        if (it != items_.end()) return it->second;
        insert_new(k, d);
        return d;
    }
    void update(const std::vector<std::pair<K, V>>& kvs) {
        for (auto& kv : kvs) setitem(kv.first, kv.second);
    }
    // A cleared dict starts its positions again, as CPython's does.
    void clear() {
        index_.clear();
        items_.clear();
        next_seq_ = 0;
    }
    /// One step of Python's iter(d): the next key after st and its position,
    /// or nothing at the end.  RuntimeError as CPython's dict iterator.
    std::optional<std::pair<K, std::uint64_t>> iter_step(const detail::iter_state<K>& st) const {
        return step(st, "dictionary changed size during iteration", "dictionary keys changed during iteration");
    }
    /// iter_step with the messages of another iterable built on a Dict.
    std::optional<std::pair<K, std::uint64_t>> step(const detail::iter_state<K>& st, const char* size_changed,
                                                   const char* keys_changed) const {
        if (items_.size() != st.used) throw std::runtime_error(size_changed);
        node_t it = items_.end();
        // Usually the last key is still there: continue after it.  If it
        // went away, the first entry at or past the position follows.
        node_t prev = st.last ? lookup(*st.last) : items_.end();
        if (prev != items_.end() && prev->seq + 1 == st.pos) it = std::next(prev);
        else it = std::find_if(items_.begin(), items_.end(), [&](const entry& e) { return e.seq >= st.pos; });
        if (it == items_.end()) return std::nullopt;
        if (st.remaining == 0 && keys_changed) throw std::runtime_error(keys_changed);
        return std::make_pair(it->first, it->seq);
    }
    std::vector<K> keys() const {
        std::vector<K> v;
        for (auto& kv : items_) v.push_back(kv.first);
        return v;
    }
    std::vector<V> values() const {
        std::vector<V> v;
        for (auto& kv : items_) v.push_back(kv.second);
        return v;
    }
    std::vector<std::pair<K, V>> items() const { return {items_.begin(), items_.end()}; }
    std::vector<K> reversed() const {
        auto k = keys();
        std::reverse(k.begin(), k.end());
        return k;
    }
    Dict copy() const { return *this; }
    /// d[k] += v in one atomic step (KeyError if k is missing, as in Python).
    V iadd(const K& k, const V& delta) {
        auto& v = find(k)->second;
        if constexpr (detail::has_plus_assign<V>::value) v += delta;
        else throw TypeError("unsupported operand type(s) for +=");
        return v;
    }
    std::string repr() const {
        std::string s = "{";
        bool first = true;
        for (auto& kv : items_) {
            if (!first) s += ", ";
            first = false;
            s += multiprocessing::detail::py_repr(kv.first) + ": " + multiprocessing::detail::py_repr(kv.second);
        }
        return s + "}";
    }
    friend std::ostream& operator<<(std::ostream& os, const Dict& d) { return os << d.repr(); }
    friend bool operator==(const Dict& a, const Dict& b) { return a.items() == b.items(); }

    auto begin() const { return items_.begin(); }
    auto end() const { return items_.end(); }

    template <class Ar>
    void save(Ar& ar, unsigned) const {
        auto v = items();
        ar << v;
    }
    template <class Ar>
    void load(Ar& ar, unsigned) {
        std::vector<std::pair<K, V>> v;
        ar >> v;
        clear();
        update(v);
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

private:
    /// The entry for k, or items_.end().  Hashes k first: the standard
    /// containers skip hashing when empty, CPython never does.
    node_t lookup(const K& k) const {
        if constexpr (detail::is_hashable<K>::value) (void)std::hash<K>{}(k);
        auto it = index_.find(&k);
        return it == index_.end() ? items_.end() : it->second;
    }
    node_t find(const K& k) const {
        auto it = lookup(k);
        if (it == items_.end()) throw KeyError(multiprocessing::detail::py_repr(k));
        return it;
    }
    /// Appends a key known to be absent; on failure nothing is left behind.
    void insert_new(const K& k, const V& v) {
        auto it = items_.insert(items_.end(), entry{{k, v}, next_seq_});
        ++next_seq_;
        try {
            index_.emplace(&it->first, it);
        } catch (...) {
            items_.erase(it);
            throw;
        }
    }
    void erase_node(node_t it) {
        index_.erase(&it->first);  // found by identity: works for nan too
        items_.erase(it);
    }
    template <class, class> friend struct detail::gc_traverse;
    mutable list_t items_;
    index_t index_;
    std::uint64_t next_seq_ = 0;
};

/// The referent of SyncManager::list<T>(): Python's list over std::vector.
template <class T>
class List {
public:
    using value_type = T;
    List() = default;
    explicit List(std::vector<T> v) : v_(std::move(v)) {}

    T getitem(long long i) const { return v_[detail::py_index(i, v_.size(), "list index out of range")]; }
    void setitem(long long i, const T& x) { v_[detail::py_index(i, v_.size(), "list assignment index out of range")] = x; }
    void delitem(long long i) {
        v_.erase(v_.begin() + static_cast<long>(detail::py_index(i, v_.size(), "list assignment index out of range")));
    }
    std::size_t len() const { return v_.size(); }
    bool contains(const T& x) const { return std::find(v_.begin(), v_.end(), x) != v_.end(); }
    void append(const T& x) { v_.push_back(x); }
    void extend(const std::vector<T>& xs) { v_.insert(v_.end(), xs.begin(), xs.end()); }
    void insert(long long i, const T& x) {
        long long n = static_cast<long long>(v_.size());
        long long j = i < 0 ? std::max(0LL, i + n) : std::min(i, n);
        v_.insert(v_.begin() + j, x);
    }
    T pop(long long i) {
        if (v_.empty()) throw IndexError("pop from empty list");
        std::size_t j = detail::py_index(i, v_.size(), "pop index out of range");
        T x = v_[j];
        v_.erase(v_.begin() + static_cast<long>(j));
        return x;
    }
    void remove(const T& x) {
        auto it = std::find(v_.begin(), v_.end(), x);
        if (it == v_.end()) throw ValueError("list.remove(x): x not in list");
        v_.erase(it);
    }
    std::size_t index(const T& x) const {
        auto it = std::find(v_.begin(), v_.end(), x);
        if (it == v_.end()) throw ValueError(multiprocessing::detail::py_repr(x) + " is not in list");
        return static_cast<std::size_t>(it - v_.begin());
    }
    std::size_t count(const T& x) const { return static_cast<std::size_t>(std::count(v_.begin(), v_.end(), x)); }
    void reverse() { std::reverse(v_.begin(), v_.end()); }
    void sort() {
        // CPython's own algorithm, so that even an inconsistent order (nan)
        // or a TypeError part way sorts exactly as CPython does.
        if constexpr (detail::has_less<T>::value)
            multiprocessing::detail::timsort(v_, [](const T& a, const T& b) { return a < b; });
        else throw TypeError("'<' not supported between these elements");
    }
    void clear() { v_.clear(); }
    std::vector<T> copy() const { return v_; }
    /// l[i] for a live iteration: nothing past the end, where Python's
    /// iterator gets IndexError.
    std::optional<T> iter_item(std::size_t i) const { return i < v_.size() ? std::optional<T>(v_[i]) : std::nullopt; }
    /// Python's l[start:stop] with clamping and negative bounds.
    std::vector<T> slice(long long start, long long stop) const {
        long long n = static_cast<long long>(v_.size());
        auto clamp = [n](long long i) { return i < 0 ? std::max(0LL, i + n) : std::min(i, n); };
        long long a = clamp(start), b = clamp(stop);
        return a < b ? std::vector<T>(v_.begin() + a, v_.begin() + b) : std::vector<T>();
    }
    void imul(long long times) { v_ = detail::repeated(v_, times); }
    std::string repr() const { return multiprocessing::detail::py_repr(v_); }
    friend std::ostream& operator<<(std::ostream& os, const List& l) { return os << l.repr(); }

    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & v_; }

private:
    template <class, class> friend struct detail::gc_traverse;
    std::vector<T> v_;
};

namespace detail {

template <class T, class = void>
struct has_equal : std::false_type {};
template <class T>
struct has_equal<T, std::void_t<decltype(std::declval<const T&>() == std::declval<const T&>())>> : std::true_type {};

template <class T> struct is_tuple_like : std::false_type {};
template <class A, class B> struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class... A> struct is_tuple_like<std::tuple<A...>> : std::true_type {};

/// CPython's hash of x where CPython's is deterministic (None, bool, int,
/// float, tuples of those, via object and the C++ arithmetic types, pairs
/// and tuples), so a set orders such elements as CPython does.  str and
/// bytes hash by std::hash (CPython randomizes them); a type with only
/// operator< hashes to 0 (every set operation is then linear).
template <class T>
std::int64_t py_hash_of(const T& x) {
    using multiprocessing::detail::py_hash_float;
    using multiprocessing::detail::py_hash_int;
    if constexpr (std::is_same_v<T, bool>) return x ? 1 : 0;
    else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
        constexpr std::uint64_t P = (std::uint64_t{1} << 61) - 1;
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(x) % P);
    } else if constexpr (std::is_integral_v<T>) return py_hash_int(static_cast<std::int64_t>(x));
    else if constexpr (std::is_floating_point_v<T>) return py_hash_float(static_cast<double>(x));
    else if constexpr (std::is_same_v<T, object>) return multiprocessing::detail::py_hash(x);
    else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, multiprocessing::bytes>)
        return multiprocessing::detail::py_hash(object(x));
    else if constexpr (is_tuple_like<T>::value) {
        // CPython's tuple hash (xxHash-like) over the items' hashes.
        constexpr std::uint64_t p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL,
                                p5 = 2870177450012600261ULL;
        std::uint64_t acc = p5;
        std::apply([&](const auto&... item) {
            ((acc += static_cast<std::uint64_t>(py_hash_of(item)) * p2, acc = (acc << 31) | (acc >> 33), acc *= p1), ...);
        }, x);
        acc += std::tuple_size_v<T> ^ (p5 ^ 3527539ULL);
        return acc == ~std::uint64_t{0} ? 1546275796 : static_cast<std::int64_t>(acc);
    } else if constexpr (is_hashable<T>::value) {
        auto h = static_cast<std::int64_t>(std::hash<T>{}(x));
        return h == -1 ? -2 : h;
    } else {
        (void)x;
        return 0;
    }
}

/// Marks a set made from a dict's keys (CPython presizes for them).
struct dict_keys_t {
    template <class Ar>
    void serialize(Ar&, unsigned) {}
};

template <class T>
bool py_equal(const T& a, const T& b) {
    if constexpr (has_equal<T>::value) return a == b;
    else return !(a < b) && !(b < a);
}

}  // namespace detail

/// The referent of SyncManager::set<T>() (Python 3.14's SetProxy): CPython's
/// own open-addressing table (8 slots, 9 linear probes, perturbed jumps,
/// dummies on removal, the same resize points), so iteration and repr
/// order are CPython's for elements whose hash CPython fixes (see
/// detail::py_hash_of).  A nan is found by equality only (CPython also
/// matches the very same nan object, and hashes nan by address).
template <class T>
class Set {
    struct slot {
        std::optional<T> key;  // empty: no key, hash 0; dummy: no key, hash -1
        std::int64_t hash = 0;
        bool active() const { return key.has_value(); }
        bool dummy() const { return !key && hash == -1; }
    };
    static constexpr std::size_t linear_probes = 9;

public:
    using value_type = T;
    Set() : table_(8) {}
    /// Python's set(list): the items added in order.
    explicit Set(const std::vector<T>& xs) : Set() { update(xs); }
    /// Python's set(a_set): one presized merge of the other's table.
    explicit Set(const Set& o, bool) : Set() { merge(o); }
    /// Python's set(a_dict): presized for the keys, then added in order.
    Set(const std::vector<T>& keys, detail::dict_keys_t) : Set() {
        if ((fill_ + keys.size()) * 5 >= mask() * 3) resize((used_ + keys.size()) * 2);
        for (auto& k : keys) add_entry(k, detail::py_hash_of(k));
    }

    void add(const T& x) { add_entry(x, detail::py_hash_of(x)); }
    void discard(const T& x) { discard_entry(x, detail::py_hash_of(x)); }
    /// KeyError if x is missing.
    void remove(const T& x) {
        if (!discard_entry(x, detail::py_hash_of(x))) throw KeyError(multiprocessing::detail::py_repr(x));
    }
    bool contains(const T& x) const { return lookup(x, detail::py_hash_of(x)) != npos; }
    std::size_t len() const { return used_; }
    /// Python's set.pop(): the next active slot from a moving finger.
    T pop() {
        if (!used_) throw KeyError("'pop from an empty set'");
        std::size_t i = finger_ & mask();
        while (!table_[i].active()) i = i == mask() ? 0 : i + 1;
        T k = std::move(*table_[i].key);
        make_dummy(i);
        finger_ = i + 1;
        return k;
    }
    void clear() {
        table_.assign(8, slot{});
        fill_ = used_ = 0;
    }
    /// The elements in table order (Python's iteration order).
    std::vector<T> items() const {
        std::vector<T> v;
        v.reserve(used_);
        for (auto& s : table_)
            if (s.active()) v.push_back(*s.key);
        return v;
    }
    /// One step of Python's iter(s): the next active slot at or after the
    /// position, as CPython's set iterator walks its table (no "keys
    /// changed" check there).
    std::optional<std::pair<T, std::uint64_t>> iter_step(const detail::iter_state<T>& st) const {
        if (used_ != st.used) throw std::runtime_error("Set changed size during iteration");
        for (std::size_t i = static_cast<std::size_t>(st.pos); i < table_.size(); ++i)
            if (table_[i].active()) return std::make_pair(*table_[i].key, static_cast<std::uint64_t>(i));
        return std::nullopt;
    }
    void update(const std::vector<T>& xs) { for (auto& x : xs) add(x); }
    /// Python's update(a_set) / |= a_set.
    void update_set(const Set& o) { merge(o); }
    /// As CPython's set with a sequence argument: the argument's items
    /// (the first of equal ones) that are in the set; CPython stops reading
    /// the argument once every item of the set is found.
    void intersection_update(const std::vector<T>& xs) { swap_bodies(intersection(xs)); }
    /// Python's &= a_set.
    void intersection_update_set(const Set& o) { swap_bodies(intersection_set(o)); }
    void difference_update(const std::vector<T>& xs) {
        for (auto& x : xs) discard(x);
        purge_dummies();
    }
    /// Python's -= a_set (walks the intersection when o is over 8x larger).
    void difference_update_set(const Set& o) {
        if ((o.len() >> 3) > len()) {
            Set common = intersection_set(o);
            for (auto& s : common.table_)
                if (s.active()) discard_entry(*s.key, s.hash);
        } else {
            for (auto& s : o.table_)
                if (s.active()) discard_entry(*s.key, s.hash);
        }
        purge_dummies();
    }
    void symmetric_difference_update(const std::vector<T>& xs) { symmetric_difference_update_set(Set(xs)); }
    /// Python's ^= a_set: o's elements toggled in o's table order.
    void symmetric_difference_update_set(const Set& o) {
        for (auto& s : o.table_)
            if (s.active() && !discard_entry(*s.key, s.hash)) add_entry(*s.key, s.hash);
    }
    bool issubset(const std::vector<T>& xs) const { return intersection(xs).len() == len(); }
    /// Python's <= a_set.
    bool issubset_set(const Set& o) const {
        if (len() > o.len()) return false;
        for (auto& s : table_)
            if (s.active() && o.lookup(*s.key, s.hash) == npos) return false;
        return true;
    }
    bool issuperset(const std::vector<T>& xs) const {
        for (auto& x : xs)
            if (!contains(x)) return false;
        return true;
    }
    bool isdisjoint(const std::vector<T>& xs) const {
        for (auto& x : xs)
            if (contains(x)) return false;
        return true;
    }
    /// Python's set.copy(): a merge into a new set.
    Set copy() const { return Set(*this, true); }
    /// Python's union, intersection, difference and symmetric_difference
    /// with a list: new sets, built as CPython builds them.
    Set union_(const std::vector<T>& xs) const {
        Set r = copy();
        r.update(xs);
        return r;
    }
    Set intersection(const std::vector<T>& xs) const {
        Set r;
        for (auto& x : xs) {
            auto h = detail::py_hash_of(x);
            if (lookup(x, h) == npos) continue;
            r.add_entry(x, h);
            if (r.len() >= len()) break;
        }
        return r;
    }
    Set difference(const std::vector<T>& xs) const {
        Set r = copy();
        r.difference_update(xs);
        return r;
    }
    Set symmetric_difference(const std::vector<T>& xs) const {
        Set r(xs);
        r.symmetric_difference_update_set(*this);
        return r;
    }

    /// Python's a | b, a & b, a - b, a ^ b for two sets, as CPython computes
    /// them (the order of the result depends on which side is which).
    static Set or_(const Set& a, const Set& b) {
        Set r = a.copy();
        r.merge(b);
        return r;
    }
    static Set and_(const Set& a, const Set& b) { return a.intersection_set(b); }
    static Set sub(const Set& a, const Set& b) {
        if ((a.len() >> 2) > b.len()) {
            Set r = a.copy();
            r.difference_update_set(b);
            return r;
        }
        Set r;
        for (auto& s : a.table_)
            if (s.active() && b.lookup(*s.key, s.hash) == npos) r.add_entry(*s.key, s.hash);
        return r;
    }
    static Set xor_(const Set& a, const Set& b) {
        Set r = b.copy();
        r.symmetric_difference_update_set(a);
        return r;
    }
    /// Python's <, <=, >, >= between sets (0, 1, 2, 3).
    static bool compare(const Set& a, const Set& b, int op) {
        switch (op) {
        case 0: return a.len() < b.len() && a.issubset_set(b);
        case 1: return a.issubset_set(b);
        case 2: return a.len() > b.len() && b.issubset_set(a);
        default: return b.issubset_set(a);
        }
    }
    friend bool operator==(const Set& a, const Set& b) { return a.len() == b.len() && a.issubset_set(b); }
    friend bool operator!=(const Set& a, const Set& b) { return !(a == b); }
    friend bool operator<(const Set& a, const Set& b) { return compare(a, b, 0); }
    friend bool operator<=(const Set& a, const Set& b) { return compare(a, b, 1); }
    friend bool operator>(const Set& a, const Set& b) { return compare(a, b, 2); }
    friend bool operator>=(const Set& a, const Set& b) { return compare(a, b, 3); }
    friend Set operator|(const Set& a, const Set& b) { return or_(a, b); }
    friend Set operator&(const Set& a, const Set& b) { return and_(a, b); }
    friend Set operator-(const Set& a, const Set& b) { return sub(a, b); }
    friend Set operator^(const Set& a, const Set& b) { return xor_(a, b); }

    // Server-side forms of the operators, one exposed method each.
    Set op_or(const Set& b) const { return or_(*this, b); }
    Set op_ror(const Set& a) const { return or_(a, *this); }
    Set op_and(const Set& b) const { return and_(*this, b); }
    Set op_rand(const Set& a) const { return and_(a, *this); }
    Set op_sub(const Set& b) const { return sub(*this, b); }
    Set op_rsub(const Set& a) const { return sub(a, *this); }
    Set op_xor(const Set& b) const { return xor_(*this, b); }
    Set op_rxor(const Set& a) const { return xor_(a, *this); }
    bool op_compare(const Set& b, int op) const { return compare(*this, b, op); }

    std::string repr() const {
        if (!len()) return "set()";
        auto v = items();
        return multiprocessing::detail::py_seq_repr(v.begin(), v.end(), "{", "}");
    }
    friend std::ostream& operator<<(std::ostream& os, const Set& s) { return os << s.repr(); }

    // Travels as its items in table order and is rebuilt by adding them:
    // exactly what pickling a set does.
    template <class Ar>
    void save(Ar& ar, unsigned) const {
        auto v = items();
        ar << v;
    }
    template <class Ar>
    void load(Ar& ar, unsigned) {
        std::vector<T> v;
        ar >> v;
        clear();
        finger_ = 0;
        update(v);
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t mask() const { return table_.size() - 1; }

    std::size_t lookup(const T& key, std::int64_t h) const {
        std::size_t m = mask(), i = static_cast<std::size_t>(h) & m;
        std::size_t perturb = static_cast<std::size_t>(h);
        for (;;) {
            std::size_t probes = i + linear_probes <= m ? linear_probes : 0;
            for (std::size_t j = i;; ++j) {
                const slot& s = table_[j];
                if (!s.active() && !s.dummy()) return npos;
                if (s.active() && s.hash == h && detail::py_equal(*s.key, key)) return j;
                if (probes-- == 0) break;
            }
            perturb >>= 5;
            i = (i * 5 + 1 + perturb) & m;
        }
    }
    /// CPython's set_add_entry: a new key goes to the last dummy met on
    /// its probe path, else to the empty slot ending it.
    void add_entry(const T& key, std::int64_t h) {
        std::size_t m = mask(), i = static_cast<std::size_t>(h) & m;
        std::size_t perturb = static_cast<std::size_t>(h), freeslot = npos, empty = npos;
        while (empty == npos) {
            std::size_t probes = i + linear_probes <= m ? linear_probes : 0;
            for (std::size_t j = i;; ++j) {
                const slot& s = table_[j];
                if (s.dummy()) freeslot = j;
                else if (!s.active()) {
                    empty = j;
                    break;
                } else if (s.hash == h && detail::py_equal(*s.key, key)) return;
                if (probes-- == 0) break;
            }
            perturb >>= 5;
            i = (i * 5 + 1 + perturb) & m;
        }
        if (freeslot != npos) {
            table_[freeslot].key.emplace(key);
            table_[freeslot].hash = h;
            ++used_;
            return;
        }
        table_[empty].key.emplace(key);
        table_[empty].hash = h;
        ++fill_;
        ++used_;
        if (fill_ * 5 >= m * 3) resize(used_ > 50000 ? used_ * 2 : used_ * 4);
    }
    template <class U>
    static void insert_clean(std::vector<slot>& t, U&& key, std::int64_t h) {
        std::size_t m = t.size() - 1, i = static_cast<std::size_t>(h) & m;
        std::size_t perturb = static_cast<std::size_t>(h);
        for (;;) {
            std::size_t last = i + linear_probes <= m ? i + linear_probes : i;
            for (std::size_t j = i; j <= last; ++j)
                if (!t[j].active()) {
                    t[j].key.emplace(std::forward<U>(key));
                    t[j].hash = h;
                    return;
                }
            perturb >>= 5;
            i = (i * 5 + 1 + perturb) & m;
        }
    }
    /// CPython's set_table_resize: the smallest power of 2 above minused.
    void resize(std::size_t minused) {
        std::size_t n = 8;
        while (n <= minused) n <<= 1;
        if (n == 8 && table_.size() == 8 && fill_ == used_) return;
        std::vector<slot> t(n);
        for (auto& s : table_)
            if (s.active()) insert_clean(t, std::move(*s.key), s.hash);
        table_.swap(t);
        fill_ = used_;
    }
    bool discard_entry(const T& key, std::int64_t h) {
        std::size_t j = lookup(key, h);
        if (j == npos) return false;
        make_dummy(j);
        return true;
    }
    void make_dummy(std::size_t j) {
        table_[j].key.reset();
        table_[j].hash = -1;
        --used_;
    }
    /// After difference_update: CPython rebuilds once over a quarter of
    /// the slots are dummies.
    void purge_dummies() {
        if (fill_ - used_ > mask() / 4) resize(used_ > 50000 ? used_ * 2 : used_ * 4);
    }
    /// CPython's set_merge.
    void merge(const Set& o) {
        if (&o == this || o.used_ == 0) return;
        if ((fill_ + o.used_) * 5 >= mask() * 3) resize((used_ + o.used_) * 2);
        if (fill_ == 0 && mask() == o.mask() && o.fill_ == o.used_) {
            table_ = o.table_;
            fill_ = o.fill_;
            used_ = o.used_;
            return;
        }
        if (fill_ == 0) {
            for (auto& s : o.table_)
                if (s.active()) insert_clean(table_, *s.key, s.hash);
            fill_ = used_ = o.used_;
            return;
        }
        for (auto& s : o.table_)
            if (s.active()) add_entry(*s.key, s.hash);
    }
    /// CPython's set_intersection with a set: walks the smaller one.
    Set intersection_set(const Set& o) const {
        const Set* big = this;
        const Set* small = &o;
        if (o.len() > len()) std::swap(big, small);
        Set r;
        for (auto& s : small->table_)
            if (s.active() && big->lookup(*s.key, s.hash) != npos) r.add_entry(*s.key, s.hash);
        return r;
    }
    /// CPython's set_swap_bodies: the table moves, the pop finger stays.
    void swap_bodies(Set&& o) {
        table_.swap(o.table_);
        fill_ = o.fill_;
        used_ = o.used_;
    }

    template <class, class> friend struct detail::gc_traverse;
    std::vector<slot> table_;
    std::size_t fill_ = 0;  // active + dummy slots
    std::size_t used_ = 0;  // active slots
    std::size_t finger_ = 0;
};

namespace detail {
template <class T>
std::string default_typecode() {
    if constexpr (std::is_same_v<T, char>) return "c";
    else if constexpr (std::is_same_v<T, signed char>) return "b";
    else if constexpr (std::is_same_v<T, unsigned char>) return "B";
    else if constexpr (std::is_same_v<T, short>) return "h";
    else if constexpr (std::is_same_v<T, unsigned short>) return "H";
    else if constexpr (std::is_same_v<T, int>) return "i";
    else if constexpr (std::is_same_v<T, unsigned>) return "I";
    else if constexpr (std::is_same_v<T, long>) return "l";
    else if constexpr (std::is_same_v<T, unsigned long>) return "L";
    else if constexpr (std::is_same_v<T, long long>) return "q";
    else if constexpr (std::is_same_v<T, unsigned long long>) return "Q";
    else if constexpr (std::is_same_v<T, float>) return "f";
    else if constexpr (std::is_same_v<T, double>) return "d";
    else return "O";
}
}  // namespace detail

/// The referent of SyncManager::Value(): one value and its typecode.
template <class T>
class ValueRef {
public:
    ValueRef() : typecode_(detail::default_typecode<T>()) {}
    ValueRef(std::string typecode, T v) : typecode_(std::move(typecode)), v_(std::move(v)) {}
    explicit ValueRef(T v) : typecode_(detail::default_typecode<T>()), v_(std::move(v)) {}
    T get() const { return v_; }
    void set(const T& v) { v_ = v; }
    std::string repr() const { return "Value(" + multiprocessing::detail::py_str_repr(typecode_) + ", " + multiprocessing::detail::py_repr(v_) + ")"; }
    friend std::ostream& operator<<(std::ostream& os, const ValueRef& v) { return os << v.repr(); }
    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & typecode_ & v_; }

private:
    template <class, class> friend struct detail::gc_traverse;
    std::string typecode_;
    T v_{};
};

/// The referent of SyncManager::Array(): a fixed-length typed array.
template <class T>
class ArrayRef {
public:
    ArrayRef() : typecode_(detail::default_typecode<T>()) {}
    ArrayRef(std::string typecode, std::vector<T> v) : typecode_(std::move(typecode)), v_(std::move(v)) {}
    explicit ArrayRef(std::vector<T> v) : typecode_(detail::default_typecode<T>()), v_(std::move(v)) {}
    T getitem(long long i) const { return v_[detail::py_index(i, v_.size(), "array index out of range")]; }
    void setitem(long long i, const T& x) { v_[detail::py_index(i, v_.size(), "array assignment index out of range")] = x; }
    std::size_t len() const { return v_.size(); }
    std::vector<T> copy() const { return v_; }
    /// a[i] for a live iteration: nothing past the end.
    std::optional<T> iter_item(std::size_t i) const { return i < v_.size() ? std::optional<T>(v_[i]) : std::nullopt; }
    std::string repr() const {
        return "array(" + multiprocessing::detail::py_str_repr(typecode_) + ", " + multiprocessing::detail::py_repr(v_) + ")";
    }
    friend std::ostream& operator<<(std::ostream& os, const ArrayRef& a) { return os << a.repr(); }
    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & typecode_ & v_; }

private:
    template <class, class> friend struct detail::gc_traverse;
    std::string typecode_;
    std::vector<T> v_;
};

/// Python's DictProxy for Dict<K, V>.
template <class K, class V>
class Proxy<Dict<K, V>> : public ProxyBase<Dict<K, V>> {
    using R = Dict<K, V>;

public:
    using ProxyBase<R>::ProxyBase;

    /// d[k] reads and writes through the proxy; `d[k] += v` is one atomic
    /// call.  It holds a copy of the proxy, so it may outlive the one it came
    /// from (`auto hits = counters()["hits"];`).
    class reference;

    reference operator[](K k) const;
    /// d[k]; KeyError if missing.
    V at(const K& k) const { return this->template _call_exposed_<&R::getitem>("__getitem__", k); }
    std::size_t size() const { return this->template _call_exposed_<&R::len>("__len__"); }
    bool empty() const { return size() == 0; }
    bool contains(const K& k) const { return this->template _call_exposed_<&R::contains>("__contains__", k); }
    /// del d[k]; KeyError if missing.
    void erase(const K& k) const { this->template _call_exposed_<&R::delitem>("__delitem__", k); }
    std::optional<V> get(const K& k) const { return this->template _call_exposed_<&R::get>("get", k); }
    V get(const K& k, const V& d) const { return this->template _call_exposed_<&R::get_default>("get_default", k, d); }
    V pop(const K& k) const { return this->template _call_exposed_<&R::pop>("pop", k); }
    V pop(const K& k, const V& d) const { return this->template _call_exposed_<&R::pop_default>("pop_default", k, d); }
    std::pair<K, V> popitem() const { return this->template _call_exposed_<&R::popitem>("popitem"); }
    V setdefault(const K& k, const V& d = V{}) const { return this->template _call_exposed_<&R::setdefault>("setdefault", k, d); }
    void update(const std::vector<std::pair<K, V>>& kvs) const { this->template _call_exposed_<&R::update>("update", kvs); }
    void clear() const { this->template _call_exposed_<&R::clear>("clear"); }
    std::vector<K> keys() const { return this->template _call_exposed_<&R::keys>("keys"); }
    std::vector<V> values() const { return this->template _call_exposed_<&R::values>("values"); }
    std::vector<std::pair<K, V>> items() const { return this->template _call_exposed_<&R::items>("items"); }
    /// Python's reversed(d): the keys, last first.
    std::vector<K> reversed() const { return this->template _call_exposed_<&R::reversed>("__reversed__"); }
    /// Python's d.copy(): a plain (unshared) copy.
    R copy() const { return this->template _call_exposed_<&R::copy>("copy"); }
    /// Python's dict.fromkeys(keys, value): a plain dict.
    R fromkeys(const std::vector<K>& keys, const V& value = V{}) const {
        R r;
        for (auto& k : keys) r.setitem(k, value);
        return r;
    }
    /// Python's d | other: a plain merged copy.
    R operator|(const std::vector<std::pair<K, V>>& other) const {
        R r = copy();
        r.update(other);
        return r;
    }
    R operator|(const R& other) const { return *this | other.items(); }
    /// Python 3.14's {..} | d (__ror__): the plain dict's items, then d's.
    friend R operator|(R other, const Proxy& d) {
        other.update(d.items());
        return other;
    }
    friend R operator|(const std::vector<std::pair<K, V>>& other, const Proxy& d) { return R(other) | d; }
    /// Python's d |= other: updates the shared dict.
    const Proxy& operator|=(const std::vector<std::pair<K, V>>& other) const {
        update(other);
        return *this;
    }
    const Proxy& operator|=(const R& other) const { return *this |= other.items(); }
    /// Python's iter(d): live over the keys, one call per step (and one
    /// here for the size), RuntimeError if the size changes meanwhile.  For
    /// one call in all, iterate keys() or copy().
    detail::key_iterator<Proxy, K> begin() const { return {*this, size()}; }
    /// The end of any iteration (iterators own what they walk).
    detail::key_iterator<Proxy, K> end() const { return {}; }
    /// Internal: one step of a live iteration.
    std::optional<std::pair<K, std::uint64_t>> _iter_step(const detail::iter_state<K>& st) const {
        return this->template _call_exposed_<&R::iter_step>("__iter_step__", st);
    }

    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(
            method_desc<&R::getitem>{"__getitem__"}, method_desc<&R::setitem>{"__setitem__"},
            method_desc<&R::delitem>{"__delitem__"}, method_desc<&R::contains>{"__contains__"},
            method_desc<&R::len>{"__len__"}, method_desc<&R::get>{"get"},
            method_desc<&R::get_default>{"get_default"}, method_desc<&R::pop>{"pop"},
            method_desc<&R::pop_default>{"pop_default"}, method_desc<&R::popitem>{"popitem"},
            method_desc<&R::setdefault>{"setdefault"}, method_desc<&R::update>{"update"},
            method_desc<&R::clear>{"clear"}, method_desc<&R::keys>{"keys"}, method_desc<&R::values>{"values"},
            method_desc<&R::items>{"items"}, method_desc<&R::reversed>{"__reversed__"},
            method_desc<&R::copy>{"copy"}, method_desc<&R::iadd>{"__iadd__"},
            method_desc<&R::iter_step>{"__iter_step__"});
    }
};

template <class K, class V>
class Proxy<Dict<K, V>>::reference {
public:
    reference(const Proxy& p, K k) : p_(p), k_(std::move(k)) {}
    reference(const reference&) = default;
    operator V() const { return p_.at(k_); }
    V get() const { return p_.at(k_); }
    const reference& operator=(const V& v) const {
        p_.template _call_exposed_<&R::setitem>("__setitem__", k_, v);
        return *this;
    }
    /// d[a] = e[b] copies the value, as in Python (not the reference).
    const reference& operator=(const reference& r) const { return *this = r.get(); }
    V operator+=(const V& d) const { return p_.template _call_exposed_<&R::iadd>("__iadd__", k_, d); }
    friend std::ostream& operator<<(std::ostream& os, const reference& r) {
        return os << multiprocessing::detail::py_repr(r.get());
    }

private:
    Proxy p_;
    K k_;
};

template <class K, class V>
auto Proxy<Dict<K, V>>::operator[](K k) const -> reference {
    return reference(*this, std::move(k));
}

/// Python's ListProxy for List<T>.
template <class T>
class Proxy<List<T>> : public ProxyBase<List<T>> {
    using R = List<T>;

public:
    using ProxyBase<R>::ProxyBase;

    /// l[i] reads and writes through the proxy (negative i counts from the
    /// end).  It holds a copy of the proxy, so it may outlive the one it
    /// came from.
    class reference;

    reference operator[](long long i) const;
    T at(long long i) const { return this->template _call_exposed_<&R::getitem>("__getitem__", i); }
    std::size_t size() const { return this->template _call_exposed_<&R::len>("__len__"); }
    bool empty() const { return size() == 0; }
    bool contains(const T& x) const { return this->template _call_exposed_<&R::contains>("__contains__", x); }
    /// del l[i]
    void erase(long long i) const { this->template _call_exposed_<&R::delitem>("__delitem__", i); }
    void append(const T& x) const { this->template _call_exposed_<&R::append>("append", x); }
    void extend(const std::vector<T>& xs) const { this->template _call_exposed_<&R::extend>("extend", xs); }
    void insert(long long i, const T& x) const { this->template _call_exposed_<&R::insert>("insert", i, x); }
    T pop(long long i = -1) const { return this->template _call_exposed_<&R::pop>("pop", i); }
    void remove(const T& x) const { this->template _call_exposed_<&R::remove>("remove", x); }
    std::size_t index(const T& x) const { return this->template _call_exposed_<&R::index>("index", x); }
    std::size_t count(const T& x) const { return this->template _call_exposed_<&R::count>("count", x); }
    void reverse() const { this->template _call_exposed_<&R::reverse>("reverse"); }
    void sort() const { this->template _call_exposed_<&R::sort>("sort"); }
    void clear() const { this->template _call_exposed_<&R::clear>("clear"); }
    /// Python's l.copy() (and l[:]): a plain std::vector.
    std::vector<T> copy() const { return this->template _call_exposed_<&R::copy>("copy"); }
    /// Python's l[start:stop].
    std::vector<T> slice(long long start, long long stop) const {
        return this->template _call_exposed_<&R::slice>("__getslice__", start, stop);
    }
    /// Python's reversed(l).
    std::vector<T> reversed() const {
        auto v = copy();
        std::reverse(v.begin(), v.end());
        return v;
    }
    const Proxy& operator+=(const std::vector<T>& xs) const {
        extend(xs);
        return *this;
    }
    const Proxy& operator*=(long long n) const {
        this->template _call_exposed_<&R::imul>("__imul__", n);
        return *this;
    }
    std::vector<T> operator+(const std::vector<T>& xs) const {
        auto v = copy();
        v.insert(v.end(), xs.begin(), xs.end());
        return v;
    }
    std::vector<T> operator*(long long n) const { return detail::repeated(copy(), n); }
    /// Python's n * l (__rmul__).
    friend std::vector<T> operator*(long long n, const Proxy& l) { return l * n; }
    /// [..] + l: a plain list (CPython 3.13 raises TypeError here, as
    /// ListProxy has no __radd__).
    friend std::vector<T> operator+(std::vector<T> xs, const Proxy& l) {
        auto v = l.copy();
        xs.insert(xs.end(), v.begin(), v.end());
        return xs;
    }
    /// Python's iter(l): live, l[0], l[1], ... one call per step until the
    /// index passes the end, so changes made meanwhile are seen.  For one
    /// call in all, iterate copy().
    detail::index_iterator<Proxy, T> begin() const { return detail::index_iterator<Proxy, T>(*this); }
    /// The end of any iteration (iterators own what they walk).
    detail::index_iterator<Proxy, T> end() const { return {}; }
    /// Internal: l[i] for a live iteration, nothing past the end.
    std::optional<T> _iter_item(std::size_t i) const {
        return this->template _call_exposed_<&R::iter_item>("__iter_item__", i);
    }

    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(
            method_desc<&R::getitem>{"__getitem__"}, method_desc<&R::setitem>{"__setitem__"},
            method_desc<&R::delitem>{"__delitem__"}, method_desc<&R::len>{"__len__"},
            method_desc<&R::contains>{"__contains__"}, method_desc<&R::append>{"append"},
            method_desc<&R::extend>{"extend"}, method_desc<&R::insert>{"insert"}, method_desc<&R::pop>{"pop"},
            method_desc<&R::remove>{"remove"}, method_desc<&R::index>{"index"}, method_desc<&R::count>{"count"},
            method_desc<&R::reverse>{"reverse"}, method_desc<&R::sort>{"sort"}, method_desc<&R::clear>{"clear"},
            method_desc<&R::copy>{"copy"}, method_desc<&R::slice>{"__getslice__"},
            method_desc<&R::imul>{"__imul__"}, method_desc<&R::iter_item>{"__iter_item__"});
    }
};

template <class T>
class Proxy<List<T>>::reference {
public:
    reference(const Proxy& p, long long i) : p_(p), i_(i) {}
    reference(const reference&) = default;
    operator T() const { return p_.at(i_); }
    T get() const { return p_.at(i_); }
    const reference& operator=(const T& v) const {
        p_.template _call_exposed_<&R::setitem>("__setitem__", i_, v);
        return *this;
    }
    /// l[i] = m[j] copies the value, as in Python (not the reference).
    const reference& operator=(const reference& r) const { return *this = r.get(); }
    friend std::ostream& operator<<(std::ostream& os, const reference& r) {
        return os << multiprocessing::detail::py_repr(r.get());
    }

private:
    Proxy p_;
    long long i_;
};

template <class T>
auto Proxy<List<T>>::operator[](long long i) const -> reference {
    return reference(*this, i);
}

/// Python 3.14's SetProxy for Set<T>.  The operators take a plain set
/// (Set<T>, as copy() returns) or another set proxy, in either order, and
/// run in the server as CPython's do; a proxy operand travels as its value.
/// As in Python, `|`, `&`, `-`, `^` and the comparisons refuse a list (they
/// do not compile); the named methods and the in-place operators also take
/// a std::vector (Python's `s |= [1]` is silently ignored by 3.14's
/// SetProxy; here it updates the set).
template <class T>
class Proxy<Set<T>> : public ProxyBase<Set<T>> {
    using R = Set<T>;

public:
    using ProxyBase<R>::ProxyBase;
    void add(const T& x) const { this->template _call_exposed_<&R::add>("add", x); }
    void discard(const T& x) const { this->template _call_exposed_<&R::discard>("discard", x); }
    /// KeyError if missing.
    void remove(const T& x) const { this->template _call_exposed_<&R::remove>("remove", x); }
    bool contains(const T& x) const { return this->template _call_exposed_<&R::contains>("__contains__", x); }
    std::size_t size() const { return this->template _call_exposed_<&R::len>("__len__"); }
    bool empty() const { return size() == 0; }
    T pop() const { return this->template _call_exposed_<&R::pop>("pop"); }
    void clear() const { this->template _call_exposed_<&R::clear>("clear"); }
    /// The elements in CPython's iteration order (one call).
    std::vector<T> items() const { return this->template _call_exposed_<&R::items>("__iter__"); }
    /// Python's s.copy(): a plain set.
    R copy() const { return this->template _call_exposed_<&R::copy>("copy"); }
    void update(const std::vector<T>& xs) const { this->template _call_exposed_<&R::update>("update", xs); }
    void update(const R& s) const { this->template _call_exposed_<&R::update_set>("__ior__", s); }
    void intersection_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::intersection_update>("intersection_update", xs);
    }
    void intersection_update(const R& s) const {
        this->template _call_exposed_<&R::intersection_update_set>("__iand__", s);
    }
    void difference_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::difference_update>("difference_update", xs);
    }
    void difference_update(const R& s) const { this->template _call_exposed_<&R::difference_update_set>("__isub__", s); }
    void symmetric_difference_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::symmetric_difference_update>("symmetric_difference_update", xs);
    }
    void symmetric_difference_update(const R& s) const {
        this->template _call_exposed_<&R::symmetric_difference_update_set>("__ixor__", s);
    }
    bool issubset(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::issubset>("issubset", xs); }
    bool issuperset(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::issuperset>("issuperset", xs); }
    bool isdisjoint(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::isdisjoint>("isdisjoint", xs); }
    /// Python's union (a C++ keyword): a plain set.
    R union_(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::union_>("union", xs); }
    R intersection(const std::vector<T>& xs) const {
        return this->template _call_exposed_<&R::intersection>("intersection", xs);
    }
    R difference(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::difference>("difference", xs); }
    R symmetric_difference(const std::vector<T>& xs) const {
        return this->template _call_exposed_<&R::symmetric_difference>("symmetric_difference", xs);
    }

    R operator|(const R& b) const { return this->template _call_exposed_<&R::op_or>("__or__", b); }
    R operator&(const R& b) const { return this->template _call_exposed_<&R::op_and>("__and__", b); }
    R operator-(const R& b) const { return this->template _call_exposed_<&R::op_sub>("__sub__", b); }
    R operator^(const R& b) const { return this->template _call_exposed_<&R::op_xor>("__xor__", b); }
    R operator|(const Proxy& b) const { return *this | b.copy(); }
    R operator&(const Proxy& b) const { return *this & b.copy(); }
    R operator-(const Proxy& b) const { return *this - b.copy(); }
    R operator^(const Proxy& b) const { return *this ^ b.copy(); }
    /// Python's reflected forms: a plain set on the left.
    friend R operator|(const R& a, const Proxy& p) { return p.template _call_exposed_<&R::op_ror>("__ror__", a); }
    friend R operator&(const R& a, const Proxy& p) { return p.template _call_exposed_<&R::op_rand>("__rand__", a); }
    friend R operator-(const R& a, const Proxy& p) { return p.template _call_exposed_<&R::op_rsub>("__rsub__", a); }
    friend R operator^(const R& a, const Proxy& p) { return p.template _call_exposed_<&R::op_rxor>("__rxor__", a); }

    const Proxy& operator|=(const std::vector<T>& xs) const { update(xs); return *this; }
    const Proxy& operator&=(const std::vector<T>& xs) const { intersection_update(xs); return *this; }
    const Proxy& operator-=(const std::vector<T>& xs) const { difference_update(xs); return *this; }
    const Proxy& operator^=(const std::vector<T>& xs) const { symmetric_difference_update(xs); return *this; }
    const Proxy& operator|=(const R& s) const { update(s); return *this; }
    const Proxy& operator&=(const R& s) const { intersection_update(s); return *this; }
    const Proxy& operator-=(const R& s) const { difference_update(s); return *this; }
    const Proxy& operator^=(const R& s) const { symmetric_difference_update(s); return *this; }
    const Proxy& operator|=(const Proxy& s) const { return *this |= s.copy(); }
    const Proxy& operator&=(const Proxy& s) const { return *this &= s.copy(); }
    const Proxy& operator-=(const Proxy& s) const { return *this -= s.copy(); }
    const Proxy& operator^=(const Proxy& s) const { return *this ^= s.copy(); }

    /// Python's subset and superset comparisons, with a plain set or a set
    /// proxy on either side.
    friend bool operator<(const Proxy& p, const R& b) { return p.cmp(b, 0); }
    friend bool operator<=(const Proxy& p, const R& b) { return p.cmp(b, 1); }
    friend bool operator>(const Proxy& p, const R& b) { return p.cmp(b, 2); }
    friend bool operator>=(const Proxy& p, const R& b) { return p.cmp(b, 3); }
    friend bool operator<(const R& a, const Proxy& p) { return p.cmp(a, 2); }
    friend bool operator<=(const R& a, const Proxy& p) { return p.cmp(a, 3); }
    friend bool operator>(const R& a, const Proxy& p) { return p.cmp(a, 0); }
    friend bool operator>=(const R& a, const Proxy& p) { return p.cmp(a, 1); }
    friend bool operator<(const Proxy& p, const Proxy& q) { return p < q.copy(); }
    friend bool operator<=(const Proxy& p, const Proxy& q) { return p <= q.copy(); }
    friend bool operator>(const Proxy& p, const Proxy& q) { return p > q.copy(); }
    friend bool operator>=(const Proxy& p, const Proxy& q) { return p >= q.copy(); }

    /// Python's iter(s): live, one call per step, RuntimeError if the size
    /// changes meanwhile.  For one call in all, iterate items().
    detail::key_iterator<Proxy, T> begin() const { return {*this, size()}; }
    /// The end of any iteration (iterators own what they walk).
    detail::key_iterator<Proxy, T> end() const { return {}; }
    /// Internal: one step of a live iteration.
    std::optional<std::pair<T, std::uint64_t>> _iter_step(const detail::iter_state<T>& st) const {
        return this->template _call_exposed_<&R::iter_step>("__iter_step__", st);
    }

    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(
            method_desc<&R::add>{"add"}, method_desc<&R::discard>{"discard"}, method_desc<&R::remove>{"remove"},
            method_desc<&R::contains>{"__contains__"}, method_desc<&R::len>{"__len__"}, method_desc<&R::pop>{"pop"},
            method_desc<&R::clear>{"clear"}, method_desc<&R::items>{"__iter__"}, method_desc<&R::update>{"update"},
            method_desc<&R::intersection_update>{"intersection_update"},
            method_desc<&R::difference_update>{"difference_update"},
            method_desc<&R::symmetric_difference_update>{"symmetric_difference_update"},
            method_desc<&R::issubset>{"issubset"}, method_desc<&R::issuperset>{"issuperset"},
            method_desc<&R::isdisjoint>{"isdisjoint"}, method_desc<&R::copy>{"copy"},
            method_desc<&R::union_>{"union"}, method_desc<&R::intersection>{"intersection"},
            method_desc<&R::difference>{"difference"}, method_desc<&R::symmetric_difference>{"symmetric_difference"},
            method_desc<&R::update_set>{"__ior__"}, method_desc<&R::intersection_update_set>{"__iand__"},
            method_desc<&R::difference_update_set>{"__isub__"},
            method_desc<&R::symmetric_difference_update_set>{"__ixor__"}, method_desc<&R::op_or>{"__or__"},
            method_desc<&R::op_ror>{"__ror__"}, method_desc<&R::op_and>{"__and__"},
            method_desc<&R::op_rand>{"__rand__"}, method_desc<&R::op_sub>{"__sub__"},
            method_desc<&R::op_rsub>{"__rsub__"}, method_desc<&R::op_xor>{"__xor__"},
            method_desc<&R::op_rxor>{"__rxor__"}, method_desc<&R::op_compare>{"__richcmp__"},
            method_desc<&R::iter_step>{"__iter_step__"});
    }

private:
    bool cmp(const R& b, int op) const { return this->template _call_exposed_<&R::op_compare>("__richcmp__", b, op); }
};

/// Python's ValueProxy: get(), set() and value().
template <class T>
class Proxy<ValueRef<T>> : public ProxyBase<ValueRef<T>> {
    using R = ValueRef<T>;

public:
    using ProxyBase<R>::ProxyBase;
    T get() const { return this->template _call_exposed_<&R::get>("get"); }
    void set(const T& v) const { this->template _call_exposed_<&R::set>("set", v); }
    /// Python's `value` property.
    T value() const { return get(); }
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::get>{"get"}, method_desc<&R::set>{"set"});
    }
};

/// Python's ArrayProxy: len, indexing and assignment.
template <class T>
class Proxy<ArrayRef<T>> : public ProxyBase<ArrayRef<T>> {
    using R = ArrayRef<T>;

public:
    using ProxyBase<R>::ProxyBase;
    /// a[i] reads and writes through the proxy; it holds a copy of the proxy.
    class reference;
    reference operator[](long long i) const;
    T at(long long i) const { return this->template _call_exposed_<&R::getitem>("__getitem__", i); }
    std::size_t size() const { return this->template _call_exposed_<&R::len>("__len__"); }
    std::vector<T> copy() const { return this->template _call_exposed_<&R::copy>("copy"); }
    /// Python's iter(a): live, a[0], a[1], ... one call per step; copy()
    /// is the one-call snapshot.
    detail::index_iterator<Proxy, T> begin() const { return detail::index_iterator<Proxy, T>(*this); }
    detail::index_iterator<Proxy, T> end() const { return {}; }
    /// Internal: a[i] for a live iteration, nothing past the end.
    std::optional<T> _iter_item(std::size_t i) const {
        return this->template _call_exposed_<&R::iter_item>("__iter_item__", i);
    }
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::getitem>{"__getitem__"}, method_desc<&R::setitem>{"__setitem__"},
                               method_desc<&R::len>{"__len__"}, method_desc<&R::copy>{"copy"},
                               method_desc<&R::iter_item>{"__iter_item__"});
    }
};

template <class T>
class Proxy<ArrayRef<T>>::reference {
public:
    reference(const Proxy& p, long long i) : p_(p), i_(i) {}
    reference(const reference&) = default;
    operator T() const { return p_.at(i_); }
    const reference& operator=(const T& v) const {
        p_.template _call_exposed_<&R::setitem>("__setitem__", i_, v);
        return *this;
    }
    /// a[i] = b[j] copies the value (not the reference).
    const reference& operator=(const reference& r) const { return *this = static_cast<T>(r); }

private:
    Proxy p_;
    long long i_;
};

template <class T>
auto Proxy<ArrayRef<T>>::operator[](long long i) const -> reference {
    return reference(*this, i);
}

/// The referent of SyncManager::Namespace(): named attributes holding
/// dynamic values, printed as Namespace(name='Bob').
class NamespaceRef {
public:
    object getattr(const std::string& name) const;
    void setattr(const std::string& name, const object& v);
    void delattr(const std::string& name);
    bool hasattr(const std::string& name) const;
    /// Python's Namespace repr: public names only, the name=value texts
    /// sorted.
    std::string repr() const;
    friend std::ostream& operator<<(std::ostream& os, const NamespaceRef& n) { return os << n.repr(); }
    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & attrs_; }

private:
    static std::string repr_of(const object& o);
    template <class, class> friend struct detail::gc_traverse;
    Dict<std::string, object> attrs_;
};

namespace detail {
// What the server's cycle collector sees inside the shared containers.
template <class K, class V>
struct gc_traverse<Dict<K, V>> {
    static constexpr bool holds = gc_traverse<K>::holds || gc_traverse<V>::holds;
    static void run(const Dict<K, V>& d, const gc_visitor& v) {
        if constexpr (holds)
            for (auto& kv : d.items_) {
                gc_traverse<K>::run(kv.first, v);
                gc_traverse<V>::run(kv.second, v);
            }
    }
};
template <class T>
struct gc_traverse<List<T>> {
    static constexpr bool holds = gc_traverse<T>::holds;
    static void run(const List<T>& l, const gc_visitor& v) { gc_traverse<std::vector<T>>::run(l.v_, v); }
};
template <class T>
struct gc_traverse<Set<T>> {
    static constexpr bool holds = gc_traverse<T>::holds;
    static void run(const Set<T>& x, const gc_visitor& v) {
        if constexpr (holds)
            for (auto& s : x.table_)
                if (s.active()) gc_traverse<T>::run(*s.key, v);
    }
};
template <class T>
struct gc_traverse<ValueRef<T>> {
    static constexpr bool holds = gc_traverse<T>::holds;
    static void run(const ValueRef<T>& x, const gc_visitor& v) { gc_traverse<T>::run(x.v_, v); }
};
template <class T>
struct gc_traverse<ArrayRef<T>> {
    static constexpr bool holds = gc_traverse<T>::holds;
    static void run(const ArrayRef<T>& x, const gc_visitor& v) { gc_traverse<std::vector<T>>::run(x.v_, v); }
};
template <>
struct gc_traverse<NamespaceRef> {
    static constexpr bool holds = true;
    static void run(const NamespaceRef& x, const gc_visitor& v) {
        gc_traverse<Dict<std::string, object>>::run(x.attrs_, v);
    }
};
}  // namespace detail

/// Python's NamespaceProxy: getattr/setattr/delattr by name.
template <>
class Proxy<NamespaceRef> : public ProxyBase<NamespaceRef> {
    using R = NamespaceRef;

public:
    using ProxyBase<R>::ProxyBase;
    /// Python's ns.name; AttributeError if unset.
    object getattr(const std::string& name) const;
    /// Python's ns.name = value.
    void setattr(const std::string& name, const object& v) const;
    /// Python's del ns.name.
    void delattr(const std::string& name) const;
    bool hasattr(const std::string& name) const;
    template <class MpSelf = R>  // lazy: built only where used
    static auto _exposed_() {
        using detail::method_desc;
        using R = MpSelf;
        return std::make_tuple(method_desc<&R::getattr>{"__getattribute__"}, method_desc<&R::setattr>{"__setattr__"},
                               method_desc<&R::delattr>{"__delattr__"}, method_desc<&R::hasattr>{"hasattr"});
    }
};

/// Python's DictProxy, ListProxy, ...: names for the proxy types.
template <class K = object, class V = object>
using DictProxy = Proxy<Dict<K, V>>;
template <class T = object>
using ListProxy = Proxy<List<T>>;
template <class T = object>
using SetProxy = Proxy<Set<T>>;
template <class T>
using ValueProxy = Proxy<ValueRef<T>>;
template <class T>
using ArrayProxy = Proxy<ArrayRef<T>>;
using NamespaceProxy = Proxy<NamespaceRef>;

namespace detail {

/// Steps a proxy whose referent has __next__ (ending with StopIteration):
/// one call per element.  Copies share one position.
template <class P>
class next_iterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = std::decay_t<decltype(std::declval<const P&>().__next__())>;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    next_iterator() = default;
    explicit next_iterator(P p) : s_(std::make_shared<state>(std::move(p))) {}

    reference operator*() const {
        if (at_end()) throw StopIteration();
        return *s_->cur;
    }
    pointer operator->() const { return &**this; }
    next_iterator& operator++() {
        if (!at_end()) s_->cur.reset();
        return *this;
    }
    stepped_value<value_type> operator++(int) {
        stepped_value<value_type> old{**this};
        ++*this;
        return old;
    }
    friend bool operator==(const next_iterator& a, const next_iterator& b) {
        if (a.at_end() || b.at_end()) return a.at_end() == b.at_end();
        return a.s_ == b.s_;
    }
    friend bool operator!=(const next_iterator& a, const next_iterator& b) { return !(a == b); }

private:
    struct state {
        explicit state(P q) : p(std::move(q)) {}
        P p;
        std::optional<value_type> cur;
        bool ended = false;
    };
    bool at_end() const {
        if (!s_) return true;
        if (!s_->ended && !s_->cur) {
            try {
                s_->cur = s_->p.__next__();
            } catch (const StopIteration&) {
                s_->ended = true;
            }
        }
        return s_->ended;
    }
    std::shared_ptr<state> s_;
};

}  // namespace detail

/// Python's IteratorProxy, as a mixin over a proxy type that exposes
/// __next__ (made with MP_PROXY(Base, T, __next__), T's __next__ throwing
/// StopIteration at the end): makes it iterable, one call per element, as
/// list(iterator_proxy) is in Python.  send/throw/close are not provided.
template <class Base>
struct IteratorProxy : Base {
    using Base::Base;
    detail::next_iterator<Base> begin() const { return detail::next_iterator<Base>(*this); }
    detail::next_iterator<Base> end() const { return {}; }
};

// Their Python forms (a CPython client's copy() or _getvalue()): a dict,
// a list, a set.
namespace pk_ = multiprocessing::detail::pickle;
template <class K, class V, std::enable_if_t<pk_::py_conv<K>::ok && pk_::py_conv<V>::ok, int> = 0>
pk_::value mp_to_python(const Dict<K, V>& d) {
    std::vector<pk_::value> items;
    for (auto& kv : d.items()) {
        items.push_back(pk_::py_conv<K>::to(kv.first));
        items.push_back(pk_::py_conv<V>::to(kv.second));
    }
    return pk_::value::seq(pk_::value::kind::dict, std::move(items));
}
template <class K, class V, std::enable_if_t<pk_::py_conv<K>::ok && pk_::py_conv<V>::ok, int> = 0>
Dict<K, V> mp_from_python(pk_::tag<Dict<K, V>>, const pk_::value& v) {
    return Dict<K, V>(pk_::py_conv<std::vector<std::pair<K, V>>>::from(v));
}
template <class T, std::enable_if_t<pk_::py_conv<T>::ok, int> = 0>
pk_::value mp_to_python(const List<T>& l) { return pk_::py_conv<std::vector<T>>::to(l.copy()); }
template <class T, std::enable_if_t<pk_::py_conv<T>::ok, int> = 0>
List<T> mp_from_python(pk_::tag<List<T>>, const pk_::value& v) { return List<T>(pk_::py_conv<std::vector<T>>::from(v)); }
template <class T, std::enable_if_t<pk_::py_conv<T>::ok, int> = 0>
pk_::value mp_to_python(const Set<T>& s) {
    auto v = pk_::py_conv<std::vector<T>>::to(s.items());
    v.k = pk_::value::kind::set;
    return v;
}
template <class T, std::enable_if_t<pk_::py_conv<T>::ok, int> = 0>
Set<T> mp_from_python(pk_::tag<Set<T>>, const pk_::value& v) { return Set<T>(pk_::py_conv<std::vector<T>>::from(v)); }

/// The proxy type of what a CPython client's iter(d) walks (typeid
/// 'Iterator'): only its exposed __next__ is used, by CPython clients.
template <>
class Proxy<detail::PythonIterator> : public ProxyBase<detail::PythonIterator> {
public:
    using ProxyBase<detail::PythonIterator>::ProxyBase;
    template <class MpSelf = detail::PythonIterator>  // lazy: built only where used
    static auto _exposed_() {
        return std::make_tuple(detail::method_desc<&MpSelf::next_item>{"__next__"});
    }
};

namespace detail {

/// Registers a container type with Manager's registry before main(), so a
/// server forked later knows every instantiation the program uses.
template <class Manager, class T>
struct auto_registered {
    static bool add(const char* base) {
        Manager::template register_type<T>(std::string(base) + "[" + multiprocessing::detail::type_name<T>() + "]");
        return true;
    }
    static bool done;  // not const: see constructor_registrar::registered
};

template <class Manager>
struct python_iterator_registered {
    static bool done;  // not const: see constructor_registrar::registered
};
template <class Manager>
bool python_iterator_registered<Manager>::done =
    (Manager::template register_type<PythonIterator>("Iterator"), true);

template <class T> struct container_name;
template <class K, class V> struct container_name<Dict<K, V>> { static constexpr const char* value = "dict"; };
template <class T> struct container_name<List<T>> { static constexpr const char* value = "list"; };
template <class T> struct container_name<Set<T>> { static constexpr const char* value = "set"; };
template <class T> struct container_name<ValueRef<T>> { static constexpr const char* value = "Value"; };
template <class T> struct container_name<ArrayRef<T>> { static constexpr const char* value = "Array"; };
template <> struct container_name<NamespaceRef> { static constexpr const char* value = "Namespace"; };

template <class T>
struct python_defaults<List<T>> {
    static void apply(type_entry& e) { add_py_method(e, "pop", "pop", {"index"}, {pk::value::integer(-1)}); }
};

template <class R>
struct container_typeid_check {
    static bool ok(const std::string& tid) {
        if (tid == std::string(container_name<R>::value) + "[" + multiprocessing::detail::type_name<R>() + "]")
            return true;
        // Another SyncManager container ("dict[...]"...) is a mismatch; a
        // typeid the user registered R under is not checked.
        for (const char* base : {"dict[", "list[", "set[", "Value[", "Array[", "Namespace["})
            if (tid.rfind(base, 0) == 0) return false;
        return true;
    }
};

/// as_proxy<Proxy<R>>() on an object holding a container proxy of another
/// type is a TypeError (the typeid a container is made under names R).
template <class K, class V> struct proxy_typeid_check<Dict<K, V>> : container_typeid_check<Dict<K, V>> {};
template <class T> struct proxy_typeid_check<List<T>> : container_typeid_check<List<T>> {};
template <class T> struct proxy_typeid_check<Set<T>> : container_typeid_check<Set<T>> {};
template <class T> struct proxy_typeid_check<ValueRef<T>> : container_typeid_check<ValueRef<T>> {};
template <class T> struct proxy_typeid_check<ArrayRef<T>> : container_typeid_check<ArrayRef<T>> {};
template <> struct proxy_typeid_check<NamespaceRef> : container_typeid_check<NamespaceRef> {};

template <class Manager, class T>
bool auto_registered<Manager, T>::done = auto_registered<Manager, T>::add(container_name<T>::value);

/// Mixin of SyncManager: the factory methods for shared containers.
template <class Manager>
class container_factories {
public:
    /// Python's manager.dict(): a shared, insertion-ordered dict of
    /// dynamic values; dict<K, V>() is the typed form (no tags on the wire).
    template <class K = object, class V = object>
    Proxy<Dict<K, V>> dict(const std::vector<std::pair<K, V>>& items = {}) {
        return make<Dict<K, V>>(items);
    }
    /// Python's manager.list(seq); list<T>() is the typed form.
    template <class T = object>
    Proxy<List<T>> list(std::vector<T> items = {}) { return make<List<T>>(std::move(items)); }
    /// Python's manager.set(seq) (3.14).
    template <class T = object>
    Proxy<Set<T>> set(const std::vector<T>& items = {}) { return make<Set<T>>(items); }
    /// Python's manager.set(a_set): the server merges the set's table.
    template <class T>
    Proxy<Set<T>> set(const Set<T>& s) { return make<Set<T>>(s, true); }
    template <class T>
    Proxy<Set<T>> set(const Proxy<Set<T>>& s) { return set(s.copy()); }
    /// Python's manager.set(a_dict): the dict's keys.
    template <class K, class V>
    Proxy<Set<K>> set(const Dict<K, V>& d) { return make<Set<K>>(d.keys(), dict_keys_t{}); }
    template <class K, class V>
    Proxy<Set<K>> set(const Proxy<Dict<K, V>>& d) { return make<Set<K>>(d.keys(), dict_keys_t{}); }
    /// Python's manager.set(x) for a dynamic x: iterated at run time (a
    /// str by characters, a dict by keys); TypeError "'int' object is not
    /// iterable" as in CPython.  A typed argument that is not a sequence
    /// does not compile instead.
    template <class O, std::enable_if_t<std::is_same_v<O, object>, int> = 0>
    Proxy<Set<object>> set(const O& iterable) {
        if (iterable.type() == object::kind::dict) return make<Set<object>>(iterable.iterate(), dict_keys_t{});
        return make<Set<object>>(iterable.iterate());
    }
    /// Python's manager.Value(typecode, value).
    template <class T>
    Proxy<ValueRef<T>> Value(const std::string& typecode, T v) { return make<ValueRef<T>>(typecode, std::move(v)); }
    /// Typed Value: the typecode follows from T.
    template <class T>
    Proxy<ValueRef<T>> Value(T v) { return make<ValueRef<T>>(default_typecode<T>(), std::move(v)); }
    /// Python's manager.Array(typecode, sequence).
    template <class T>
    Proxy<ArrayRef<T>> Array(const std::string& typecode, std::vector<T> v) {
        return make<ArrayRef<T>>(typecode, std::move(v));
    }
    template <class T>
    Proxy<ArrayRef<T>> Array(std::vector<T> v) { return make<ArrayRef<T>>(default_typecode<T>(), std::move(v)); }

    /// Python's manager.Namespace().
    Proxy<NamespaceRef> Namespace() { return make<NamespaceRef>(); }

protected:
    static void register_container_types() {}
    // What a CPython client may create (SyncManager::register_python_types).
    template <class M>
    static void register_python_container_types() {
        (void)&auto_registered<M, Dict<object, object>>::done;
        (void)&python_iterator_registered<M>::done;
        (void)&auto_registered<M, List<object>>::done;
        (void)&auto_registered<M, Set<object>>::done;
        (void)&auto_registered<M, NamespaceRef>::done;
        (void)&auto_registered<M, ValueRef<object>>::done;
        (void)&constructor_registrar<Dict<object, object>, std::vector<std::pair<object, object>>>::registered;
        (void)&constructor_registrar<List<object>, std::vector<object>>::registered;
        (void)&constructor_registrar<Set<object>, std::vector<object>>::registered;
        (void)&constructor_registrar<NamespaceRef>::registered;
        (void)&constructor_registrar<ValueRef<object>, std::string, object>::registered;
    }

private:
    template <class R, class... A>
    Proxy<R> make(A&&... args) {
        (void)&auto_registered<Manager, R>::done;
        auto& m = static_cast<Manager&>(*this);
        return m.template create_as<R>(std::string(container_name<R>::value) + "[" + multiprocessing::detail::type_name<R>() + "]",
                                       std::forward<A>(args)...);
    }
};

}  // namespace detail
}  // namespace multiprocessing::managers

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/containers.ipp"
#endif
