// expect: no exposed overload of this method takes these arguments
// An argument no exposed overload takes.
#include <multiprocessing.hpp>
#include <vector>
class Calc {
public:
    int add(int a) { return a; }
    double add(double a) { return a; }
};
MP_EXPOSE(Calc, (add, int(int), double(double)))
void f(multiprocessing::managers::Proxy<Calc> c) { c.add(std::vector<int>{1}); }
