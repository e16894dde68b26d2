// expect: argument types do not match the exposed method's parameters
// An argument the declared signature does not take.
#include <multiprocessing.hpp>
#include <string>
#include <vector>
MP_INTERFACE(Queue, (put, void(const std::string&)), (get, std::string(double)));
void f(Queue q) { q.put(std::vector<int>{1}); }
