// expect: no signature declared for this method takes these arguments
// An argument none of the declared overloads takes.
#include <multiprocessing.hpp>
#include <vector>
MP_INTERFACE(Calc, (add, int(int), double(double)));
void f(Calc c) { c.add(std::vector<int>{1}); }
