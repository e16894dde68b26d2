// Python's remote-manager pattern, server side: host one queue on a TCP
// address for clients on other machines.
//   remote_server [HOST] [PORT] [AUTHKEY] [KEEPALIVE]
// Defaults: '' (all interfaces, as 0.0.0.0) 50000 abracadabra; KEEPALIVE
// (seconds) shortens how long a client host that vanished keeps its
// references.  Stops on SIGINT/SIGTERM or when a client asks it to shut down.
#include <multiprocessing.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

namespace mp = multiprocessing;

/// A FIFO of strings shared by remote clients; remote_client.cpp declares
/// only the methods it calls (MP_INTERFACE).
class StringQueue {
public:
    void put(const std::string& item) {
        std::lock_guard<std::mutex> g(mu_);
        items_.push_back(item);
        cv_.notify_one();
    }
    /// Waits up to timeout seconds (a negative one: for ever, as Python's
    /// queue.get() does), in short slices so that a caller that went away
    /// (or a stopping server) frees this server thread.
    std::string get(double timeout = -1) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
        std::unique_lock<std::mutex> lk(mu_);
        while (items_.empty()) {
            if (mp::managers::caller_gone()) throw mp::EOFError("caller gone");
            if (timeout >= 0 && std::chrono::steady_clock::now() >= deadline) throw mp::TimeoutError("queue empty");
            cv_.wait_for(lk, std::chrono::milliseconds(100));
        }
        std::string item = std::move(items_.front());
        items_.pop_front();
        return item;
    }
    std::size_t qsize() const {
        std::lock_guard<std::mutex> g(mu_);
        return items_.size();
    }

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> items_;
};
MP_EXPOSE(StringQueue, put, get, qsize)
// It locks itself: a blocked get() must not hold out put().
template <> struct mp::managers::self_locking<StringQueue> : std::true_type {};

struct QueueManager : mp::managers::BaseManager<QueueManager> {
    using BaseManager::BaseManager;
};

int main(int argc, char** argv) {
    std::string host = argc > 1 ? argv[1] : "";
    if (host.empty()) host = "0.0.0.0";  // Python's '' = every interface
    auto port = static_cast<unsigned short>(argc > 2 ? std::stoi(argv[2]) : 50000);
    std::string authkey = argc > 3 ? argv[3] : "abracadabra";
    mp::managers::ServerOptions opts;
    if (argc > 4) {
        opts.keepalive_idle = std::stoi(argv[4]);
        opts.keepalive_interval = 1;
        opts.keepalive_count = 2;
    }

    auto queue = std::make_shared<StringQueue>();
    QueueManager::register_type<StringQueue>("get_queue", [queue] { return queue; });  // callable=lambda: queue
    try {
        QueueManager m(mp::connection::Address(host, port), authkey, opts);
        auto server = m.get_server();
        std::cout << "serving on " << server.address().str() << std::endl;
        server.serve_forever();
    } catch (const std::exception& e) {
        std::cerr << "remote_server: " << e.what() << std::endl;
        return 1;
    }
    std::cout << "stopped with " << queue->qsize() << " items left" << std::endl;
}
