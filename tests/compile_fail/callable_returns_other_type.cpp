// expect: the callable must return a T, a std::shared_ptr<T> or a std::shared_ptr to a class derived from T
#include <multiprocessing.hpp>
#include <memory>
struct Foo {
    int get() const { return 1; }
};
struct Bar {
    double x = 0;
};
MP_EXPOSE(Foo, get)
struct M : multiprocessing::managers::BaseManager<M> {};
void f() {
    // A Bar would be served through Foo's methods.
    M::register_type<Foo>("Foo", [] { return std::make_shared<Bar>(); });
}
