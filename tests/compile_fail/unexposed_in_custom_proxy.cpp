// expect: has no member named 'g'
// A proxy made with MP_PROXY exposes only the methods it lists (Python's Bar).
#include <multiprocessing.hpp>
class FooBar {
public:
    int f() { return 1; }
    int g() { return 2; }
};
MP_PROXY(BarProxy, FooBar, f);
void use(BarProxy b) { b.g(); }
