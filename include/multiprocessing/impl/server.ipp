// The forked manager server's body (managers/base.hpp): inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files never generate the Server's code).
#pragma once

#include "multiprocessing/managers/base.hpp"

namespace multiprocessing::managers::detail {

MULTIPROCESSING_DECL void serve_forked(int ready_fd, int alive_fd, const std::function<void()>& initializer,
                                       std::shared_ptr<registry> reg, const connection::Address& address,
                                       const std::string& authkey, const ServerOptions& options) {
    ::signal(SIGINT, SIG_IGN);  // Ctrl-C is the owner's; the server ends with it
    int code = 0;
    try {
        if (initializer) initializer();
        std::string dir;
        connection::Address a = address.empty() ? private_address(dir) : address;
        Server server(std::move(reg), a, authkey, options, dir);
        server.set_owner_fd(alive_fd);
        std::string msg = "OK" + encode_address(server.address());
        [[maybe_unused]] auto w = ::write(ready_fd, msg.data(), msg.size());
        ::close(ready_fd);
        server.serve_forever(true);
    } catch (const std::exception& e) {
        std::string msg = std::string("ER") + e.what();
        [[maybe_unused]] auto w = ::write(ready_fd, msg.data(), msg.size());
        code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
}

MULTIPROCESSING_DECL bool install_object_proxy_hooks() {
    auto& h = object_proxy_hooks::instance();
    h.type_name = [](const ref_entry& e) { return proxy_class_name(e.token.typeid_); };
    h.repr = [](const ref_entry& e) {
        // Python prints the proxy's id(); the shared object's id is what
        // identifies it here.
        std::ostringstream os;
        os << "<" << proxy_class_name(e.token.typeid_) << " object, typeid '"
           << e.token.typeid_.substr(0, e.token.typeid_.find('[')) << "' at 0x" << std::hex << e.token.id << ">";
        return os.str();
    };
    h.id = [](const ref_entry& e) { return e.token.id; };
    h.same = [](const ref_entry& a, const ref_entry& b) { return a.token == b.token; };
    h.token = [](const ref_entry& e, std::string& tid, std::string& addr, std::uint64_t& id) {
        tid = e.token.typeid_;
        addr = encode_address(e.token.address);
        id = e.token.id;
    };
    h.acquire = [](const std::string& tid, const std::string& addr, std::uint64_t id) {
        if (id == 0) throw ValueError("an object holds a proxy with no shared object");
        Token t{tid, decode_address(addr), id};
        return client_state::instance().get(t.address).acquire(t);
    };
    return true;
}

}  // namespace multiprocessing::managers::detail
