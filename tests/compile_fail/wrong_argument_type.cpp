// expect: argument types do not match the exposed method's parameters
// An argument that does not convert to the parameter type is a compile error.
#include <multiprocessing.hpp>
#include <string>
class Counter {
public:
    void add(int k) { n += k; }
    int n = 0;
};
MP_EXPOSE(Counter, add)
void f(multiprocessing::managers::Proxy<Counter> c) { c.add(std::string("three")); }
