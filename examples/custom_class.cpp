// The seed tutorial "Multiprocessing Manager With a Custom Class", in C++:
// a plain class, registered with a custom manager, shared by 4 processes
// that each call its method 1000 times.
#include <multiprocessing.hpp>

#include <iostream>
#include <vector>

namespace mp = multiprocessing;

// 1. A custom class: nothing manager-specific inside.
class Counter {
public:
    explicit Counter(int start = 0) : n_(start) {}
    int increment() { return ++n_; }
    int value() const { return n_; }

private:
    int n_;
};
// The methods a proxy may call (Python's `exposed`).
MP_EXPOSE(Counter, increment, value)

// 2. A custom manager: nothing needed inside, as in Python.
struct CustomManager : mp::managers::BaseManager<CustomManager> {};

int main() {
    // 3. Register the class.
    CustomManager::register_type<Counter>("Counter");
    // 4. Start the manager (RAII shuts it down).
    CustomManager manager;
    manager.start();
    // 5. A shared instance, used from 4 processes.
    auto counter = manager.create<Counter>(0);
    std::vector<mp::Process> workers;
    for (int i = 0; i < 4; ++i)
        workers.emplace_back([counter] {
            for (int k = 0; k < 1000; ++k) counter.increment();
        });
    for (auto& w : workers) w.start();
    for (auto& w : workers) w.join();
    std::cout << counter.value() << '\n';
}
