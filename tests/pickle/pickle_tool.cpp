// Reads one hex-encoded pickle per line; for each prints
//   OK <hex of the value re-pickled with protocol 4> <repr as an object, or ->
// or ERR <the reader's message>.  Driven by pickle_interop.py against CPython.
#include "multiprocessing/detail/pickle_object.hpp"

#include <iostream>
#include <string>

namespace pk = multiprocessing::detail::pickle;

static std::string unhex(const std::string& h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}

static std::string hex(const std::string& s) {
    static const char d[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

int main() {
    std::string line;
    while (std::getline(std::cin, line)) {
        try {
            pk::value v = pk::loads(unhex(line));
            std::string again = pk::dumps(v);
            if (pk::loads(again) != v) {
                std::cout << "ERR re-pickled value reads back differently\n";
                continue;
            }
            std::string r = "-";
            try {
                r = repr(pk::to_object(v));
            } catch (const multiprocessing::TypeError&) {
            }
            std::cout << "OK " << hex(again) << " " << r << "\n";
        } catch (const std::exception& e) {
            std::cout << "ERR " << e.what() << "\n";
        }
        std::cout.flush();
    }
}
