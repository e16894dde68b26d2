// Python's remote-manager pattern, server side: host one queue on a TCP
// address for clients on other machines.
//   remote_server [host] [port] [authkey]      (defaults: 0.0.0.0 50000 abracadabra)
// Stops on SIGINT/SIGTERM or when a client asks it to shut down.
#include <multiprocessing.hpp>

#include <iostream>
#include <memory>
#include <string>

namespace mp = multiprocessing;
using Queue = mp::managers::QueueRef<std::string>;

struct QueueManager : mp::managers::BaseManager<QueueManager> {
    using BaseManager::BaseManager;
};

int main(int argc, char** argv) {
    std::string host = argc > 1 ? argv[1] : "0.0.0.0";
    auto port = static_cast<unsigned short>(argc > 2 ? std::stoi(argv[2]) : 50000);
    std::string authkey = argc > 3 ? argv[3] : "abracadabra";

    auto queue = std::make_shared<Queue>();
    QueueManager::register_type<Queue>("get_queue", [queue] { return queue; });  // callable=lambda: queue
    QueueManager m(mp::connection::Address(host, port), authkey);
    auto server = m.get_server();
    std::cout << "serving on " << server.address().str() << std::endl;
    server.serve_forever();
    std::cout << "stopped with " << queue->qsize() << " items left" << std::endl;
}
