// A class whose methods take and return a type of the program's own: the
// type needs a Boost.Serialization serialize() (Python pickles any class;
// C++ has to be told which members travel).  MP_EXPOSE sits in the class's
// own namespace; a string_view parameter travels as a string.
#include <multiprocessing.hpp>

#include <boost/serialization/vector.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mp = multiprocessing;

namespace geo {

// 1. The argument type: a plain struct with a serialize() member.
struct Point {
    double x = 0, y = 0;
    template <class Archive>
    void serialize(Archive& ar, unsigned /*version*/) {
        ar & x & y;
    }
};

// 2. The shared class: methods take and return Points.
class Route {
public:
    void add(const Point& p) { points_.push_back(p); }
    std::vector<Point> points() const { return points_; }
    std::optional<Point> nearest(const Point& to) const {
        std::optional<Point> best;
        double best_d = 0;
        for (const auto& p : points_) {
            double d = (p.x - to.x) * (p.x - to.x) + (p.y - to.y) * (p.y - to.y);
            if (!best || d < best_d) best = p, best_d = d;
        }
        return best;
    }
    std::string describe(std::string_view label) const {
        return std::string(label) + ": " + std::to_string(points_.size()) + " points";
    }

private:
    std::vector<Point> points_;
};
MP_EXPOSE(Route, add, points, nearest, describe)  // in Route's own namespace

}  // namespace geo

struct RouteManager : mp::managers::BaseManager<RouteManager> {};

int main() {
    RouteManager::register_type<geo::Route>("Route");
    RouteManager manager;
    manager.start();
    auto route = manager.create<geo::Route>();
    route.add(geo::Point{0, 0});  // named: a proxy method cannot deduce from {0, 0}
    mp::Process child([route] {
        route.add(geo::Point{3, 4});
        route.add(geo::Point{1, 1});
    });
    child.start();
    child.join();
    for (const auto& p : route.points()) std::cout << "(" << p.x << ", " << p.y << ") ";
    std::cout << "\n";
    auto n = route.nearest(geo::Point{2.5, 3.5});
    std::cout << "nearest to (2.5, 3.5): (" << n->x << ", " << n->y << ")\n";
    std::cout << route.describe("route") << "\n";
    return route.points().size() == 3 ? 0 : 1;
}
