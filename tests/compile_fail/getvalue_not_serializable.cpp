// expect: _getvalue\(\) needs a Boost-serializable referent type
#include <multiprocessing.hpp>
class Opaque {
public:
    int get() const { return 1; }
};
MP_EXPOSE(Opaque, get)
void f(multiprocessing::managers::Proxy<Opaque> p) { p._getvalue(); }
