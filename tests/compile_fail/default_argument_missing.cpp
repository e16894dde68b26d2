// expect: only parameters with default arguments may be left out
// Leaving out an argument that has no default.
#include <multiprocessing.hpp>
class Scaler {
public:
    int scale(int x, int factor = 10) { return x * factor; }
};
MP_EXPOSE(Scaler, scale)
void f(multiprocessing::managers::Proxy<Scaler> s) { s.scale(); }
