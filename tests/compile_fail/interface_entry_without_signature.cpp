// expect: MP_INTERFACE: write each method as \(name, Signature...\)
// An interface entry needs its signature: the client has no class to take it from.
#include <multiprocessing.hpp>
#include <string>
MP_INTERFACE(Queue, (put, void(const std::string&)), get);
void f(Queue q) { q.put("x"); }
