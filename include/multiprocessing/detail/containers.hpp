// SyncManager's shared containers: dict, list, set, Value, Array.
//
// Each is a referent class living in the server plus a Proxy
// specialization with Python's method names where C++ allows and C++
// spellings (operator[], size(), contains(), erase(), iteration) where its
// idiom is stronger.  Every method is one atomic call in the server; that
// includes `d[k] += v`, which in Python is two calls that can lose updates
// (gh-137233).  Iteration is live, as in CPython: one call per step.
#pragma once

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
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

namespace multiprocessing::managers {

namespace detail {

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
    void imul(long long times) {
        std::vector<T> out;
        for (long long k = 0; k < times; ++k) out.insert(out.end(), v_.begin(), v_.end());
        v_.swap(out);
    }
    std::string repr() const { return multiprocessing::detail::py_repr(v_); }
    friend std::ostream& operator<<(std::ostream& os, const List& l) { return os << l.repr(); }

    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & v_; }

private:
    std::vector<T> v_;
};

/// The referent of SyncManager::set<T>() (Python 3.14's SetProxy).  Keeps
/// insertion order, so its repr may order elements differently from CPython.
template <class T>
class Set {
public:
    using value_type = T;
    Set() = default;
    explicit Set(const std::vector<T>& xs) { update(xs); }

    void add(const T& x) { d_.setitem(x, true); }
    void discard(const T& x) {
        if (d_.contains(x)) d_.delitem(x);
    }
    void remove(const T& x) { d_.delitem(x); }
    bool contains(const T& x) const { return d_.contains(x); }
    std::size_t len() const { return d_.len(); }
    T pop() {
        if (!d_.len()) throw KeyError("'pop from an empty set'");
        return d_.popitem().first;
    }
    void clear() { d_.clear(); }
    std::vector<T> items() const { return d_.keys(); }
    /// One step of Python's iter(s) (see Dict::iter_step).  CPython's set
    /// iterator has no "keys changed" check.
    std::optional<std::pair<T, std::uint64_t>> iter_step(const detail::iter_state<T>& st) const {
        return d_.step(st, "Set changed size during iteration", nullptr);
    }
    void update(const std::vector<T>& xs) { for (auto& x : xs) add(x); }
    /// As CPython's set with a sequence argument: the argument's items
    /// (the first of equal ones) that are in the set; CPython stops reading
    /// the argument once every item of the set is found.
    void intersection_update(const std::vector<T>& xs) {
        Set result = intersection_with(xs);
        d_.swap(result.d_);
    }
    void difference_update(const std::vector<T>& xs) { for (auto& x : xs) discard(x); }
    void symmetric_difference_update(const std::vector<T>& xs) {
        for (auto& x : Set(xs).items()) {
            if (contains(x)) discard(x);
            else add(x);
        }
    }
    bool issubset(const std::vector<T>& xs) const { return intersection_with(xs).len() == len(); }
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
    std::string repr() const {
        if (!len()) return "set()";
        auto v = items();
        return multiprocessing::detail::py_seq_repr(v.begin(), v.end(), "{", "}");
    }
    friend std::ostream& operator<<(std::ostream& os, const Set& s) { return os << s.repr(); }

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
        update(v);
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

private:
    Set intersection_with(const std::vector<T>& xs) const {
        Set result;
        for (auto& x : xs) {
            if (!contains(x)) continue;
            result.add(x);
            if (result.len() == len()) break;
        }
        return result;
    }
    Dict<T, bool> d_;
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
    std::string typecode_;
    std::vector<T> v_;
};

/// Python's DictProxy for Dict<K, V>.
template <class K, class V>
class Proxy<Dict<K, V>> : public ProxyBase<Dict<K, V>> {
    using R = Dict<K, V>;

public:
    using ProxyBase<R>::ProxyBase;

    /// d[k] reads and writes through the proxy; `d[k] += v` is one atomic call.
    class reference {
    public:
        reference(const Proxy& p, K k) : p_(p), k_(std::move(k)) {}
        operator V() const { return p_.at(k_); }
        V get() const { return p_.at(k_); }
        const reference& operator=(const V& v) const {
            p_.template _call_exposed_<&R::setitem>("__setitem__", k_, v);
            return *this;
        }
        V operator+=(const V& d) const { return p_.template _call_exposed_<&R::iadd>("__iadd__", k_, d); }
        friend std::ostream& operator<<(std::ostream& os, const reference& r) {
            return os << multiprocessing::detail::py_repr(r.get());
        }

    private:
        const Proxy& p_;
        K k_;
    };

    reference operator[](K k) const { return reference(*this, std::move(k)); }
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
    /// Python's d |= other: updates the shared dict.
    const Proxy& operator|=(const std::vector<std::pair<K, V>>& other) const {
        update(other);
        return *this;
    }
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

    static auto _exposed_() {
        using detail::method_desc;
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

/// Python's ListProxy for List<T>.
template <class T>
class Proxy<List<T>> : public ProxyBase<List<T>> {
    using R = List<T>;

public:
    using ProxyBase<R>::ProxyBase;

    /// l[i] reads and writes through the proxy (negative i counts from the end).
    class reference {
    public:
        reference(const Proxy& p, long long i) : p_(p), i_(i) {}
        operator T() const { return p_.at(i_); }
        T get() const { return p_.at(i_); }
        const reference& operator=(const T& v) const {
            p_.template _call_exposed_<&R::setitem>("__setitem__", i_, v);
            return *this;
        }
        friend std::ostream& operator<<(std::ostream& os, const reference& r) {
            return os << multiprocessing::detail::py_repr(r.get());
        }

    private:
        const Proxy& p_;
        long long i_;
    };

    reference operator[](long long i) const { return reference(*this, i); }
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
    std::vector<T> operator*(long long n) const {
        auto v = copy(), out = std::vector<T>();
        for (long long k = 0; k < n; ++k) out.insert(out.end(), v.begin(), v.end());
        return out;
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

    static auto _exposed_() {
        using detail::method_desc;
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

/// Python 3.14's SetProxy for Set<T>.
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
    std::vector<T> items() const { return this->template _call_exposed_<&R::items>("__iter__"); }
    R copy() const { return this->_getvalue(); }
    void update(const std::vector<T>& xs) const { this->template _call_exposed_<&R::update>("update", xs); }
    void intersection_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::intersection_update>("intersection_update", xs);
    }
    void difference_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::difference_update>("difference_update", xs);
    }
    void symmetric_difference_update(const std::vector<T>& xs) const {
        this->template _call_exposed_<&R::symmetric_difference_update>("symmetric_difference_update", xs);
    }
    bool issubset(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::issubset>("issubset", xs); }
    bool issuperset(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::issuperset>("issuperset", xs); }
    bool isdisjoint(const std::vector<T>& xs) const { return this->template _call_exposed_<&R::isdisjoint>("isdisjoint", xs); }
    /// Python's union (a C++ keyword): a plain set.
    R union_(const std::vector<T>& xs) const { R r = copy(); r.update(xs); return r; }
    R intersection(const std::vector<T>& xs) const { R r = copy(); r.intersection_update(xs); return r; }
    R difference(const std::vector<T>& xs) const { R r = copy(); r.difference_update(xs); return r; }
    R symmetric_difference(const std::vector<T>& xs) const { R r = copy(); r.symmetric_difference_update(xs); return r; }
    const Proxy& operator|=(const std::vector<T>& xs) const { update(xs); return *this; }
    const Proxy& operator&=(const std::vector<T>& xs) const { intersection_update(xs); return *this; }
    const Proxy& operator-=(const std::vector<T>& xs) const { difference_update(xs); return *this; }
    const Proxy& operator^=(const std::vector<T>& xs) const { symmetric_difference_update(xs); return *this; }
    /// Python's iter(s): live, one call per step, RuntimeError if the size
    /// changes meanwhile.  For one call in all, iterate items().
    detail::key_iterator<Proxy, T> begin() const { return {*this, size()}; }
    /// The end of any iteration (iterators own what they walk).
    detail::key_iterator<Proxy, T> end() const { return {}; }
    /// Internal: one step of a live iteration.
    std::optional<std::pair<T, std::uint64_t>> _iter_step(const detail::iter_state<T>& st) const {
        return this->template _call_exposed_<&R::iter_step>("__iter_step__", st);
    }

    static auto _exposed_() {
        using detail::method_desc;
        return std::make_tuple(
            method_desc<&R::add>{"add"}, method_desc<&R::discard>{"discard"}, method_desc<&R::remove>{"remove"},
            method_desc<&R::contains>{"__contains__"}, method_desc<&R::len>{"__len__"}, method_desc<&R::pop>{"pop"},
            method_desc<&R::clear>{"clear"}, method_desc<&R::items>{"__iter__"}, method_desc<&R::update>{"update"},
            method_desc<&R::intersection_update>{"intersection_update"},
            method_desc<&R::difference_update>{"difference_update"},
            method_desc<&R::symmetric_difference_update>{"symmetric_difference_update"},
            method_desc<&R::issubset>{"issubset"}, method_desc<&R::issuperset>{"issuperset"},
            method_desc<&R::isdisjoint>{"isdisjoint"}, method_desc<&R::iter_step>{"__iter_step__"});
    }
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
    static auto _exposed_() {
        using detail::method_desc;
        return std::make_tuple(method_desc<&R::get>{"get"}, method_desc<&R::set>{"set"});
    }
};

/// Python's ArrayProxy: len, indexing and assignment.
template <class T>
class Proxy<ArrayRef<T>> : public ProxyBase<ArrayRef<T>> {
    using R = ArrayRef<T>;

public:
    using ProxyBase<R>::ProxyBase;
    class reference {
    public:
        reference(const Proxy& p, long long i) : p_(p), i_(i) {}
        operator T() const { return p_.at(i_); }
        const reference& operator=(const T& v) const {
            p_.template _call_exposed_<&R::setitem>("__setitem__", i_, v);
            return *this;
        }

    private:
        const Proxy& p_;
        long long i_;
    };
    reference operator[](long long i) const { return reference(*this, i); }
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
    static auto _exposed_() {
        using detail::method_desc;
        return std::make_tuple(method_desc<&R::getitem>{"__getitem__"}, method_desc<&R::setitem>{"__setitem__"},
                               method_desc<&R::len>{"__len__"}, method_desc<&R::copy>{"copy"},
                               method_desc<&R::iter_item>{"__iter_item__"});
    }
};

/// The referent of SyncManager::Namespace(): named attributes holding
/// dynamic values, printed as Namespace(name='Bob').
class NamespaceRef {
public:
    object getattr(const std::string& name) const {
        auto v = attrs_.get(name);
        if (!v) throw AttributeError("'Namespace' object has no attribute " + multiprocessing::detail::py_str_repr(name));
        return *v;
    }
    void setattr(const std::string& name, const object& v) { attrs_.setitem(name, v); }
    void delattr(const std::string& name) {
        if (!attrs_.contains(name))
            throw AttributeError("'Namespace' object has no attribute " + multiprocessing::detail::py_str_repr(name));
        attrs_.delitem(name);
    }
    bool hasattr(const std::string& name) const { return attrs_.contains(name); }
    /// Python's Namespace repr: public names only, the name=value texts
    /// sorted.
    std::string repr() const {
        std::vector<std::string> parts;
        for (auto& kv : attrs_)
            if (kv.first.rfind("_", 0) != 0) parts.push_back(kv.first + "=" + repr_of(kv.second));
        std::sort(parts.begin(), parts.end());
        std::string s = "Namespace(";
        for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
        return s + ")";
    }
    friend std::ostream& operator<<(std::ostream& os, const NamespaceRef& n) { return os << n.repr(); }
    template <class Ar>
    void serialize(Ar& ar, unsigned) { ar & attrs_; }

private:
    static std::string repr_of(const object& o) { return multiprocessing::repr(o); }
    Dict<std::string, object> attrs_;
};

/// Python's NamespaceProxy: getattr/setattr/delattr by name.
template <>
class Proxy<NamespaceRef> : public ProxyBase<NamespaceRef> {
    using R = NamespaceRef;

public:
    using ProxyBase<R>::ProxyBase;
    /// Python's ns.name; AttributeError if unset.
    object getattr(const std::string& name) const { return _call_exposed_<&R::getattr>("__getattribute__", name); }
    /// Python's ns.name = value.
    void setattr(const std::string& name, const object& v) const { _call_exposed_<&R::setattr>("__setattr__", name, v); }
    /// Python's del ns.name.
    void delattr(const std::string& name) const { _call_exposed_<&R::delattr>("__delattr__", name); }
    bool hasattr(const std::string& name) const { return _call_exposed_<&R::hasattr>("hasattr", name); }
    static auto _exposed_() {
        using detail::method_desc;
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

namespace detail {

/// Registers a container type with Manager's registry before main(), so a
/// server forked later knows every instantiation the program uses.
template <class Manager, class T>
struct auto_registered {
    static bool add(const char* base) {
        Manager::template register_type<T>(std::string(base) + "[" + multiprocessing::detail::type_name<T>() + "]");
        return true;
    }
    static const bool done;
};

template <class T> struct container_name;
template <class K, class V> struct container_name<Dict<K, V>> { static constexpr const char* value = "dict"; };
template <class T> struct container_name<List<T>> { static constexpr const char* value = "list"; };
template <class T> struct container_name<Set<T>> { static constexpr const char* value = "set"; };
template <class T> struct container_name<ValueRef<T>> { static constexpr const char* value = "Value"; };
template <class T> struct container_name<ArrayRef<T>> { static constexpr const char* value = "Array"; };
template <> struct container_name<NamespaceRef> { static constexpr const char* value = "Namespace"; };

template <class Manager, class T>
const bool auto_registered<Manager, T>::done = auto_registered<Manager, T>::add(container_name<T>::value);

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
