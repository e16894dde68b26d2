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

}  // namespace multiprocessing::managers::detail
