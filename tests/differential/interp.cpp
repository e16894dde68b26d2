// The C++ side of the differential test (tests/differential/differential.py):
// reads programs of one op per line (fields separated by tabs, values
// written as Python literals), runs them on multiprocessing::object alone
// or on a Manager's untyped dict, list, set, Value and Namespace proxies,
// and prints one line per op: the repr() of its result, or
// "!TypeName: message" for an exception.  A blank line ends a program and
// is answered by "---".
#include <multiprocessing.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace mp = multiprocessing;
using mp::object;

namespace {

// ---- Python literal parser ----

struct parser {
    const std::string& s;
    std::size_t i = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("literal parse error: " + what + " at " + std::to_string(i) + " in " + s);
    }
    void ws() {
        while (i < s.size() && s[i] == ' ') ++i;
    }
    bool eat(const char* lit) {
        ws();
        std::string l(lit);
        if (s.compare(i, l.size(), l) == 0) {
            i += l.size();
            return true;
        }
        return false;
    }
    void expect(const char* lit) {
        if (!eat(lit)) fail(std::string("expected ") + lit);
    }
    static void utf8(std::string& out, std::uint32_t cp) {
        // Surrogates are encoded like any code point (as CPython's
        // "surrogatepass"), so repr() shows them as \udXXX again.
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    std::uint32_t hex(std::size_t n) {
        if (i + n > s.size()) fail("short escape");
        std::uint32_t v = static_cast<std::uint32_t>(std::stoul(s.substr(i, n), nullptr, 16));
        i += n;
        return v;
    }
    std::string quoted(bool is_bytes) {
        char q = s[i++];
        std::string out;
        while (i < s.size() && s[i] != q) {
            char c = s[i++];
            if (c != '\\') {
                out += c;
                continue;
            }
            char e = s[i++];
            switch (e) {
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case '0': out += '\0'; break;
            case '\\': case '\'': case '"': out += e; break;
            case 'x': {
                auto v = hex(2);
                if (is_bytes) out += static_cast<char>(v);
                else utf8(out, v);
                break;
            }
            case 'u': utf8(out, hex(4)); break;
            case 'U': utf8(out, hex(8)); break;
            default: fail(std::string("unknown escape \\") + e);
            }
        }
        if (i >= s.size()) fail("unterminated string");
        ++i;
        return out;
    }
    std::vector<object> seq(char close, bool& trailing_comma) {
        std::vector<object> v;
        trailing_comma = false;
        ws();
        if (i < s.size() && s[i] == close) {
            ++i;
            return v;
        }
        for (;;) {
            v.push_back(value());
            ws();
            if (i < s.size() && s[i] == close) {
                ++i;
                return v;
            }
            expect(",");
            ws();
            if (i < s.size() && s[i] == close) {
                ++i;
                trailing_comma = true;
                return v;
            }
        }
    }
    object value() {
        ws();
        if (i >= s.size()) fail("end of input");
        if (eat("None")) return mp::None;
        if (eat("True")) return true;
        if (eat("False")) return false;
        if (eat("float('nan')")) return std::nan("");
        if (eat("float('inf')")) return HUGE_VAL;
        if (eat("float('-inf')")) return -HUGE_VAL;
        char c = s[i];
        if (c == '\'' || c == '"') return object(quoted(false));
        if (c == 'b' && i + 1 < s.size() && (s[i + 1] == '\'' || s[i + 1] == '"')) {
            ++i;
            return object(mp::bytes{quoted(true)});
        }
        if (c == '(') {
            ++i;
            bool comma;
            auto v = seq(')', comma);
            if (v.size() == 1 && !comma) return v[0];  // (x) is just x
            return object::tuple(std::move(v));
        }
        if (c == '[') {
            ++i;
            bool comma;
            return object::list(seq(']', comma));
        }
        if (c == '{') {
            ++i;
            object d = object::dict();
            ws();
            if (i < s.size() && s[i] == '}') {
                ++i;
                return d;
            }
            for (;;) {
                object k = value();
                expect(":");
                object v = value();
                d.setitem(k, v);  // TypeError for an unhashable key, as Python
                ws();
                if (eat("}")) return d;
                expect(",");
                if (eat("}")) return d;
            }
        }
        // a number
        std::size_t j = i;
        if (s[j] == '-' || s[j] == '+') ++j;
        bool is_float = false;
        while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == 'e' ||
                                s[j] == 'E' || ((s[j] == '-' || s[j] == '+') && (s[j - 1] == 'e' || s[j - 1] == 'E')))) {
            if (s[j] == '.' || s[j] == 'e' || s[j] == 'E') is_float = true;
            ++j;
        }
        if (j == i) fail("unexpected character");
        std::string num = s.substr(i, j - i);
        i = j;
        if (is_float) return std::strtod(num.c_str(), nullptr);
        errno = 0;
        long long v = std::strtoll(num.c_str(), nullptr, 10);
        if (errno == ERANGE) fail("int out of 64-bit range: " + num);
        return object(static_cast<std::int64_t>(v));
    }
};

object parse(const std::string& text) {
    parser p{text};
    object v = p.value();
    p.ws();
    if (p.i != text.size()) p.fail("trailing text");
    return v;
}

std::vector<object> seq_of(const object& o) {
    if (o.type() == object::kind::list || o.type() == object::kind::tuple) return o.items();
    throw mp::TypeError("expected a sequence literal");
}

std::vector<std::pair<object, object>> pairs_of(const object& o) {
    std::vector<std::pair<object, object>> v;
    for (auto& p : seq_of(o)) {
        auto& kv = p.items();
        if (kv.size() != 2) throw mp::ValueError("dictionary update sequence element has wrong length");
        v.emplace_back(kv[0], kv[1]);
    }
    return v;
}

// ---- printing ----

std::string r(const object& o) { return repr(o); }
std::string r(const std::vector<object>& v) { return repr(object::list(v)); }
std::string r(bool b) { return b ? "True" : "False"; }
std::string r(std::size_t n) { return std::to_string(n); }
std::string r(const std::pair<object, object>& kv) { return repr(object::tuple({kv.first, kv.second})); }
std::string r(const std::vector<std::pair<object, object>>& v) {
    std::vector<object> t;
    for (auto& kv : v) t.push_back(object::tuple({kv.first, kv.second}));
    return repr(object::list(t));
}
std::string r(const std::optional<object>& o) { return o ? repr(*o) : "None"; }
template <class P>
std::string str_of(const P& p) {
    std::ostringstream os;
    os << p;
    return os.str();
}

std::string exception_line() {
    try {
        throw;
    } catch (const mp::KeyError& e) { return std::string("!KeyError: ") + e.what();
    } catch (const mp::IndexError& e) { return std::string("!IndexError: ") + e.what();
    } catch (const mp::TypeError& e) { return std::string("!TypeError: ") + e.what();
    } catch (const mp::ValueError& e) { return std::string("!ValueError: ") + e.what();
    } catch (const mp::AttributeError& e) { return std::string("!AttributeError: ") + e.what();
    } catch (const mp::OverflowError& e) { return std::string("!OverflowError: ") + e.what();
    } catch (const mp::managers::RemoteError& e) { return std::string("!RemoteError: ") + e.what();
    } catch (const std::exception& e) { return std::string("!std::exception: ") + e.what();
    }
}

/// "python hash" as the oracle prints it: the value for None, numbers
/// (not nan) and tuples of those; "hashable" for the rest.
bool hash_is_exact(const object& o) {
    switch (o.type()) {
    case object::kind::none: case object::kind::boolean: case object::kind::integer: return true;
    case object::kind::floating: return !std::isnan(o.as_float());
    case object::kind::tuple:
        for (auto& x : o.items())
            if (!hash_is_exact(x)) return false;
        return true;
    default: return false;
    }
}

using Dict = mp::managers::DictProxy<>;
using List = mp::managers::ListProxy<>;
using Set = mp::managers::SetProxy<>;
using Value = mp::managers::ValueProxy<object>;
using Namespace = mp::managers::NamespaceProxy;

struct containers {
    Dict d;
    List l;
    Set s;
    Value v;
    Namespace n;
};

std::string run_object_op(const std::string& op, const std::vector<std::string>& a) {
    auto arg = [&](std::size_t k) { return parse(a.at(k)); };
    if (op == "o.repr") return r(arg(0));
    if (op == "o.eq") return r(arg(0) == arg(1));
    if (op == "o.ne") return r(arg(0) != arg(1));
    if (op == "o.lt") return r(arg(0) < arg(1));
    if (op == "o.le") return r(arg(0) <= arg(1));
    if (op == "o.gt") return r(arg(0) > arg(1));
    if (op == "o.ge") return r(arg(0) >= arg(1));
    if (op == "o.hash") {
        object x = arg(0);
        auto h = mp::detail::py_hash(x);
        return hash_is_exact(x) ? std::to_string(h) : "hashable";
    }
    if (op == "o.hasheq") {
        object x = arg(0), y = arg(1);
        if (!(x == y)) return "ne";
        return r(mp::detail::py_hash(x) == mp::detail::py_hash(y) &&
                 std::hash<object>{}(x) == std::hash<object>{}(y));
    }
    if (op == "o.iadd") {
        object x = arg(0);
        x += arg(1);
        return r(x);
    }
    if (op == "o.add") return r(arg(0) + arg(1));
    if (op == "o.sort") {
        auto v = seq_of(arg(0));
        try {
            mp::detail::timsort(v, [](const object& p, const object& q) { return p < q; });
        } catch (...) {
            return exception_line() + " ~ " + r(v);
        }
        return r(v);
    }
    throw std::runtime_error("unknown op " + op);
}

std::string run_op(containers& c, const std::string& op, const std::vector<std::string>& a) {
    auto arg = [&](std::size_t k) { return parse(a.at(k)); };
    auto none = std::string("None");
    if (op.rfind("o.", 0) == 0) return run_object_op(op, a);
    // dict
    if (op == "d.set") { c.d[arg(0)] = arg(1); return none; }
    if (op == "d.get") return r(c.d.at(arg(0)));
    if (op == "d.del") { c.d.erase(arg(0)); return none; }
    if (op == "d.in") return r(c.d.contains(arg(0)));
    if (op == "d.len") return r(c.d.size());
    if (op == "d.getd") return r(c.d.get(arg(0)));
    if (op == "d.getd2") return r(c.d.get(arg(0), arg(1)));
    if (op == "d.pop") return r(c.d.pop(arg(0)));
    if (op == "d.pop2") return r(c.d.pop(arg(0), arg(1)));
    if (op == "d.popitem") return r(c.d.popitem());
    if (op == "d.setdefault") return r(c.d.setdefault(arg(0)));
    if (op == "d.setdefault2") return r(c.d.setdefault(arg(0), arg(1)));
    if (op == "d.update") { c.d.update(pairs_of(arg(0))); return none; }
    if (op == "d.clear") { c.d.clear(); return none; }
    if (op == "d.keys") return r(c.d.keys());
    if (op == "d.values") return r(c.d.values());
    if (op == "d.items") return r(c.d.items());
    if (op == "d.copy") return c.d.copy().repr();
    if (op == "d.iadd") return r(c.d[arg(0)] += arg(1));
    if (op == "d.print") return str_of(c.d);
    // list
    if (op == "l.append") { c.l.append(arg(0)); return none; }
    if (op == "l.extend") { c.l.extend(seq_of(arg(0))); return none; }
    if (op == "l.iadd") { c.l += seq_of(arg(0)); return none; }
    if (op == "l.insert") { c.l.insert(arg(0).as_int(), arg(1)); return none; }
    if (op == "l.pop") return r(c.l.pop());
    if (op == "l.pop1") return r(c.l.pop(arg(0).as_int()));
    if (op == "l.remove") { c.l.remove(arg(0)); return none; }
    if (op == "l.index") return r(c.l.index(arg(0)));
    if (op == "l.count") return r(c.l.count(arg(0)));
    if (op == "l.in") return r(c.l.contains(arg(0)));
    if (op == "l.reverse") { c.l.reverse(); return none; }
    if (op == "l.sort") { c.l.sort(); return none; }
    if (op == "l.get") return r(c.l.at(arg(0).as_int()));
    if (op == "l.set") { c.l[arg(0).as_int()] = arg(1); return none; }
    if (op == "l.del") { c.l.erase(arg(0).as_int()); return none; }
    if (op == "l.len") return r(c.l.size());
    if (op == "l.slice") return r(c.l.slice(arg(0).as_int(), arg(1).as_int()));
    if (op == "l.imul") { c.l *= arg(0).as_int(); return none; }
    if (op == "l.print") return str_of(c.l);
    // set (Python 3.14's SetProxy; the oracle is a set)
    if (op == "s.add") { c.s.add(arg(0)); return none; }
    if (op == "s.discard") { c.s.discard(arg(0)); return none; }
    if (op == "s.remove") { c.s.remove(arg(0)); return none; }
    if (op == "s.in") return r(c.s.contains(arg(0)));
    if (op == "s.len") return r(c.s.size());
    if (op == "s.clear") { c.s.clear(); return none; }
    if (op == "s.update") { c.s.update(seq_of(arg(0))); return none; }
    if (op == "s.iupdate") { c.s.intersection_update(seq_of(arg(0))); return none; }
    if (op == "s.dupdate") { c.s.difference_update(seq_of(arg(0))); return none; }
    if (op == "s.supdate") { c.s.symmetric_difference_update(seq_of(arg(0))); return none; }
    if (op == "s.issubset") return r(c.s.issubset(seq_of(arg(0))));
    if (op == "s.issuperset") return r(c.s.issuperset(seq_of(arg(0))));
    if (op == "s.isdisjoint") return r(c.s.isdisjoint(seq_of(arg(0))));
    if (op == "s.oprint") {  // CPython's iteration order
        std::string out = "{";
        for (auto& x : c.s.items()) out += (out.size() > 1 ? ", " : "") + repr(x);
        return out + "}";
    }
    if (op == "s.print") {
        std::vector<std::string> reprs;
        for (auto& x : c.s.items()) reprs.push_back(repr(x));
        std::sort(reprs.begin(), reprs.end());  // UTF-8 byte order is code point order
        std::string out = "{";
        for (std::size_t k = 0; k < reprs.size(); ++k) out += (k ? ", " : "") + reprs[k];
        return out + "}";
    }
    // Value
    if (op == "v.set") { c.v.set(arg(0)); return none; }
    if (op == "v.get") return r(c.v.get());
    if (op == "v.iadd") {  // Python's v.value += x: get, add, set
        object x = c.v.get();
        x += arg(0);
        c.v.set(x);
        return r(x);
    }
    // Namespace (names are plain identifiers, not literals)
    if (op == "n.set") { c.n.setattr(a.at(0), arg(1)); return none; }
    if (op == "n.get") return r(c.n.getattr(a.at(0)));
    if (op == "n.del") { c.n.delattr(a.at(0)); return none; }
    if (op == "n.print") return str_of(c.n);
    throw std::runtime_error("unknown op " + op);
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> f;
    std::size_t b = 0;
    for (;;) {
        auto t = line.find('\t', b);
        f.push_back(line.substr(b, t == std::string::npos ? std::string::npos : t - b));
        if (t == std::string::npos) return f;
        b = t + 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // --object: no manager (object-only programs start nothing).
    bool with_manager = !(argc > 1 && std::string(argv[1]) == "--object");
    std::optional<mp::managers::SyncManager> manager;
    if (with_manager) manager.emplace(mp::Manager());
    std::ios::sync_with_stdio(false);
    std::string line;
    std::optional<containers> c;
    auto fresh = [&] {
        if (with_manager)
            c.emplace(containers{manager->dict(), manager->list(), manager->set(),
                                 manager->Value<object>("O", object()), manager->Namespace()});
    };
    fresh();
    while (std::getline(std::cin, line)) {
        if (line.empty()) {
            std::cout << "---\n" << std::flush;
            c.reset();
            fresh();
            continue;
        }
        auto f = split_tabs(line);
        std::vector<std::string> args(f.begin() + 1, f.end());
        std::string out;
        try {
            if (!with_manager && f[0].rfind("o.", 0) != 0) throw std::runtime_error("container op without --manager");
            out = with_manager ? run_op(*c, f[0], args) : run_object_op(f[0], args);
        } catch (...) {
            out = exception_line();
        }
        std::cout << out << "\n";
    }
    std::cout << std::flush;
    c.reset();
    if (manager) manager->shutdown();
    return 0;
}
