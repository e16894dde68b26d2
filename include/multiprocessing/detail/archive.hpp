// The codec's archives: Boost binary archives written straight into the
// outgoing frame buffer and read straight from the received frame.
//
// One archive per message (Boost writes class info once per archive, so a
// reused archive would couple both ends' state).  no_header: the protocol
// carries its own version.  The input archive refuses any declared string or
// collection size larger than the bytes left in the frame, so a forged length
// cannot make Boost 1.74 attempt a huge allocation.
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

#include <cstddef>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <vector>

namespace multiprocessing::detail {

/// Appends to a std::vector<char>; lets archives write into the frame buffer.
class vector_sink : public std::streambuf {
public:
    explicit vector_sink(std::vector<char>& v) : v_(v) {}

protected:
    int_type overflow(int_type c) override {
        if (c != traits_type::eof()) v_.push_back(static_cast<char>(c));
        return c;
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        v_.insert(v_.end(), s, s + n);
        return n;
    }

private:
    std::vector<char>& v_;
};

/// Reads from a fixed byte range (the received frame) without copying it.
class memory_source : public std::streambuf {
public:
    memory_source(const char* p, std::size_t n) {
        char* c = const_cast<char*>(p);
        setg(c, c, c + n);
    }
    std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
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
        s.resize(n);
        if (n) this->load_binary(&s[0], n);
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

}  // namespace multiprocessing::detail

BOOST_SERIALIZATION_REGISTER_ARCHIVE(multiprocessing::detail::oarchive)
BOOST_SERIALIZATION_REGISTER_ARCHIVE(multiprocessing::detail::iarchive)
// Vectors of arithmetic types go as one memcpy, not element by element.
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(multiprocessing::detail::oarchive)
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(multiprocessing::detail::iarchive)
