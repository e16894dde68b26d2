// expect: has no member named 'size'
// A method the interface does not declare.
#include <multiprocessing.hpp>
#include <string>
MP_INTERFACE(Queue, (put, void(const std::string&)), (get, std::string(double)));
void f(Queue q) { q.size(); }
