// The seeds' program: a child fills a managed dict with mixed keys and
// values and reverses a managed list; the parent prints both, exactly as
// CPython does:
//   {1: '1', '2': 2, 0.25: None}
//   [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
#include <multiprocessing.hpp>

#include <iostream>

namespace mp = multiprocessing;
using mp::managers::DictProxy;
using mp::managers::ListProxy;

void f(DictProxy<> d, ListProxy<> l) {
    d[1] = "1";
    d["2"] = 2;
    d[0.25] = mp::None;
    l.reverse();
}

int main() {
    auto manager = mp::Manager();                 // with Manager() as manager:
    auto d = manager.dict();                      //     d = manager.dict()
    auto l = manager.list(mp::range(10));         //     l = manager.list(range(10))
    mp::Process p(f, d, l);                       //     p = Process(target=f, args=(d, l))
    p.start();                                    //     p.start()
    p.join();                                     //     p.join()
    std::cout << d << '\n';                       //     print(d)
    std::cout << l << '\n';                       //     print(l)
}
