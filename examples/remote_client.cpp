// Python's remote-manager pattern, client side: connect to remote_server
// and use its queue.
//   remote_client HOST PORT AUTHKEY put ITEM...
//   remote_client HOST PORT AUTHKEY get COUNT [TIMEOUT]
//   remote_client HOST PORT AUTHKEY info        (the server's debug_info)
//   remote_client HOST PORT AUTHKEY shutdown
#include <multiprocessing.hpp>

#include <iostream>
#include <string>

namespace mp = multiprocessing;

/// What this client calls of remote_server's queue: names and signatures
/// only, no class.  connect() checks them against the server's registration
/// (a TypeError names any method that differs).
MP_INTERFACE(StringQueue, (put, void(const std::string&)), (get, std::string(double)), (qsize, std::size_t() const));

struct QueueManager : mp::managers::BaseManager<QueueManager> {
    using BaseManager::BaseManager;
};

int run(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: remote_client HOST PORT AUTHKEY put ITEM... | get COUNT [TIMEOUT] | info | shutdown\n";
        return 2;
    }
    QueueManager::register_type<StringQueue>("get_queue");  // Python: QueueManager.register('get_queue')
    QueueManager m(mp::connection::Address(argv[1], static_cast<unsigned short>(std::stoi(argv[2]))), std::string(argv[3]));
    m.connect();
    std::string mode = argv[4];
    if (mode == "shutdown") {
        m.shutdown();
        return 0;
    }
    if (mode == "info") {
        std::cout << m.debug_info() << std::flush;
        return 0;
    }
    auto queue = m.create<StringQueue>();  // Python: m.get_queue()
    if (mode == "put") {
        for (int i = 5; i < argc; ++i) {
            queue.put(std::string(argv[i]));
            std::cout << "put " << argv[i] << std::endl;
        }
    } else if (mode == "get") {
        int n = argc > 5 ? std::stoi(argv[5]) : 1;
        double timeout = argc > 6 ? std::stod(argv[6]) : 10.0;
        for (int i = 0; i < n; ++i) {
            std::string item = queue.get(timeout);
            std::cout << "got " << item << std::endl;
        }
    } else {
        std::cerr << "unknown mode " << mode << "\n";
        return 2;
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
