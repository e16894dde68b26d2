// A user's program: a registered class, a started manager, one proxy call.
#include <multiprocessing.hpp>
#include <iostream>

class Answer {
public:
    int get() const { return 42; }
};
MP_EXPOSE(Answer, get)

int main() {
    namespace mp = multiprocessing;
    struct M : mp::managers::BaseManager<M> {};
    M::register_type<Answer>("Answer");
    M manager;
    manager.start();
    std::cout << manager.create<Answer>().get() << "\n";
}
