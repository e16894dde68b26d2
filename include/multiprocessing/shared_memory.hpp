// Python's multiprocessing.shared_memory: named POSIX shared memory blocks
// (SharedMemory) and a fixed-length list stored in one (ShareableList).
//
// Differences from Python, for the whole header:
//  - There is no resource tracker.  A segment that nobody unlink()s stays
//    in /dev/shm until reboot, even after every process holding it exits;
//    Python's tracker would unlink it (and warn) when the creator exits.
//    managers::SharedMemoryManager owns segments for you and unlinks them.
//  - POSIX only (Linux /dev/shm); no Windows named mappings.
//  - Nothing here is synchronized, as in Python: concurrent writers to one
//    block or list need their own lock.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/detail/py_repr.hpp"
#include "multiprocessing/exceptions.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <sys/mman.h>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace multiprocessing::shared_memory {

/// Python's memoryview over a SharedMemory block: a non-owning {data, size}
/// view of unsigned bytes (Python's buf holds ints 0..255, so unsigned char
/// rather than std::byte keeps `buf[0] = 42` working).  It dangles once the
/// block is close()d, where Python's buf would raise instead.
class memoryview {
public:
    memoryview() = default;
    memoryview(unsigned char* data, std::size_t size) noexcept : data_(data), size_(size) {}

    unsigned char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    unsigned char* begin() const noexcept { return data_; }
    unsigned char* end() const noexcept { return data_ + size_; }

    /// Unchecked, like std::span.
    unsigned char& operator[](std::size_t i) const noexcept { return data_[i]; }
    /// Checked; negative indexes count from the end as in Python.
    unsigned char& at(std::ptrdiff_t i) const;
    /// Python's buf[offset:offset+count], clamped to the view like a slice.
    memoryview sub(std::size_t offset, std::size_t count = std::size_t(-1)) const noexcept;
    /// Python's bytes(buf[offset:offset+count]).
    std::string tobytes(std::size_t offset = 0, std::size_t count = std::size_t(-1)) const;
    /// Python's buf[offset:offset+len(b)] = b; IndexError if it does not fit
    /// (Python raises ValueError for the size mismatch a short slice gives).
    void write(std::size_t offset, std::string_view b) const;

private:
    unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

namespace detail {

inline std::string errno_message(int err, const std::string& filename) {
    return "[Errno " + std::to_string(err) + "] " + std::strerror(err) + ": " +
           multiprocessing::detail::py_str_repr(filename);
}

/// Python's secrets.token_hex(4) behind "psm_": 12 characters, short
/// enough for the 14-character limit some BSDs have (kept for parity).
inline std::string make_filename() {
    static thread_local std::random_device rd;
    std::uint32_t r = rd();
    char buf[16];
    std::snprintf(buf, sizeof buf, "psm_%08x", r);
    return buf;
}

}  // namespace detail

/// Python's SharedMemory(name=None, create=False, size=0): a named POSIX
/// shared memory block (shm_open + mmap, via Boost.Interprocess), mapped
/// whole into this process.
///
/// Rules as in Python: with create=true a new block of exactly `size`
/// bytes is made (zero-filled), under a random "psm_xxxxxxxx" name if none
/// is given; FileExistsError if the name is taken.  Without create it
/// attaches to an existing block, `size` is ignored and size() reports the
/// block's real size; FileNotFoundError if there is none.  ValueError for a
/// negative size, for size 0 with create, for no name without create, and
/// for a name with an embedded NUL.  Other OS errors are std::system_error.
///
/// Differs from Python: not copyable (a block is mapped once per object;
/// attach again by name, as a child process would); movable.  The
/// destructor close()s but never unlink()s, as in Python.
class SharedMemory {
public:
    /// SharedMemory(std::nullopt, true, 1024) creates; SharedMemory("psm_x")
    /// attaches.  create()/attach() below say the same by name.
    explicit SharedMemory(std::optional<std::string> name = std::nullopt, bool create = false,
                          std::ptrdiff_t size = 0);

    /// SharedMemory(create=True, size=size, name=name), spelled as a verb.
    static SharedMemory create(std::size_t size, std::optional<std::string> name = std::nullopt);
    /// SharedMemory(name): attach to an existing block.
    static SharedMemory attach(std::string name) { return SharedMemory(std::move(name)); }

    SharedMemory(const SharedMemory&) = delete;
    SharedMemory& operator=(const SharedMemory&) = delete;
    SharedMemory(SharedMemory&& o) noexcept;
    SharedMemory& operator=(SharedMemory&& o) noexcept;
    ~SharedMemory() { close(); }

    /// The block's contents; an empty view after close() (Python: None).
    memoryview buf() const noexcept;
    /// The name other processes attach with, without the leading '/' that
    /// shm_open needs (Python's name, not its _name).
    std::string name() const { return name_.size() > 1 ? name_.substr(1) : std::string(); }
    /// Size in bytes: the requested size on create, the real one on attach.
    std::size_t size() const noexcept { return size_; }

    /// Unmaps the block from this process; the block itself lives on.
    /// Idempotent.
    void close() noexcept { region_.reset(); }

    /// Removes the name (shm_unlink): no one can attach any more, and the
    /// memory is freed once every mapping is gone.  Call it once across all
    /// processes; a second call throws FileNotFoundError, as in Python.
    void unlink();

    /// Python's repr: SharedMemory('psm_...', size=512).
    std::string repr() const;
    friend std::ostream& operator<<(std::ostream& os, const SharedMemory& s) { return os << s.repr(); }

private:
    friend class ShareableList;
    struct unopened {};
    explicit SharedMemory(unopened) noexcept {}  // a closed, nameless block

    void open(const std::string& user_name, bool create, std::size_t size);

    std::string name_;  // with the leading '/'
    std::size_t size_ = 0;
    std::unique_ptr<boost::interprocess::mapped_region> region_;
};

/// Python's bytes for ShareableList items: raw bytes that print as b'...'.
/// Same shape as multiprocessing::bytes in object.hpp (kept separate so this
/// header stands alone): convert with `bytes{o.data}`.
struct bytes {
    std::string data;
    friend bool operator==(const bytes& a, const bytes& b) { return a.data == b.data; }
    friend bool operator!=(const bytes& a, const bytes& b) { return !(a == b); }
};

/// One ShareableList value: None, int (64-bit), float (double), bool, str
/// (UTF-8) or bytes, the six types Python's ShareableList stores.
///
/// Equality is Python's: numbers compare by value across int, float and
/// bool (1 == 1.0 == true), str never equals bytes.  C++ integers of any
/// width become int (ValueError beyond int64, where Python's struct fails
/// too); `char` is rejected so 'a' is not silently the int 97.
class Item {
public:
    enum class kind { none, integer, floating, boolean, str, bytes };
    using variant_type = std::variant<std::monostate, std::int64_t, double, bool, std::string,
                                      shared_memory::bytes>;

    Item() noexcept = default;
    Item(std::nullptr_t) noexcept {}
    Item(bool b) noexcept : v_(b) {}
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool> &&
                                            !std::is_same_v<I, char>, int> = 0>
    Item(I i) : v_(to_int64(i)) {}
    Item(char) = delete;
    Item(double d) noexcept : v_(d) {}
    Item(float f) noexcept : v_(static_cast<double>(f)) {}
    Item(const char* s) : v_(std::string(s)) {}
    Item(std::string s) noexcept : v_(std::move(s)) {}
    Item(std::string_view s) : v_(std::string(s)) {}
    Item(shared_memory::bytes b) noexcept : v_(std::move(b)) {}

    kind type() const noexcept { return static_cast<kind>(v_.index()); }
    bool is_none() const noexcept { return type() == kind::none; }
    bool is_int() const noexcept { return type() == kind::integer; }
    bool is_float() const noexcept { return type() == kind::floating; }
    bool is_bool() const noexcept { return type() == kind::boolean; }
    bool is_str() const noexcept { return type() == kind::str; }
    bool is_bytes() const noexcept { return type() == kind::bytes; }

    /// The value as that exact type; TypeError otherwise.
    std::int64_t as_int() const { return get<std::int64_t>("int"); }
    double as_float() const { return get<double>("float"); }
    bool as_bool() const { return get<bool>("bool"); }
    const std::string& as_str() const { return get<std::string>("str"); }
    const shared_memory::bytes& as_bytes() const { return get<shared_memory::bytes>("bytes"); }
    const variant_type& variant() const noexcept { return v_; }

    /// Python's type(x).__name__.
    const char* type_name() const noexcept;

    /// Python's repr(x).
    std::string repr() const;

    friend bool operator==(const Item& a, const Item& b) {
        if (a.is_numeric() && b.is_numeric()) {
            if (a.is_float() || b.is_float()) {
                if (a.is_float() && b.is_float()) return a.as_float() == b.as_float();
                const Item& f = a.is_float() ? a : b;
                const Item& i = a.is_float() ? b : a;
                return int_equals_double(i.int_value(), f.as_float());
            }
            return a.int_value() == b.int_value();
        }
        return a.v_ == b.v_;  // same alternative and equal, or different kinds
    }
    friend bool operator!=(const Item& a, const Item& b) { return !(a == b); }
    friend std::ostream& operator<<(std::ostream& os, const Item& i) { return os << i.repr(); }

private:
    template <class I>
    static std::int64_t to_int64(I i) {
        if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
            if (i > static_cast<I>(std::numeric_limits<std::int64_t>::max()))
                throw ValueError("int too large for ShareableList ('q' format requires a 64-bit value)");
        }
        return static_cast<std::int64_t>(i);
    }
    // Exact, as Python compares int with float (no rounding of big ints).
    static bool int_equals_double(std::int64_t i, double d);
    bool is_numeric() const noexcept { return is_int() || is_float() || is_bool(); }
    std::int64_t int_value() const { return is_bool() ? std::get<bool>(v_) : std::get<std::int64_t>(v_); }

    template <class T>
    const T& get(const char* want) const {
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw TypeError(std::string("ShareableList item is ") + type_name() + ", not " + want);
    }

    variant_type v_;
};

/// Python's ShareableList: a fixed-length list of Items stored in one
/// SharedMemory block, attachable by name from any process, CPython's
/// included: the block layout is byte-for-byte CPython's (so a list made
/// here reads in Python and the other way round):
///   8 bytes   item count N (native int64)
///   8*(N+1)   each item's offset into the data area, then the area's end
///   ...       the data area: 8 bytes per int/float/bool/None, and for
///             str/bytes a slot of 8*(len/8 + 1) bytes, NUL-padded
///   8*N       each item's struct format ("q", "d", "xxxxxxx?",
///             "xxxxxx?x" for None, "<n>s"), NUL-padded to 8
///   N         each item's back-transform code (0 plain, 1 str, 2 bytes,
///             3 None)
///
/// As in Python: the length never changes; an item may change type, but a
/// str/bytes must fit the slot allocated at creation (ValueError "exceeds
/// available storage"); trailing NUL bytes of a str/bytes are lost (slots
/// are NUL-padded); every read goes to the block, so writes by other
/// processes show at once; there is no locking.
///
/// Differs from Python: a str's slot is sized by code points as in Python,
/// except when its UTF-8 would not fit that (Python then silently truncates
/// and later fails to decode); here the slot grows to hold it.  Items over
/// 9,999,999 bytes throw ValueError (Python asserts).  Negative indexes
/// below -len raise IndexError (Python wraps some of them around).
class ShareableList {
public:
    /// A proxy for sl[i], read and written through the block.
    class reference {
    public:
        reference(const reference&) = default;
        operator Item() const;
        Item get() const;
        const reference& operator=(const Item& v) const;
        const reference& operator=(const reference& o) const;
        friend bool operator==(const reference& a, const Item& b) { return a.get() == b; }
        friend bool operator==(const Item& a, const reference& b) { return a == b.get(); }
        friend bool operator!=(const reference& a, const Item& b) { return !(a.get() == b); }
        friend bool operator!=(const Item& a, const reference& b) { return !(a == b.get()); }
        friend std::ostream& operator<<(std::ostream& os, const reference& r) { return os << r.get(); }

    private:
        friend class ShareableList;
        reference(const ShareableList* sl, std::ptrdiff_t i);
        const ShareableList* sl_;
        std::ptrdiff_t i_;
    };

    /// Iterates by value (each step reads the block).
    class const_iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Item;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Item;
        const_iterator(const ShareableList* sl, std::size_t i);
        Item operator*() const;
        const_iterator& operator++();
        const_iterator operator++(int);
        friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.i_ == b.i_; }
        friend bool operator!=(const const_iterator& a, const const_iterator& b) { return a.i_ != b.i_; }

    private:
        const ShareableList* sl_;
        std::size_t i_;
    };

    /// Python's ShareableList(sequence, name=name): a new block holding
    /// `sequence`, under `name` or a random one.  FileExistsError if taken.
    explicit ShareableList(const std::vector<Item>& sequence, std::optional<std::string> name = std::nullopt);
    /// ShareableList{1, "a", nullptr}; with a name, use parentheses:
    /// ShareableList({1, "a"}, "my_list").
    explicit ShareableList(std::initializer_list<Item> sequence, std::optional<std::string> name = std::nullopt);
    /// Python's ShareableList(): a new, empty list (a 16-byte block).
    ShareableList();

    /// Python's ShareableList(name=name): attach to an existing list.
    /// FileNotFoundError if there is none; ValueError if the block is not
    /// laid out like a ShareableList.
    static ShareableList attach(std::string name);

    /// A new list holding `sequence` in a zero-filled block that
    /// `make_block(bytes)` returns (at least `bytes` long).  This is how
    /// SharedMemoryManager lays a list into a segment its server made.
    template <class MakeBlock>
    static ShareableList in_block(const std::vector<Item>& sequence, MakeBlock&& make_block) {
        ShareableList sl{unbuilt{}};
        sl.build(sequence, std::forward<MakeBlock>(make_block));
        return sl;
    }

    ShareableList(ShareableList&&) noexcept = default;
    ShareableList& operator=(ShareableList&&) noexcept = default;

    /// len(sl).
    std::size_t size() const noexcept;

    /// sl[i]; negative i counts from the end.  IndexError when out of range.
    Item get(std::ptrdiff_t i) const;

    /// sl[i] = v.  The item may change type; a str/bytes must fit the slot
    /// made for the item at creation (ValueError otherwise, nothing written).
    void set(std::ptrdiff_t i, const Item& v) const;

    /// sl[i], as a proxy that reads or writes the block.
    reference operator[](std::ptrdiff_t i) const;

    const_iterator begin() const;
    const_iterator end() const;
    /// list(sl).
    std::vector<Item> tolist() const;

    /// Python's sl.count(v): items equal to v (Python's equality).
    std::size_t count(const Item& v) const;
    /// Python's sl.index(v): first position of v; ValueError if absent.
    std::size_t index(const Item& v) const;

    /// Python's sl.format: every item's struct format, concatenated.
    std::string format() const;

    /// Python's sl.shm: the block underneath (close()/unlink() it there).
    SharedMemory& shm() noexcept;
    const SharedMemory& shm() const noexcept;

    /// Python's repr: ShareableList([1, 'a'], name='psm_...').
    std::string repr() const;
    friend std::ostream& operator<<(std::ostream& os, const ShareableList& l) { return os << l.repr(); }

private:
    static constexpr const char* fmt_bool = "xxxxxxx?";
    static constexpr const char* fmt_none = "xxxxxx?x";
    static constexpr std::size_t align = 8;

    struct unbuilt {};
    explicit ShareableList(unbuilt) noexcept;

    explicit ShareableList(SharedMemory shm);

    void create(const std::vector<Item>& seq, std::optional<std::string> name);

    template <class MakeBlock>
    void build(const std::vector<Item>& seq, MakeBlock&& make_block) {
        n_ = seq.size();
        std::vector<std::string> fmts;
        fmts.reserve(n_);
        offsets_.assign(1, 0);
        for (const Item& v : seq) {
            std::string f;
            std::size_t room = align;
            if (v.is_str() || v.is_bytes()) {
                std::size_t len = v.is_str() ? code_points(v.as_str()) : v.as_bytes().data.size();
                room = align * (len / align + 1);
                std::size_t enc = v.is_str() ? v.as_str().size() : len;
                if (enc > room) room = align * (enc / align + 1);
                f = std::to_string(room) + "s";
                if (f.size() > 8) throw ValueError("ShareableList item too large (format longer than 8 chars)");
            } else {
                f = format_for(v);
            }
            fmts.push_back(std::move(f));
            offsets_.push_back(offsets_.back() + static_cast<std::int64_t>(room));
        }
        std::size_t total = data_start() + static_cast<std::size_t>(offsets_.back()) + 9 * n_;
        shm_ = make_block(total);
        if (shm_.size() < total) throw ValueError("shared memory block too small for this ShareableList");
        auto* b = base();
        auto n64 = static_cast<std::int64_t>(n_);
        std::memcpy(b, &n64, 8);
        std::memcpy(b + 8, offsets_.data(), 8 * (n_ + 1));
        for (std::size_t i = 0; i < n_; ++i) {
            write_meta(i, fmts[i], code_for(seq[i]));  // set() keeps an "<n>s" format
            set(static_cast<std::ptrdiff_t>(i), seq[i]);
        }
    }

    static std::size_t code_points(const std::string& s);
    static int code_for(const Item& v);
    static std::string format_for(const Item& v);
    static void pack_fixed(unsigned char* at, const Item& v);
    static std::size_t slot_len(const std::string& fmt);

    unsigned char* base() const noexcept;
    std::size_t data_start() const noexcept;
    std::size_t formats_start() const noexcept;
    std::size_t codes_start() const noexcept;
    std::size_t slot(std::size_t p) const noexcept;

    std::size_t position(std::ptrdiff_t i, const char* what) const;
    std::string format_at(std::size_t p) const;
    int code_at(std::size_t p) const;
    void write_meta(std::size_t p, const std::string& fmt, int code) const;

    SharedMemory shm_{SharedMemory::unopened{}};  // replaced in create()/attach
    std::size_t n_ = 0;
    std::vector<std::int64_t> offsets_;
};

}  // namespace multiprocessing::shared_memory

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/shared_memory.ipp"
#endif
