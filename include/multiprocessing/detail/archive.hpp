// The codec's archives: Boost binary archives written straight into the
// outgoing frame buffer and read straight from the received frame.
//
// One archive per message (Boost writes class info once per archive, so a
// reused archive would couple both ends' state).  no_header: the protocol
// carries its own version.  The input archive refuses any declared string or
// collection size larger than the bytes left in the frame, so a forged length
// cannot make Boost 1.74 attempt a huge allocation.
//
// Big byte runs travel apart from the frame's own bytes: a sender records
// them by reference (frame_blocks).  Over shared memory, a big
// std::vector<char>, std::vector<unsigned char> or std::string argument or
// result then reaches the receiver as a container of its own (staged_block)
// that the decoded value takes over, so it costs one copy into the ring and
// one out of it; other big runs are spliced back into the frame.
#pragma once

#include <boost/archive/binary_iarchive_impl.hpp>
#include <boost/archive/binary_oarchive_impl.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/archive/impl/archive_serializer_map.ipp>
#include <boost/archive/impl/basic_binary_iarchive.ipp>
#include <boost/archive/impl/basic_binary_iprimitive.ipp>
#include <boost/archive/impl/basic_binary_oarchive.ipp>
#include <boost/archive/impl/basic_binary_oprimitive.ipp>
#include <boost/serialization/array_optimization.hpp>
#include <boost/serialization/collection_size_type.hpp>
#include <boost/serialization/deque.hpp>
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <boost/serialization/list.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/item_version_type.hpp>
#include <boost/serialization/library_version_type.hpp>
#include <boost/serialization/split_free.hpp>

#include "multiprocessing/detail/huge_pages.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <streambuf>
#include <string>
#include <vector>

namespace multiprocessing::detail {

/// What a big block is, so that over shared memory the receiver can take
/// it into a container of that type while it arrives and hand that
/// container to the decoded value, with no copy after the ring's.  `bytes`
/// (any other aliasable value) is spliced back into the frame.
enum class block_kind : std::uint8_t { bytes = 0, char_vector = 1, string = 2, uchar_vector = 3 };

template <class T>
struct block_kind_of : std::integral_constant<block_kind, block_kind::bytes> {};
template <>
struct block_kind_of<std::vector<char>> : std::integral_constant<block_kind, block_kind::char_vector> {};
template <>
struct block_kind_of<std::string> : std::integral_constant<block_kind, block_kind::string> {};
template <>
struct block_kind_of<std::vector<unsigned char>> : std::integral_constant<block_kind, block_kind::uchar_vector> {};

/// Big blocks an archive wrote by reference rather than into the frame
/// buffer: each goes on the wire from where it lies, at offset `at` of the
/// buffer.  A 64 MB argument then costs no copy and no fresh buffer.
struct frame_blocks {
    struct block {
        std::size_t at;
        const char* p;
        std::size_t n;
        block_kind kind;
    };
    /// Smaller blocks are copied: one more write costs more than their copy.
    static constexpr std::size_t min_bytes = std::size_t(64) << 10;
    std::vector<block> v;
    std::size_t bytes = 0;
    const std::vector<char>* buf = nullptr;  // the frame buffer the offsets are in
    std::vector<std::shared_ptr<const void>> keep;  // owners of blocks that are not the caller's
    void add(std::size_t at, const char* p, std::size_t n, block_kind kind) {
        v.push_back({at, p, n, kind});
        bytes += n;
    }
    void clear() {
        v.clear();
        bytes = 0;
        keep.clear();
    }
};

/// A big block received apart from its frame (shared memory only), already
/// in a container of its kind.  `at` is the point of the received frame's
/// bytes it was cut out before.
struct staged_block {
    const char* at;
    std::size_t n;
    block_kind kind;
    std::vector<char> chars;
    std::vector<unsigned char> uchars;
    std::string str;
    const char* data() const {
        switch (kind) {
        case block_kind::char_vector: return chars.data();
        case block_kind::uchar_vector: return reinterpret_cast<const char*>(uchars.data());
        default: return str.data();
        }
    }
    /// Moves the bytes into out if out is of this block's kind and size.
    bool give(std::vector<char>& out, std::size_t bytes) { return take_if(block_kind::char_vector, chars, out, bytes); }
    bool give(std::vector<unsigned char>& out, std::size_t bytes) { return take_if(block_kind::uchar_vector, uchars, out, bytes); }
    bool give(std::string& out, std::size_t bytes) { return take_if(block_kind::string, str, out, bytes); }

private:
    template <class C>
    bool take_if(block_kind k, C& mine, C& out, std::size_t bytes) {
        if (kind != k || n != bytes || mine.size() != bytes) return false;
        out = std::move(mine);
        return true;
    }
};

/// The staged blocks of the frame this thread received last
/// (Connection::recv_frame), until a decoder claims them, and the span of
/// that frame's own bytes they were cut from: a decoder claims only blocks
/// cut inside its own range, and only inside that span.  Cleared by the
/// thread's next receive, and where a decode ends or is abandoned.
struct received_frame;
/// This thread's received_frame while it lives, else null (trivially
/// destructible: safe to read from destructors running at thread exit).
inline received_frame*& received_frame_live() {
    static thread_local received_frame* p = nullptr;
    return p;
}
struct received_frame {
    received_frame() { received_frame_live() = this; }
    ~received_frame() { received_frame_live() = nullptr; }
    received_frame(const received_frame&) = delete;
    received_frame& operator=(const received_frame&) = delete;
    const char* lo = nullptr;
    const char* hi = nullptr;
    std::vector<staged_block> blocks;
    bool empty() const { return blocks.empty(); }
    void clear() {
        blocks.clear();
        lo = hi = nullptr;
    }
    /// True if [p, p + n] lies inside the frame's span.
    bool covers(const char* p, std::size_t n) const {
        auto b = reinterpret_cast<std::uintptr_t>(p), l = reinterpret_cast<std::uintptr_t>(lo),
             h = reinterpret_cast<std::uintptr_t>(hi);
        return b >= l && b <= h && n <= h - b;
    }
};
inline received_frame& received_blocks() {
    static thread_local received_frame f;
    return f;
}

/// Drops the received blocks no decoder claimed when it leaves scope: they
/// may be a frame's whole size, and a thread may not receive again soon.
struct received_blocks_scope {
    received_blocks_scope() = default;
    received_blocks_scope(const received_blocks_scope&) = delete;
    received_blocks_scope& operator=(const received_blocks_scope&) = delete;
    ~received_blocks_scope() {
        auto& r = received_blocks();
        if (!r.empty()) r.clear();
    }
};

/// Gives out the staged block cut out at `at` if it is n bytes of out's kind.
template <class C>
bool adopt_received(C& out, const char* at, std::size_t n) {
    auto& r = received_blocks();
    if (!r.covers(at, 0)) return false;
    for (auto it = r.blocks.begin(); it != r.blocks.end(); ++it)
        if (it->at == at && it->give(out, n)) {
            r.blocks.erase(it);
            return true;
        }
    return false;
}

/// Where this thread's next request arguments may be written by reference
/// (null: copy), if written into the buffer named there.  Set only around
/// building a request that is sent before the call returns, while the
/// arguments still live.
inline frame_blocks*& aliasing_target() {
    static thread_local frame_blocks* t = nullptr;
    return t;
}

/// Sets aliasing_target() for a scope.
class aliasing_scope {
public:
    explicit aliasing_scope(frame_blocks* b) : old_(std::exchange(aliasing_target(), b)) {}
    ~aliasing_scope() { aliasing_target() = old_; }
    /// The target before this scope.
    frame_blocks* previous() const { return old_; }
    aliasing_scope(const aliasing_scope&) = delete;
    aliasing_scope& operator=(const aliasing_scope&) = delete;

private:
    frame_blocks* old_;
};

/// Values whose archive form is a size and then their own storage, so no
/// code of theirs runs while they are written: only these are written by
/// reference (a user's save() may write a temporary that dies before the
/// frame is sent).
template <class T>
struct aliasable : std::is_same<T, std::string> {};
template <class U, class A>
struct aliasable<std::vector<U, A>>
    : std::bool_constant<boost::serialization::is_bitwise_serializable<U>::value && !std::is_same_v<U, bool>> {};
template <class T>
inline constexpr bool aliasable_v = aliasable<T>::value;

/// Appends to a std::vector<char>; lets archives write into the frame buffer.
/// Given blocks, big byte runs written while alias(true) are recorded there
/// instead of copied.
class vector_sink : public std::streambuf {
public:
    explicit vector_sink(std::vector<char>& v, frame_blocks* blocks = nullptr) : v_(v), blocks_(blocks) {}
    /// Records big byte runs written from now on (on) as blocks of kind k.
    void alias(bool on, block_kind k = block_kind::bytes) {
        alias_ = on && blocks_;
        kind_ = k;
    }

protected:
    int_type overflow(int_type c) override {
        if (c != traits_type::eof()) v_.push_back(static_cast<char>(c));
        return c;
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        std::size_t k = static_cast<std::size_t>(n);
        if (alias_ && k >= frame_blocks::min_bytes) {
            blocks_->add(v_.size(), s, k, kind_);
            return n;
        }
        if (v_.size() + k > v_.capacity() && v_.size() + k >= huge_page_threshold) {
            // Grown here rather than by insert, so the new block asks for
            // huge pages before its first byte is written.
            std::vector<char> bigger;
            bigger.reserve(std::max(v_.size() + k, 2 * v_.capacity()));
            advise_huge_pages(bigger.data(), bigger.capacity());
            bigger.insert(bigger.end(), v_.begin(), v_.end());
            v_.swap(bigger);
        }
        v_.insert(v_.end(), s, s + n);
        return n;
    }

private:
    std::vector<char>& v_;
    frame_blocks* blocks_;
    bool alias_ = false;
    block_kind kind_ = block_kind::bytes;
};

/// Reads from a fixed byte range (the received frame) without copying it.
/// Blocks staged apart from the frame (received_blocks) whose cut lies in
/// the range are claimed here and read in their places.
class memory_source : public std::streambuf {
public:
    memory_source(const char* p, std::size_t n) {
        char* c = const_cast<char*>(p);
        setg(c, c, c + n);
        if (!received_blocks().empty()) claim(p, n);
    }
    std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()) + later_; }
    /// The next n bytes (n <= remaining()), consumed.  Valid until the next
    /// take() (bytes that span a staged block's edge are copied together).
    const char* take(std::size_t n) {
        char* p = gptr();
        if (n > static_cast<std::size_t>(egptr() - p)) return take_split(n);
        setg(eback(), p + n, egptr());
        return p;
    }
    /// If the next n bytes are a staged block of out's kind, moves them
    /// into out (consumed) and returns true.
    template <class C>
    bool adopt(C& out, std::size_t n) {
        if (gptr() != egptr()) return false;
        std::size_t next = cur_ + 1;  // past empty stretches of the frame's own bytes (blocks cut side by side)
        while (next < segs_.size() && segs_[next].staged < 0 && segs_[next].b == segs_[next].e) ++next;
        if (next >= segs_.size() || segs_[next].staged < 0) return false;
        if (!staged_[static_cast<std::size_t>(segs_[next].staged)].give(out, n)) return false;
        cur_ = next;
        later_ -= n;
        setg(segs_[cur_].e, segs_[cur_].e, segs_[cur_].e);  // consumed; its bytes are out's now
        return true;
    }

protected:
    int_type underflow() override {
        while (gptr() == egptr()) {
            if (cur_ + 1 >= segs_.size()) return traits_type::eof();
            ++cur_;
            const seg& s = segs_[cur_];
            later_ -= static_cast<std::size_t>(s.e - s.b);
            setg(s.b, s.b, s.e);
        }
        return traits_type::to_int_type(*gptr());
    }

private:
    struct seg {
        char* b;
        char* e;
        int staged;  // index in staged_, or -1 for the frame's own bytes
    };
    void claim(const char* p, std::size_t n) {
        auto& r = received_blocks();
        if (!r.covers(p, n)) return;  // another buffer
        for (auto it = r.blocks.begin(); it != r.blocks.end();) {
            auto at = reinterpret_cast<std::uintptr_t>(it->at), b = reinterpret_cast<std::uintptr_t>(p);
            if (at >= b && at - b <= n) {
                staged_.push_back(std::move(*it));
                it = r.blocks.erase(it);
            } else {
                ++it;
            }
        }
        if (staged_.empty()) return;
        char* at = const_cast<char*>(p);
        for (std::size_t i = 0; i < staged_.size(); ++i) {  // cut in order (received_blocks keeps it)
            char* cut = const_cast<char*>(staged_[i].at);
            char* d = const_cast<char*>(staged_[i].data());
            segs_.push_back({at, cut, -1});
            segs_.push_back({d, d + staged_[i].n, static_cast<int>(i)});
            at = cut;
        }
        segs_.push_back({at, const_cast<char*>(p) + n, -1});
        for (std::size_t i = 1; i < segs_.size(); ++i) later_ += static_cast<std::size_t>(segs_[i].e - segs_[i].b);
        setg(segs_[0].b, segs_[0].b, segs_[0].e);
    }
    const char* take_split(std::size_t n) {
        scratch_.resize(n);
        if (static_cast<std::size_t>(sgetn(scratch_.data(), static_cast<std::streamsize>(n))) != n)
            throw std::length_error("read past the end of the frame");
        return scratch_.data();
    }
    std::vector<seg> segs_;
    std::size_t cur_ = 0;
    std::size_t later_ = 0;  // bytes in segs_ after cur_
    std::vector<staged_block> staged_;
    std::vector<char> scratch_;
};

/// Thrown when archive data declares more than the frame holds.
class archive_size_error : public std::length_error {
public:
    using std::length_error::length_error;
};

constexpr unsigned archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

class oarchive : public boost::archive::binary_oarchive_impl<oarchive, char, std::char_traits<char>> {
    using base = boost::archive::binary_oarchive_impl<oarchive, char, std::char_traits<char>>;
    friend class boost::archive::detail::interface_oarchive<oarchive>;
    friend class boost::archive::basic_binary_oarchive<oarchive>;
    friend class boost::archive::save_access;

public:
    explicit oarchive(std::streambuf& sb) : base(sb, archive_flags) {}
};

class iarchive : public boost::archive::binary_iarchive_impl<iarchive, char, std::char_traits<char>> {
    using base = boost::archive::binary_iarchive_impl<iarchive, char, std::char_traits<char>>;
    friend class boost::archive::detail::interface_iarchive<iarchive>;
    friend class boost::archive::basic_binary_iarchive<iarchive>;
    friend class boost::archive::load_access;

public:
    explicit iarchive(memory_source& src) : base(src, archive_flags), src_(src) {}

    std::size_t remaining() const { return src_.remaining(); }
    /// The next n bytes of the frame (checked against remaining()), consumed.
    const char* take(std::size_t n) {
        check_size(n);
        return src_.take(n);
    }
    /// If the next n bytes are a staged block of out's kind, moves them into
    /// out (see memory_source::adopt).
    template <class C>
    bool adopt(C& out, std::size_t n) { return src_.adopt(out, n); }
    void check_size(unsigned long long n) const {
        if (n > src_.remaining())
            throw archive_size_error("archive declares " + std::to_string(n) +
                                     " elements but the frame holds only " +
                                     std::to_string(src_.remaining()) + " more bytes");
    }

    using base::load;
    void load(std::string& s) {
        std::size_t n = 0;
        base::load(n);
        check_size(n);
        if (n >= frame_blocks::min_bytes && adopt(s, n)) return;
        assign_string(s, take(n), n);
    }
    template <class T>
    void load_override(T& t) { base::load_override(t); }
    void load_override(boost::serialization::collection_size_type& t) {
        base::load_override(t);
        check_size(t);
    }

private:
    memory_source& src_;
};

// ---- plain values without an archive ----
//
// Building a Boost archive constructs a std::locale (about 0.9 µs here, most
// of a small call's cost, four archives a call).  Values whose archive form
// is plain skip it: an arithmetic value other than bool is its bytes, and a
// std::string is its size as a std::size_t and then its bytes.  These are
// the very bytes the archives write and read (tests/test_serialization_
// adapters.cpp checks), so either end may use either way.

template <class T>
inline constexpr bool plain_wire_v =
    (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) || std::is_same_v<T, std::string>;

/// Appends v as an archive would.
template <class T>
void put_plain(std::vector<char>& buf, const T& v) {
    static_assert(plain_wire_v<T>);
    if constexpr (std::is_same_v<T, std::string>) {
        std::size_t n = v.size();
        const char* len = reinterpret_cast<const char*>(&n);
        buf.insert(buf.end(), len, len + sizeof n);
        buf.insert(buf.end(), v.data(), v.data() + n);
    } else {
        const char* b = reinterpret_cast<const char*>(&v);
        buf.insert(buf.end(), b, b + sizeof v);
    }
}

/// Reads plain values from a received body; too few bytes throw what the
/// archive throws.
struct plain_reader {
    const char* p;
    std::size_t n;

    template <class T>
    void get(T& v) {
        static_assert(plain_wire_v<T>);
        if constexpr (std::is_same_v<T, std::string>) {
            std::size_t len = 0;
            take(&len, sizeof len);
            if (len >= frame_blocks::min_bytes && adopt_received(v, p, len)) return;
            if (len > n)
                throw archive_size_error("archive declares " + std::to_string(len) +
                                         " elements but the frame holds only " + std::to_string(n) + " more bytes");
            assign_string(v, p, len);
            p += len;
            n -= len;
        } else {
            take(&v, sizeof v);
        }
    }

private:
    void take(void* dst, std::size_t k) {
        if (k > n) boost::serialization::throw_exception(
            boost::archive::archive_exception(boost::archive::archive_exception::input_stream_error));
        std::memcpy(dst, p, k);
        p += k;
        n -= k;
    }
};

// ---- containers from untrusted frames ----
//
// Boost sizes a vector, deque or list to the declared count before reading
// any element, and rehashes an unordered container to a declared bucket
// count.  A forged count (each element passes the bytes-left check, but an
// element is far larger in memory than one byte) made the server allocate
// ~119x the frame.  These overloads, found by ADL for iarchive only, grow
// containers as elements are actually decoded, and size a vector of
// arithmetic values only after checking its bytes are in the frame.  So
// what is allocated is what the frame really holds, decoded.

template <class C>
void load_by_element(iarchive& ar, C& c) {
    boost::serialization::collection_size_type count;
    ar >> count;
    boost::serialization::item_version_type item_version(0);
    if (boost::serialization::library_version_type(3) < ar.get_library_version()) ar >> item_version;
    c.clear();
    for (std::size_t i = 0; i < count; ++i) {
        c.emplace_back();
        ar >> c.back();
    }
}

template <class U, class A>
void load(iarchive& ar, std::vector<U, A>& t, const unsigned int v) {
    if constexpr (boost::serialization::is_bitwise_serializable<U>::value) {
        // Sent as one block (USE_ARRAY_OPTIMIZATION below): all of it must
        // be in the frame before it is allocated.
        boost::serialization::collection_size_type count;
        ar >> count;
        if (count > ar.remaining() / sizeof(U))
            throw archive_size_error("archive declares " + std::to_string(std::size_t(count)) + " elements of " +
                                     std::to_string(sizeof(U)) + " bytes but the frame holds only " +
                                     std::to_string(ar.remaining()) + " more bytes");
        std::size_t bytes = count * sizeof(U);
        if constexpr ((std::is_same_v<U, char> || std::is_same_v<U, unsigned char>) &&
                      std::is_same_v<A, std::allocator<U>>) {
            if (bytes >= frame_blocks::min_bytes && ar.adopt(t, bytes)) return;  // no copy
        }
        if constexpr (std::is_same_v<A, std::allocator<U>>) {
            if (bytes >= huge_page_threshold && t.capacity() < count) {
                // A new block, on huge pages before it is first touched.
                t = std::vector<U, A>();
                t.reserve(count);
                advise_huge_pages(t.data(), bytes);
            }
        }
        if constexpr (std::is_same_v<U, char> || std::is_same_v<U, unsigned char>) {
            // Copied once, not zeroed first.
            const U* p = reinterpret_cast<const U*>(ar.take(bytes));
            t.assign(p, p + count);
        } else {
            t.resize(count);
            if (count) ar.load_binary(t.data(), bytes);
        }
    } else if constexpr (std::is_default_constructible_v<U>) {
        load_by_element(ar, t);
    } else {
        boost::serialization::load(ar, t, v);
    }
}
template <class A>
void load(iarchive& ar, std::vector<bool, A>& t, const unsigned int v) {
    boost::serialization::load(ar, t, v);  // a bit each: never more than the frame
}
template <class U, class A>
void load(iarchive& ar, std::deque<U, A>& t, const unsigned int v) {
    if constexpr (std::is_default_constructible_v<U>) load_by_element(ar, t);
    else boost::serialization::load(ar, t, v);
}
template <class U, class A>
void load(iarchive& ar, std::list<U, A>& t, const unsigned int v) {
    if constexpr (std::is_default_constructible_v<U>) load_by_element(ar, t);
    else boost::serialization::load(ar, t, v);
}

// Unordered containers: the declared bucket count is read and ignored.
template <class Element, class C>
void load_unordered(iarchive& ar, C& c) {
    boost::serialization::collection_size_type count, buckets;
    ar >> count >> buckets;
    boost::serialization::item_version_type item_version(0);
    if (boost::serialization::library_version_type(3) < ar.get_library_version()) ar >> item_version;
    c.clear();
    for (std::size_t i = 0; i < count; ++i) {
        Element e{};
        ar >> e;
        c.insert(std::move(e));
    }
}
template <class K, class V, class H, class E, class A>
void load(iarchive& ar, std::unordered_map<K, V, H, E, A>& t, const unsigned int) {
    load_unordered<std::pair<K, V>>(ar, t);
}
template <class K, class V, class H, class E, class A>
void load(iarchive& ar, std::unordered_multimap<K, V, H, E, A>& t, const unsigned int) {
    load_unordered<std::pair<K, V>>(ar, t);
}
template <class K, class H, class E, class A>
void load(iarchive& ar, std::unordered_set<K, H, E, A>& t, const unsigned int) {
    load_unordered<K>(ar, t);
}
template <class K, class H, class E, class A>
void load(iarchive& ar, std::unordered_multiset<K, H, E, A>& t, const unsigned int) {
    load_unordered<K>(ar, t);
}

}  // namespace multiprocessing::detail

BOOST_SERIALIZATION_REGISTER_ARCHIVE(multiprocessing::detail::oarchive)
BOOST_SERIALIZATION_REGISTER_ARCHIVE(multiprocessing::detail::iarchive)
// Vectors of arithmetic types go as one memcpy, not element by element.
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(multiprocessing::detail::oarchive)
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(multiprocessing::detail::iarchive)
