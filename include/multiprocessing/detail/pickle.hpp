// CPython's pickle format, for the values a manager carries: a reader for
// protocols 2-5, and 0-1 but for their text str (UNICODE), and for data
// after STOP or left on the stack, which CPython ignores (the opcodes
// CPython 3.13 writes for None, bool, int, float,
// str, bytes, bytearray, tuple, list, dict, set, frozenset and reduced
// instances such as Token or KeyError('k')) and a protocol-4 writer.
//
// Nothing in a pickle is executed: a global is only named, and only if the
// caller's allowlist has it; a REDUCE or NEWOBJ of it becomes an `instance`
// value (class, args, state) that the caller interprets.  The reader works
// in an arena (children are indices), so shared and even recursive
// references cost nothing while reading; materializing the result copies
// shared parts, refuses cycles, bounds the depth, and counts every byte it
// allocates against a multiple of the input size (limits::max_expansion),
// so a small pickle cannot expand into a large tree (the "billion laughs"
// of memo references).
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/exceptions.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace multiprocessing::detail::pickle {

/// pickle.UnpicklingError: the input is not a pickle this reader accepts.
class UnpicklingError : public ValueError {
public:
    using ValueError::ValueError;
};

/// pickle.PicklingError: the value cannot be written as a pickle.
class PicklingError : public ValueError {
public:
    using ValueError::ValueError;
};

/// One unpickled value, as a tree.  dict items are flat (k0, v0, k1, v1...)
/// in the pickle's order, and set items as the pickle lists them (a forged
/// pickle may repeat a key; to_object keeps the last, as Python does); a global names "module name" (a space between, as in
/// the GLOBAL opcode); an instance has items {global, args tuple} and, if
/// the pickle BUILDs it, a third item, its state.
struct value {
    enum class kind : std::uint8_t {
        none, boolean, integer, floating, str, bytes, tuple, list, dict, set, frozenset, global, instance
    };
    kind k = kind::none;
    bool newobj = false;  // instance made by NEWOBJ (cls.__new__), not REDUCE (a call)
    bool b = false;
    union {
        std::int64_t i = 0;
        double f;
    };
    std::string s;  // str (UTF-8), bytes, or a global's "module name"
    std::vector<value> items;

    static value none_() { return {}; }
    static value boolean(bool v) { value x; x.k = kind::boolean; x.b = v; return x; }
    static value integer(std::int64_t v) { value x; x.k = kind::integer; x.i = v; return x; }
    static value floating(double v) { value x; x.k = kind::floating; x.f = v; return x; }
    static value str(std::string v) { value x; x.k = kind::str; x.s = std::move(v); return x; }
    static value bytes(std::string v) { value x; x.k = kind::bytes; x.s = std::move(v); return x; }
    static value seq(kind k, std::vector<value> items) { value x; x.k = k; x.items = std::move(items); return x; }
    static value tuple(std::vector<value> items) { return seq(kind::tuple, std::move(items)); }
    static value global(std::string_view module, std::string_view name);
    /// cls(*args), or with newobj cls.__new__(cls, *args); state as BUILD gives it.
    static value instance(value cls, value args, bool newobj = false, const value* state = nullptr);
    std::string_view module() const { return std::string_view(s).substr(0, s.find(' ')); }
    std::string_view name() const { auto p = s.find(' '); return std::string_view(s).substr(p + 1); }
    /// For an instance: its class's global.
    const value& cls() const { return items.at(0); }
    const value& args() const { return items.at(1); }
    bool has_state() const { return items.size() > 2; }
    const value& state() const { return items.at(2); }

    /// Structural equality; floats compare by bit pattern (a NaN equals itself),
    /// so a round trip can be checked exactly.
    friend bool operator==(const value& a, const value& b) {
        if (a.k != b.k || a.newobj != b.newobj) return false;
        switch (a.k) {
            case kind::none: return true;
            case kind::boolean: return a.b == b.b;
            case kind::integer: return a.i == b.i;
            case kind::floating: return std::memcmp(&a.f, &b.f, sizeof a.f) == 0;
            case kind::str: case kind::bytes: case kind::global: return a.s == b.s;
            default: return a.items == b.items;
        }
    }
    friend bool operator!=(const value& a, const value& b) { return !(a == b); }
};

/// What the reader accepts.  `allowed` decides which globals a pickle may
/// name (Python's Unpickler.find_class); the default, allow_manager_globals,
/// takes only what manager messages need.
struct limits {
    std::function<bool(std::string_view module, std::string_view name)> allowed;
    std::size_t max_depth = 512;  // nesting of the materialized tree
    /// All the reader allocates (its arena, and the tree it returns, with
    /// shared parts copied) stays below this many bytes per input byte, plus
    /// 64 KiB.  A list of Nones needs ~80 (each None becomes a 72-byte value);
    /// a list of one string repeated by reference needs that string's size.
    std::size_t max_expansion = 160;
};

/// The globals a manager message may name: the builtins pickle uses for
/// sets and bytes in old protocols, the builtin exception types, and the
/// manager's own Token, RemoteError, RebuildProxy and proxy types.
inline bool allow_manager_globals(std::string_view module, std::string_view name) {
    if (module == "builtins") {
        static const char* const ok[] = {
            "set", "frozenset", "bytearray", "bytes", "complex", "Exception", "BaseException", "ArithmeticError",
            "AssertionError", "AttributeError", "BufferError", "EOFError", "FloatingPointError", "ImportError",
            "IndexError", "KeyError", "LookupError", "MemoryError", "NameError", "NotImplementedError", "OSError",
            "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "SystemError", "TypeError",
            "UnboundLocalError", "UnicodeError", "ValueError", "ZeroDivisionError", "ConnectionError",
            "BrokenPipeError", "ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError",
            "FileExistsError", "FileNotFoundError", "InterruptedError", "PermissionError", "TimeoutError",
            "ProcessLookupError", "ChildProcessError", "IsADirectoryError", "NotADirectoryError"};
        for (const char* n : ok)
            if (name == n) return true;
        return false;
    }
    if (module == "_codecs") return name == "encode";
    if (module == "multiprocessing.managers")
        return name == "Token" || name == "RemoteError" || name == "RebuildProxy" || name == "AutoProxy" ||
               (name.size() > 5 && name.size() <= 64 && name.substr(name.size() - 5) == "Proxy" &&
                name.find_first_of(". ") == std::string_view::npos);
    if (module == "multiprocessing.context" || module == "multiprocessing") return name == "AuthenticationError";
    return false;
}

namespace detail_ {

// Python 2 module names that protocols 0-2 write (Python's fix_imports).
inline std::string_view py3_module(std::string_view m) {
    if (m == "__builtin__" || m == "exceptions") return "builtins";
    if (m == "copy_reg") return "copyreg";
    return m;
}

// UTF-8 as CPython's unpickler decodes it ("surrogatepass": encoded
// surrogates allowed, nothing else malformed, nothing above U+10FFFF).
inline bool valid_utf8(std::string_view s) {
    std::size_t i = 0, n = s.size();
    while (i < n) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) { ++i; continue; }
        std::size_t len;
        std::uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        else return false;
        if (n - i < len) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return false;
        i += len;
    }
    return true;
}

class reader {
public:
    reader(std::string_view in, const limits& lim) : in_(in), lim_(lim) { lists_.emplace_back(); }

    value run();

private:
    using K = value::kind;
    using index = std::uint32_t;  // nodes number fewer than input bytes, which are below 4 GiB
    // A node of the arena: 32 bytes.  Text and bytes are views of the input
    // (or of owned_, for what the reader decodes); children are a list in
    // lists_, shared by nothing else.
    struct node {
        K k = K::none;
        bool newobj = false, b = false;
        index list = 0;  // containers, globals {module, name}, instances {cls, args[, state]}
        union {
            std::int64_t i = 0;
            double f;
        };
        std::string_view s;
    };

    [[noreturn]] static void fail(const std::string& why) { throw UnpicklingError("pickle: " + why); }

    // What the reader allocates is counted before it is allocated.
    void spend(std::size_t bytes);

    std::string_view take(std::uint64_t n);
    std::uint64_t le(std::size_t n);
    std::string_view line();

    index add(node n);
    // None, True, False and () are immutable: one node each, shared, so a
    // list of them costs its slots (CPython writes each as one byte).
    index shared(std::optional<index>& slot, node n);
    index scalar(K k, std::int64_t i);
    index text(K k, std::string_view s);
    // A list's vector grows by doubling: count what it may hold.
    // An empty container shares list 0 (a list of empty lists costs no list
    // each); it gets a list of its own when something is added.
    std::vector<index>& grow(node& n, std::size_t more);
    index new_list(std::vector<index> kids);
    index container(K k, std::vector<index> kids);
    void push(index idx);
    index pop();
    index top();
    std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    std::vector<index> pop_mark();
    node& as(index idx, K k, const char* op);
    static const char* kind_name(K k);
    void append(index target, K k, const char* op, const std::vector<index>& items);
    void str_item(std::string_view s);
    std::string_view own(std::string s);
    void memo_put(std::uint64_t key);
    void memo_get(std::uint64_t key);
    std::int64_t text_int(std::string_view t, bool is_long);
    // 'I': C's strtoll with base 0 (decimal, 0-prefixed octal, 0x hex).
    std::int64_t c_int(std::string_view t);
    // 'L': a Python int literal (base 0: 0x, 0o, 0b prefixes; no leading
    // zeros on a decimal), with the trailing L protocol 0 wrote.
    std::int64_t py_int(std::string_view t);
    // LONG1/LONG4: little-endian two's complement.  CPython writes no
    // redundant bytes, but a reader accepts them: what matters is the value.
    void long_bytes(std::uint64_t n);
    void global(std::string_view module, std::string_view name);
    // cls(*args): the builtins pickle uses for data become that data; any
    // other allowed global becomes an instance.
    void reduce(index cls, index args, bool newobj);

    void step(unsigned char op);

    value materialize(index idx, std::size_t depth);

    std::string_view in_;
    const limits& lim_;
    std::size_t pos_ = 0;
    std::deque<node> arena_;
    std::deque<std::vector<index>> lists_;
    std::deque<std::string> owned_;
    std::vector<index> stack_;
    std::vector<std::size_t> marks_;
    std::unordered_map<std::uint64_t, index> memo_;
    std::vector<char> on_path_;
    std::size_t spent_ = 0;
    std::optional<index> none_, true_, false_, empty_tuple_;
};

class writer {
public:
    explicit writer(std::size_t max_depth) : max_depth_(max_depth) {}
    std::string out;

    void put(const value& v, std::size_t depth = 0);

private:
    void le(std::uint64_t v, int n);
    void integer(std::int64_t i);
    void sized(const std::string& s, unsigned char op1, unsigned char op4, unsigned char op8);
    // EMPTY_LIST, then MARK ... APPENDS in batches of 1000, as CPython does.
    void batched(const std::vector<value>& items, char empty, char add, std::size_t depth, std::size_t stride);
    std::size_t max_depth_;
};

}  // namespace detail_

/// pickle.loads for manager values: see the file comment.  Throws
/// UnpicklingError, naming what is wrong, on anything it does not accept.
inline value loads(std::string_view data, const limits& lim = {}) { return detail_::reader(data, lim).run(); }

/// pickle.dumps(v, protocol=4), without memo or frames (both optional to a
/// reader).  Throws PicklingError for a str that is not UTF-8 or a
/// malformed instance.
inline std::string dumps(const value& v, std::size_t max_depth = 512) {
    detail_::writer w(max_depth);
    w.out = "\x80\x04";
    w.put(v);
    w.out += '.';
    return std::move(w.out);
}

}  // namespace multiprocessing::detail::pickle

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/pickle.ipp"
#endif
