// expect: T has no constructor taking these arguments
// create<T>(args) with arguments no constructor of T takes.
#include <multiprocessing.hpp>
#include <string>
class Counter {
public:
    explicit Counter(int start) : n(start) {}
    int n;
};
struct M : multiprocessing::managers::BaseManager<M> {};
void f(M& m) { m.create<Counter>(std::string("three")); }
