// What the two files of test_compiled share: a manager class and a referent
// registered in one file and used in the other, so the link proves that
// separately compiled files agree (one definition of each).
#pragma once

#include <multiprocessing.hpp>

#include <string>

class Tally {
public:
    explicit Tally(int start = 0) : n_(start) {}
    int add(int k) { return n_ += k; }
    int value() const { return n_; }
    std::string label(const std::string& prefix) const { return prefix + std::to_string(n_); }

private:
    int n_;
};
MP_EXPOSE(Tally, add, value, label)

struct TallyManager : multiprocessing::managers::BaseManager<TallyManager> {
    using BaseManager::BaseManager;
};

/// Defined in b.cpp: adds 1 to d[key] through the proxy and returns the
/// new value.
long long bump(multiprocessing::managers::Proxy<multiprocessing::managers::Dict<multiprocessing::object, multiprocessing::object>> d,
               const std::string& key);
