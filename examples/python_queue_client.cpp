// A C++ client of a manager served by CPython: examples/python/
// queue_server.py (Python's documented remote manager) holds the queue.
//   python3 examples/python/queue_server.py 50000 abracadabra &
//   python_queue_client 127.0.0.1 50000 abracadabra put 1 "two" 3.5
//   python_queue_client 127.0.0.1 50000 abracadabra get 3
// Items cross as Python values: a Python client of the same server gets
// 1, 'two' and 3.5 (an int, a str and a float).
#include <multiprocessing.hpp>

#include <iostream>
#include <string>

namespace mp = multiprocessing;

// A command-line word as the Python value it reads as: int, float, or str.
mp::object parse(const std::string& word) {
    std::size_t used = 0;
    try {
        long long i = std::stoll(word, &used);
        if (used == word.size()) return mp::object(i);
        double d = std::stod(word, &used);
        if (used == word.size()) return mp::object(d);
    } catch (const std::exception&) {
    }
    return mp::object(word);
}

int main(int argc, char** argv) try {
    if (argc < 6) {
        std::cerr << "usage: python_queue_client HOST PORT AUTHKEY put ITEM... | get COUNT\n";
        return 2;
    }
    // Python: m = QueueManager(address=(host, port), authkey=...); m.connect()
    mp::managers::PythonManager m(mp::connection::Address(argv[1], static_cast<unsigned short>(std::stoi(argv[2]))),
                                  argv[3]);
    m.connect();
    mp::managers::PythonProxy queue = m.create("get_queue");  // Python: queue = m.get_queue()
    std::string mode = argv[4];
    if (mode == "put") {
        for (int i = 5; i < argc; ++i) queue._callmethod("put", {parse(argv[i])});
        std::cout << "put " << argc - 5 << " items\n";
    } else if (mode == "get") {
        for (int i = 0, n = std::stoi(argv[5]); i < n; ++i)
            std::cout << repr(queue._callmethod("get", {}, {{"timeout", 10}})) << "\n";  // Python: queue.get(timeout=10)
    } else {
        std::cerr << "unknown mode " << mode << "\n";
        return 2;
    }
    return 0;
} catch (const std::exception& e) {
    std::cerr << "python_queue_client: " << e.what() << "\n";
    return 1;
}
