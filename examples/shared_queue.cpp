// The seed tutorial "Multiprocessing Manager Share Queue": child processes
// put results into a manager Queue and the parent gets and prints them all.
#include <multiprocessing.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

namespace mp = multiprocessing;

int main() {
    auto manager = mp::Manager();
    auto queue = manager.Queue<std::string>();
    std::vector<mp::Process> workers;
    for (int i = 0; i < 5; ++i)
        workers.emplace_back([queue, i] {
            queue.put("result from task " + std::to_string(i) + ": " + std::to_string(i * i));
        });
    for (auto& w : workers) w.start();
    for (auto& w : workers) w.join();
    std::vector<std::string> results;
    for (std::size_t i = 0; i < workers.size(); ++i) results.push_back(queue.get());
    std::sort(results.begin(), results.end());  // children finish in any order
    for (auto& r : results) std::cout << r << '\n';
}
