// expect: a pointer cannot be sent to another process
// d[k] = &x on a dynamic dict would store True.
#include <multiprocessing.hpp>
void f(multiprocessing::managers::DictProxy<> d) {
    static int x = 0;
    d["k"] = &x;
}
