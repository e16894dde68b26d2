// expect: a pointer cannot be sent to another process
// A pointer argument to an exposed method taking bool would arrive as true.
#include <multiprocessing.hpp>
class Flag {
public:
    void set(bool v) { on = v; }
    bool on = false;
};
MP_EXPOSE(Flag, set)
void f(multiprocessing::managers::Proxy<Flag> flag, int* p) { flag.set(p); }
