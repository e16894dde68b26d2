// expect: has no member named 'secret'
// A method that MP_EXPOSE did not list cannot be called through the proxy.
#include <multiprocessing.hpp>
class Counter {
public:
    int increment() { return ++n; }
    int secret() { return 0; }
    int n = 0;
};
MP_EXPOSE(Counter, increment)
void f(multiprocessing::managers::Proxy<Counter> c) { c.secret(); }
