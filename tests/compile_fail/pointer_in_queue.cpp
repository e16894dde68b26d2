// expect: a pointer cannot be sent to another process
// queue.put(&f) would convert the function pointer to a bool and store True.
#include <multiprocessing.hpp>
void some_function() {}
void f(multiprocessing::managers::Proxy<multiprocessing::managers::QueueRef<multiprocessing::object>> q) {
    q.put(&some_function);
}
