// Out-of-line members of the classes in <multiprocessing/detail/pickle.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/detail/pickle.hpp"

namespace multiprocessing::detail::pickle::detail_ {

MULTIPROCESSING_DECL value reader::run() {
    if (in_.size() > 0xffffffffu) fail("a pickle larger than 4 GiB");
    for (;;) {
        if (pos_ >= in_.size()) fail("pickle data was truncated (no STOP)");
        auto op = static_cast<unsigned char>(in_[pos_++]);
        if (op == '.') break;
        step(op);
    }
    if (stack_.size() != 1 || !marks_.empty()) fail("STOP with " + std::to_string(stack_.size()) + " items on the stack");
    if (pos_ != in_.size()) fail("data after STOP");
    spend(arena_.size());
    on_path_.assign(arena_.size(), 0);
    return materialize(stack_.back(), 0);
}

MULTIPROCESSING_DECL void reader::spend(std::size_t bytes) {
    spent_ += bytes;
    if (spent_ > lim_.max_expansion * in_.size() + 65536)
        fail("the value would take more than " + std::to_string(lim_.max_expansion) +
             "x the input's size to build (shared references expand beyond the limit)");
}

MULTIPROCESSING_DECL std::string_view reader::take(std::uint64_t n) {
    if (n > in_.size() - pos_) fail("pickle data was truncated (an item declares " + std::to_string(n) + " bytes, " +
                                    std::to_string(in_.size() - pos_) + " remain)");
    auto s = in_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
}

MULTIPROCESSING_DECL std::uint64_t reader::le(std::size_t n) {
    auto s = take(n);
    std::uint64_t v = 0;
    for (std::size_t k = n; k-- > 0;) v = (v << 8) | static_cast<unsigned char>(s[k]);
    return v;
}

MULTIPROCESSING_DECL std::string_view reader::line() {
    auto e = in_.find('\n', pos_);
    if (e == std::string_view::npos) fail("pickle data was truncated (no end of line)");
    auto s = in_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
}

MULTIPROCESSING_DECL auto reader::add(node n) -> index {
    spend(sizeof(node) + 8);  // the deque's block pointers and slack, about
    arena_.push_back(n);
    return static_cast<index>(arena_.size() - 1);
}

MULTIPROCESSING_DECL auto reader::shared(std::optional<index>& slot, node n) -> index {
    if (!slot) slot = n.k == K::tuple ? container(K::tuple, {}) : add(n);
    return *slot;
}

MULTIPROCESSING_DECL auto reader::scalar(K k, std::int64_t i) -> index {
    node n;
    n.k = k;
    n.i = i;
    return add(n);
}

MULTIPROCESSING_DECL auto reader::text(K k, std::string_view s) -> index {
    node n;
    n.k = k;
    n.s = s;
    return add(n);
}

MULTIPROCESSING_DECL auto reader::grow(node& n, std::size_t more) -> std::vector<index>& {
    if (n.list == 0) n.list = new_list({});
    auto& l = lists_[n.list];
    if (l.size() + more > l.capacity()) spend(sizeof(index) * std::max(l.size() + more, 2 * l.capacity()));
    return l;
}

MULTIPROCESSING_DECL auto reader::new_list(std::vector<index> kids) -> index {
    spend(sizeof(std::vector<index>) + 8 + (kids.capacity() ? 16 + sizeof(index) * kids.capacity() : 0));
    lists_.push_back(std::move(kids));
    return static_cast<index>(lists_.size() - 1);
}

MULTIPROCESSING_DECL auto reader::container(K k, std::vector<index> kids) -> index {
    node n;
    n.k = k;
    n.list = kids.empty() ? 0 : new_list(std::move(kids));
    return add(n);
}

MULTIPROCESSING_DECL void reader::push(index idx) {
    if (stack_.size() == stack_.capacity()) spend(sizeof(index) * stack_.capacity() * 2 + 64);
    stack_.push_back(idx);
}

MULTIPROCESSING_DECL auto reader::pop() -> index {
    if (stack_.size() <= floor()) fail("stack underflow");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
}

MULTIPROCESSING_DECL auto reader::top() -> index {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
}

MULTIPROCESSING_DECL auto reader::pop_mark() -> std::vector<index> {
    if (marks_.empty()) fail("no MARK on the stack");
    auto from = stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back());
    spend(sizeof(index) * static_cast<std::size_t>(stack_.end() - from));
    std::vector<index> items(from, stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
}

MULTIPROCESSING_DECL auto reader::as(index idx, K k, const char* op) -> node& {
    auto& n = arena_[idx];
    if (n.k != k) fail(std::string(op) + " on a value that is not a " + kind_name(k));
    return n;
}

MULTIPROCESSING_DECL const char* reader::kind_name(K k) {
    static const char* const names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple",
                                        "list", "dict", "set", "frozenset", "global", "instance"};
    return names[static_cast<int>(k)];
}

MULTIPROCESSING_DECL void reader::append(index target, K k, const char* op, const std::vector<index>& items) {
    auto& l = grow(as(target, k, op), items.size());
    l.insert(l.end(), items.begin(), items.end());
}

MULTIPROCESSING_DECL void reader::str_item(std::string_view s) {
    if (!valid_utf8(s)) fail("a str is not valid UTF-8");
    push(text(K::str, s));
}

MULTIPROCESSING_DECL std::string_view reader::own(std::string s) {
    spend(s.size() + sizeof(std::string) + 24);
    owned_.push_back(std::move(s));
    return owned_.back();
}

MULTIPROCESSING_DECL void reader::memo_put(std::uint64_t key) {
    auto idx = top();
    if (memo_.insert_or_assign(key, idx).second) spend(48);  // a hash node, about
}

MULTIPROCESSING_DECL void reader::memo_get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
    push(it->second);
}

MULTIPROCESSING_DECL std::int64_t reader::text_int(std::string_view t, bool is_long) {
    if (is_long && !t.empty() && t.back() == 'L') t.remove_suffix(1);
    bool neg = !t.empty() && t[0] == '-';
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.remove_prefix(1);
    if (t.empty() || t.size() > 19) fail(t.empty() ? "an empty integer" : "an int beyond 64 bits");
    std::uint64_t v = 0;
    for (char c : t) {
        if (c < '0' || c > '9') fail("a malformed integer");
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > static_cast<std::uint64_t>(INT64_MAX) + (neg ? 1 : 0)) fail("an int beyond 64 bits");
    return neg ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
}

MULTIPROCESSING_DECL std::int64_t reader::c_int(std::string_view t) {
    std::string s(t);
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(s.c_str(), &end, 0);
    if (s.empty() || end != s.c_str() + s.size()) fail("a malformed integer");
    if (errno == ERANGE) fail("an int beyond 64 bits");
    return x;
}

MULTIPROCESSING_DECL std::int64_t reader::py_int(std::string_view t) {
    if (!t.empty() && t.back() == 'L') t.remove_suffix(1);
    bool neg = !t.empty() && t[0] == '-';
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.remove_prefix(1);
    int base = 10;
    if (t.size() > 2 && t[0] == '0' && std::strchr("xXoObB", t[1])) {
        base = (t[1] | 0x20) == 'x' ? 16 : (t[1] | 0x20) == 'o' ? 8 : 2;
        t.remove_prefix(2);
    } else if (t.size() > 1 && t[0] == '0' && t.find_first_not_of('0') != std::string_view::npos) {
        fail("a malformed integer (leading zeros)");
    }
    std::uint64_t v = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), v, base);
    if (r.ec == std::errc::result_out_of_range) fail("an int beyond 64 bits");
    if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size()) fail("a malformed integer");
    if (v > static_cast<std::uint64_t>(INT64_MAX) + (neg ? 1 : 0)) fail("an int beyond 64 bits");
    return neg ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
}

MULTIPROCESSING_DECL void reader::long_bytes(std::uint64_t n) {
    auto s = take(n);
    if (n == 0) { push(scalar(K::integer, 0)); return; }
    unsigned sign = static_cast<unsigned char>(s[s.size() - 1]) & 0x80 ? 0xff : 0x00;
    for (std::size_t k = 8; k < s.size(); ++k)
        if (static_cast<unsigned char>(s[k]) != sign) fail("an int beyond 64 bits");
    if (s.size() > 8 && ((static_cast<unsigned char>(s[7]) & 0x80) ? 0xffu : 0u) != sign) fail("an int beyond 64 bits");
    std::uint64_t v = 0;
    std::size_t used = std::min<std::size_t>(s.size(), 8);
    for (std::size_t k = used; k-- > 0;) v = (v << 8) | static_cast<unsigned char>(s[k]);
    if (used < 8 && sign) v |= ~std::uint64_t(0) << (8 * used);  // sign-extend
    push(scalar(K::integer, static_cast<std::int64_t>(v)));
}

MULTIPROCESSING_DECL void reader::global(std::string_view module, std::string_view name) {
    // CPython decodes both as UTF-8; a name kept as bytes here would be
    // written back as a str no reader accepts.
    if (!valid_utf8(module) || !valid_utf8(name)) fail("a global name is not valid UTF-8");
    module = py3_module(module);  // a static string, or a view of the input
    if (module.find_first_of(" \n") != std::string_view::npos || name.find_first_of(" \n") != std::string_view::npos)
        fail("a global name with a space or newline");
    auto allowed = lim_.allowed ? lim_.allowed : allow_manager_globals;
    if (!allowed(module, name))
        fail("global '" + std::string(module) + "." + std::string(name) + "' is forbidden");
    auto idx = container(K::global, {text(K::str, module), text(K::str, name)});
    push(idx);
}

MULTIPROCESSING_DECL void reader::reduce(index cls, index args, bool newobj) {
    const char* op = newobj ? "NEWOBJ" : "REDUCE";
    if (arena_[cls].k != K::global) fail(std::string(op) + " of a value that is not a global");
    const auto& gl = lists_[arena_[cls].list];
    std::string_view module = arena_[gl[0]].s, name = arena_[gl[1]].s;
    const std::vector<index>& argv = lists_[as(args, K::tuple, op).list];  // a deque: stays put
    auto arg = [&](std::size_t k) -> const node& { return arena_[argv[k]]; };
    bool builtin = module == "builtins";
    if (builtin && (name == "set" || name == "frozenset") && argv.size() <= 1 && !newobj) {
        std::vector<index> kids;
        if (argv.size() == 1) {
            if (arg(0).k != K::list && arg(0).k != K::tuple) fail("set() of a non-sequence");
            kids = lists_[arg(0).list];
        }
        push(container(name == "set" ? K::set : K::frozenset, std::move(kids)));
        return;
    }
    if ((builtin && (name == "bytearray" || name == "bytes")) || (module == "_codecs" && name == "encode")) {
        // bytearray(b'..'), bytes(), or _codecs.encode('\xff...', 'latin1'): bytes.
        if (argv.empty()) {
            push(text(K::bytes, {}));
        } else if (arg(0).k == K::bytes && argv.size() == 1) {
            push(text(K::bytes, arg(0).s));
        } else if (arg(0).k == K::str && argv.size() == 2 && arg(1).k == K::str &&
                   (arg(1).s == "latin1" || arg(1).s == "latin-1")) {
            auto s = arg(0).s;  // code points below 256, UTF-8 encoded
            std::string out;
            for (std::size_t k = 0; k < s.size(); ++k) {
                auto ch = static_cast<unsigned char>(s[k]);
                if (ch < 0x80) out += static_cast<char>(ch);
                else if ((ch == 0xc2 || ch == 0xc3) && k + 1 < s.size())
                    out += static_cast<char>(((ch & 0x03) << 6) | (static_cast<unsigned char>(s[++k]) & 0x3f));
                else fail("latin-1 bytes with a code point above 255");
            }
            push(text(K::bytes, own(std::move(out))));
        } else {
            fail("unsupported arguments to " + std::string(name));
        }
        return;
    }
    auto idx = container(K::instance, {cls, args});
    arena_[idx].newobj = newobj;
    push(idx);
}

MULTIPROCESSING_DECL void reader::step(unsigned char op) {
    switch (op) {
        case 0x80: {  // PROTO
            auto p = le(1);
            if (p > 5) fail("unsupported pickle protocol: " + std::to_string(p));
            break;
        }
        case 0x95: le(8); break;  // FRAME: a hint only; the data follows inline
        case '(':
            if (marks_.size() == marks_.capacity()) spend(sizeof(std::size_t) * marks_.capacity() * 2 + 64);
            marks_.push_back(stack_.size());
            break;
        case '0':  // POP: at a MARK, pops the mark itself (as CPython does)
            if (!marks_.empty() && stack_.size() == marks_.back()) marks_.pop_back();
            else pop();
            break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        case 'N': push(shared(none_, node{})); break;
        case 0x88: case 0x89: {
            node n;
            n.k = K::boolean;
            n.b = op == 0x88;
            push(shared(n.b ? true_ : false_, n));
            break;
        }
        case 'I': {  // C's strtol(s, 0), as CPython reads it: 010 is 8, 0x10 is 16
            auto t = line();
            auto x = c_int(t);
            if (t.size() == 2 && (x == 0 || x == 1)) step(x ? 0x88 : 0x89);  // "01", "00": protocol 0's bools
            else push(scalar(K::integer, x));
            break;
        }
        case 'L': push(scalar(K::integer, py_int(line()))); break;
        case 'J': push(scalar(K::integer, static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4))))); break;
        case 'K': push(scalar(K::integer, static_cast<std::int64_t>(le(1)))); break;
        case 'M': push(scalar(K::integer, static_cast<std::int64_t>(le(2)))); break;
        case 0x8a: long_bytes(le(1)); break;
        case 0x8b: {
            auto n = le(4);
            if (n & 0x80000000u) fail("LONG4 with a negative byte count");
            long_bytes(n);
            break;
        }
        case 'F': case 'G': {
            double d;
            if (op == 'F') {  // from_chars: the "C" locale's format, whatever the program's locale
                auto t = line();
                if (!t.empty() && t[0] == '+') t.remove_prefix(1);
                auto r = std::from_chars(t.data(), t.data() + t.size(), d);
                if (r.ec == std::errc::result_out_of_range) fail("a float out of range");
                if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size()) fail("a malformed float");
            } else {
                auto bits = le(0);  // BINFLOAT is big-endian
                for (char ch : take(8)) bits = (bits << 8) | static_cast<unsigned char>(ch);
                std::memcpy(&d, &bits, sizeof d);
            }
            node n;
            n.k = K::floating;
            n.f = d;
            push(add(n));
            break;
        }
        case 'X': str_item(take(le(4))); break;
        case 0x8c: str_item(take(le(1))); break;
        case 0x8d: str_item(take(le(8))); break;
        case 'T': case 'U': {  // Python 2 str: ASCII text in Python 3
            auto s = take(op == 'T' ? le(4) : le(1));
            for (char ch : s)
                if (static_cast<unsigned char>(ch) >= 0x80) fail("a Python 2 str that is not ASCII");
            push(text(K::str, s));
            break;
        }
        case 'B': push(text(K::bytes, take(le(4)))); break;
        case 'C': push(text(K::bytes, take(le(1)))); break;
        case 0x8e: case 0x96: push(text(K::bytes, take(le(8)))); break;  // BINBYTES8, BYTEARRAY8
        case ')': push(shared(empty_tuple_, [] { node n; n.k = K::tuple; return n; }())); break;
        case 't': push(container(K::tuple, pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {
            std::size_t n = op - 0x84u;
            std::vector<index> kids(n);
            for (std::size_t k = n; k-- > 0;) kids[k] = pop();
            push(container(K::tuple, std::move(kids)));
            break;
        }
        case ']': push(container(K::list, {})); break;
        case 'l': push(container(K::list, pop_mark())); break;
        case 'a': { auto item = pop(); append(top(), K::list, "APPEND", {item}); break; }
        case 'e': { auto items = pop_mark(); append(top(), K::list, "APPENDS", items); break; }
        case '}': push(container(K::dict, {})); break;
        case 'd': {
            auto items = pop_mark();
            if (items.size() % 2) fail("DICT with an odd number of items");
            push(container(K::dict, std::move(items)));
            break;
        }
        case 's': { auto v = pop(); auto k = pop(); append(top(), K::dict, "SETITEM", {k, v}); break; }
        case 'u': {
            auto items = pop_mark();
            if (items.size() % 2) fail("SETITEMS with an odd number of items");
            append(top(), K::dict, "SETITEMS", items);
            break;
        }
        case 0x8f: push(container(K::set, {})); break;
        case 0x90: { auto items = pop_mark(); append(top(), K::set, "ADDITEMS", items); break; }
        case 0x91: push(container(K::frozenset, pop_mark())); break;
        case 'c': {
            auto module = line();
            auto name = line();
            global(module, name);
            break;
        }
        case 0x93: {
            auto name = pop();
            auto module = pop();
            if (arena_[module].k != K::str || arena_[name].k != K::str) fail("STACK_GLOBAL of a non-str");
            global(arena_[module].s, arena_[name].s);
            break;
        }
        case 'R': { auto args = pop(); auto cls = pop(); reduce(cls, args, false); break; }
        case 0x81: { auto args = pop(); auto cls = pop(); reduce(cls, args, true); break; }
        case 0x92: {  // NEWOBJ_EX: keyword arguments are not supported
            auto kw = pop();
            auto args = pop();
            auto cls = pop();
            if (!lists_[as(kw, K::dict, "NEWOBJ_EX").list].empty()) fail("NEWOBJ_EX with keyword arguments");
            reduce(cls, args, true);
            break;
        }
        case 'b': {
            auto state = pop();
            auto& obj = as(top(), K::instance, "BUILD");
            if (lists_[obj.list].size() > 2) fail("BUILD twice on one instance");
            grow(obj, 1).push_back(state);
            break;
        }
        case 'p': {
            auto key = text_int(line(), false);
            if (key < 0) fail("a negative PUT argument");
            memo_put(static_cast<std::uint64_t>(key));
            break;
        }
        case 'q': memo_put(le(1)); break;
        case 'r': memo_put(le(4)); break;
        case 0x94: memo_put(memo_.size()); break;
        case 'g': memo_get(static_cast<std::uint64_t>(text_int(line(), false))); break;
        case 'h': memo_get(le(1)); break;
        case 'j': memo_get(le(4)); break;
        default: {
            static const char hex[] = "0123456789abcdef";
            std::string h = "0x";
            h += hex[op >> 4];
            h += hex[op & 15];
            fail("unsupported opcode " + h +
                 (op == 'P' || op == 'Q' ? " (persistent ids)" : op == 0x97 || op == 0x98 ? " (out-of-band buffers)"
                  : op == 'i' || op == 'o' ? " (INST/OBJ)" : op >= 0x82 && op <= 0x84 ? " (extension registry)"
                  : op == 'V' ? " (protocol 0 text str)" : ""));
        }
    }
}

MULTIPROCESSING_DECL value reader::materialize(index idx, std::size_t depth) {
    if (depth > lim_.max_depth) fail("nested deeper than " + std::to_string(lim_.max_depth) + " levels");
    if (on_path_[idx]) fail("a recursive structure (a container holds itself)");
    const node& n = arena_[idx];
    // What the value allocates (its string, or its array of items, with
    // malloc's 16-byte header), before it does; the value itself is in
    // its parent's array, counted there.
    spend(n.s.size() > 15 ? n.s.size() + 17 : 0);
    value out;
    out.k = n.k;
    out.newobj = n.newobj;
    switch (n.k) {
        case K::boolean: out.b = n.b; return out;
        case K::integer: out.i = n.i; return out;
        case K::floating: out.f = n.f; return out;
        case K::str: case K::bytes: out.s = std::string(n.s); return out;
        case K::none: return out;
        case K::global: {
            const auto& l = lists_[n.list];
            std::size_t len = arena_[l[0]].s.size() + arena_[l[1]].s.size() + 1;
            spend(len > 15 ? len + 17 : 0);
            return value::global(arena_[l[0]].s, arena_[l[1]].s);
        }
        default: break;
    }
    on_path_[idx] = 1;
    const auto& kids = lists_[n.list];
    if (!kids.empty()) spend(16 + kids.size() * sizeof(value));
    out.items.reserve(kids.size());
    for (auto kid : kids) out.items.push_back(materialize(kid, depth + 1));
    on_path_[idx] = 0;
    return out;
}

}  // namespace multiprocessing::detail::pickle::detail_

namespace multiprocessing::detail::pickle::detail_ {

MULTIPROCESSING_DECL void writer::put(const value& v, std::size_t depth) {
    using K = value::kind;
    if (depth > max_depth_) throw PicklingError("pickle: nested deeper than " + std::to_string(max_depth_) + " levels");
    switch (v.k) {
        case K::none: out += 'N'; break;
        case K::boolean: out += static_cast<char>(v.b ? 0x88 : 0x89); break;
        case K::integer: integer(v.i); break;
        case K::floating: {
            std::uint64_t bits;
            std::memcpy(&bits, &v.f, sizeof bits);
            out += 'G';
            for (int k = 7; k >= 0; --k) out += static_cast<char>(bits >> (8 * k));
            break;
        }
        case K::str:
            if (!valid_utf8(v.s)) throw PicklingError("pickle: a str that is not valid UTF-8");
            sized(v.s, 0x8c, 'X', 0x8d);
            break;
        case K::bytes: sized(v.s, 'C', 'B', 0x8e); break;
        case K::tuple:
            if (v.items.empty()) { out += ')'; break; }
            if (v.items.size() > 3) out += '(';
            for (auto& x : v.items) put(x, depth + 1);
            out += v.items.size() > 3 ? 't' : static_cast<char>(0x84 + v.items.size());
            break;
        case K::list: batched(v.items, ']', 'e', depth, 1); break;
        case K::dict:
            if (v.items.size() % 2) throw PicklingError("pickle: a dict with an odd number of items");
            batched(v.items, '}', 'u', depth, 2);
            break;
        case K::set: batched(v.items, static_cast<char>(0x8f), static_cast<char>(0x90), depth, 1); break;
        case K::frozenset:
            out += '(';
            for (auto& x : v.items) put(x, depth + 1);
            out += static_cast<char>(0x91);
            break;
        case K::global: {
            auto p = v.s.find(' ');
            if (p == std::string::npos) throw PicklingError("pickle: a global without a name");
            sized(v.s.substr(0, p), 0x8c, 'X', 0x8d);
            sized(v.s.substr(p + 1), 0x8c, 'X', 0x8d);
            out += static_cast<char>(0x93);
            break;
        }
        case K::instance:
            if (v.items.size() < 2 || v.items.size() > 3 || v.items[0].k != K::global || v.items[1].k != K::tuple)
                throw PicklingError("pickle: an instance needs a global, an args tuple and at most a state");
            put(v.items[0], depth + 1);
            put(v.items[1], depth + 1);
            out += v.newobj ? static_cast<char>(0x81) : 'R';
            if (v.items.size() == 3) {
                put(v.items[2], depth + 1);
                out += 'b';
            }
            break;
    }
}

MULTIPROCESSING_DECL void writer::le(std::uint64_t v, int n) {
    for (int k = 0; k < n; ++k) out += static_cast<char>(v >> (8 * k));
}

MULTIPROCESSING_DECL void writer::integer(std::int64_t i) {
    if (i >= 0 && i < 256) { out += 'K'; le(static_cast<std::uint64_t>(i), 1); }
    else if (i >= 0 && i < 65536) { out += 'M'; le(static_cast<std::uint64_t>(i), 2); }
    else if (i >= INT32_MIN && i <= INT32_MAX) { out += 'J'; le(static_cast<std::uint64_t>(i), 4); }
    else {
        // LONG1: the fewest little-endian two's-complement bytes.
        int n = 8;
        auto u = static_cast<std::uint64_t>(i);
        while (n > 1) {
            auto top = (u >> (8 * (n - 1))) & 0xff, next_sign = (u >> (8 * (n - 1) - 1)) & 1;
            if ((top == 0 && !next_sign) || (top == 0xff && next_sign)) --n;
            else break;
        }
        out += static_cast<char>(0x8a);
        out += static_cast<char>(n);
        le(u, n);
    }
}

MULTIPROCESSING_DECL void writer::sized(const std::string& s, unsigned char op1, unsigned char op4, unsigned char op8) {
    if (s.size() < 256) { out += static_cast<char>(op1); le(s.size(), 1); }
    else if (s.size() <= 0xffffffffu) { out += static_cast<char>(op4); le(s.size(), 4); }
    else { out += static_cast<char>(op8); le(s.size(), 8); }
    out += s;
}

MULTIPROCESSING_DECL void writer::batched(const std::vector<value>& items, char empty, char add, std::size_t depth, std::size_t stride) {
    out += empty;
    for (std::size_t k = 0; k < items.size(); k += 1000 * stride) {
        out += '(';
        for (std::size_t j = k; j < items.size() && j < k + 1000 * stride; ++j) put(items[j], depth + 1);
        out += add;
    }
}

}  // namespace multiprocessing::detail::pickle::detail_

namespace multiprocessing::detail::pickle {

MULTIPROCESSING_DECL value value::global(std::string_view module, std::string_view name) {
    value x;
    x.k = kind::global;
    x.s.append(module).append(1, ' ').append(name);
    return x;
}

MULTIPROCESSING_DECL value value::instance(value cls, value args, bool newobj , const value* state) {
    value x;
    x.k = kind::instance;
    x.newobj = newobj;
    x.items.push_back(std::move(cls));
    x.items.push_back(std::move(args));
    if (state) x.items.push_back(*state);
    return x;
}

}  // namespace multiprocessing::detail::pickle
