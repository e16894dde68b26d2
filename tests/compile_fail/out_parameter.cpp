// expect: cannot take a non-const reference
// An out-parameter would silently not travel back, so exposing one fails.
#include <multiprocessing.hpp>
class Filler {
public:
    void fill(int& out) { out = 1; }
};
MP_EXPOSE(Filler, fill)
struct M : multiprocessing::managers::BaseManager<M> {};
void f() { M::register_type<Filler>("Filler"); }
