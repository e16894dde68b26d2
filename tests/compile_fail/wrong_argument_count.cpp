// expect: wrong number of arguments for this exposed method
#include <multiprocessing.hpp>
class Counter {
public:
    void add(int k) { n += k; }
    int n = 0;
};
MP_EXPOSE(Counter, add)
void f(multiprocessing::managers::Proxy<Counter> c) { c.add(1, 2); }
