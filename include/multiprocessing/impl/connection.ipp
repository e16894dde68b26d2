// The socket set-up behind connection.hpp, through Asio: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files never parse Asio).
#pragma once

#include "multiprocessing/connection.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace multiprocessing::connection::detail {

inline boost::asio::io_context& io() {
    // Only used for connect/bind/accept and name resolution; sockets are
    // released to plain fds right away so forked children never share
    // reactor state with their parent.
    static auto* ctx = new boost::asio::io_context;
    return *ctx;
}

MULTIPROCESSING_DECL int connect_fd(const Address& address) {
    boost::system::error_code ec;
    if (address.is_unix()) {
        boost::asio::local::stream_protocol::socket s(io());
        s.connect(boost::asio::local::stream_protocol::endpoint(address.path()), ec);
        if (ec) throw ConnectionError("cannot connect to " + address.str() + ": " + ec.message());
        int fd = s.release();
        set_cloexec(fd);
        return fd;
    }
    if (address.is_tcp()) {
        boost::asio::ip::tcp::resolver r(io());
        auto eps = r.resolve(address.host(), std::to_string(address.port()), ec);
        if (ec) throw ConnectionError("cannot resolve " + address.str() + ": " + ec.message());
        boost::asio::ip::tcp::socket s(io());
        boost::asio::connect(s, eps, ec);
        if (ec) throw ConnectionError("cannot connect to " + address.str() + ": " + ec.message());
        int fd = s.release();
        set_cloexec(fd);
        tune_tcp(fd);
        return fd;
    }
    throw ValueError("cannot connect to an empty address");
}

MULTIPROCESSING_DECL int listen_fd(const Address& address, int backlog, Address& bound) {
    boost::system::error_code ec;
    int fd = -1;
    if (address.is_unix()) {
        boost::asio::local::stream_protocol::acceptor a(io());
        boost::asio::local::stream_protocol::endpoint ep(address.path());
        a.open(ep.protocol(), ec);
        mode_t old = ::umask(0177);  // socket file 0600
        if (!ec) a.bind(ep, ec);
        ::umask(old);
        if (!ec) a.listen(backlog, ec);
        if (ec) throw ConnectionError("cannot listen on " + address.str() + ": " + ec.message());
        fd = a.release();
        bound = address;
    } else if (address.is_tcp()) {
        boost::asio::ip::tcp::resolver r(io());
        auto eps = r.resolve(address.host(), std::to_string(address.port()),
                             boost::asio::ip::resolver_base::passive, ec);
        if (ec || eps.empty()) throw ConnectionError("cannot resolve " + address.str() + ": " + ec.message());
        auto ep = eps.begin()->endpoint();
        boost::asio::ip::tcp::acceptor a(io());
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(boost::asio::socket_base::reuse_address(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(backlog, ec);
        if (ec) throw ConnectionError("cannot listen on " + address.str() + ": " + ec.message());
        auto local = a.local_endpoint();
        fd = a.release();
        // Report the real port when 0 asked for any free one.
        bound = Address(address.host(), local.port());
    } else {
        throw ValueError("Listener needs an address");
    }
    set_cloexec(fd);
    return fd;
}

}  // namespace multiprocessing::connection::detail
