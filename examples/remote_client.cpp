// Python's remote-manager pattern, client side: connect to remote_server
// and use its queue.
//   remote_client HOST PORT AUTHKEY put ITEM...
//   remote_client HOST PORT AUTHKEY get COUNT
//   remote_client HOST PORT AUTHKEY shutdown
#include <multiprocessing.hpp>

#include <iostream>
#include <string>

namespace mp = multiprocessing;
using Queue = mp::managers::QueueRef<std::string>;

struct QueueManager : mp::managers::BaseManager<QueueManager> {
    using BaseManager::BaseManager;
};

int run(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: remote_client HOST PORT AUTHKEY put ITEM... | get COUNT | shutdown\n";
        return 2;
    }
    QueueManager::register_type<Queue>("get_queue");  // no callable: the server makes it
    QueueManager m(mp::connection::Address(argv[1], static_cast<unsigned short>(std::stoi(argv[2]))), std::string(argv[3]));
    m.connect();
    std::string mode = argv[4];
    if (mode == "shutdown") {
        m.shutdown();
        return 0;
    }
    auto queue = m.create<Queue>();  // Python: m.get_queue()
    if (mode == "put") {
        for (int i = 5; i < argc; ++i) {
            queue.put(argv[i]);
            std::cout << "put " << argv[i] << std::endl;
        }
    } else if (mode == "get") {
        int n = argc > 5 ? std::stoi(argv[5]) : 1;
        for (int i = 0; i < n; ++i) std::cout << "got " << queue.get(true, 10.0) << std::endl;
    }
    return 0;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const mp::AuthenticationError& e) {
        std::cerr << "AuthenticationError: " << e.what() << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << std::endl;
    }
    return 1;
}
