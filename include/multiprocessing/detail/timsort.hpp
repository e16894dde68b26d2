// CPython's list.sort(): timsort with powersort's merge order, written from
// the description in CPython's Objects/listsort.txt.  It makes the same
// comparisons in the same order as CPython 3.13, so a list whose order is
// inconsistent (nan among numbers) sorts to what CPython gives, and a
// comparison that throws (TypeError) leaves the list in the permutation
// CPython leaves it in: nothing lost or duplicated.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

namespace multiprocessing::detail {

template <class T, class Less>
class timsorter {
public:
    timsorter(T* a, std::ptrdiff_t n, Less lt) : a_(a), n_(n), lt_(lt) {}

    void sort() {
        if (n_ < 2) return;
        std::ptrdiff_t minrun = compute_minrun(n_), lo = 0, remaining = n_;
        do {
            std::ptrdiff_t n = count_run(a_ + lo, remaining);
            if (n < minrun) {
                std::ptrdiff_t force = remaining <= minrun ? remaining : minrun;
                binary_insertion(a_ + lo, force, n);
                n = force;
            }
            found_new_run(n);
            pending_.push_back({lo, n, 0});
            lo += n;
            remaining -= n;
        } while (remaining);
        while (pending_.size() > 1) {  // force the collapse
            std::ptrdiff_t i = static_cast<std::ptrdiff_t>(pending_.size()) - 2;
            if (i > 0 && pending_[i - 1].len < pending_[i + 1].len) --i;
            merge_at(i);
        }
    }

private:
    static constexpr std::ptrdiff_t max_minrun = 64, initial_min_gallop = 7;
    struct run { std::ptrdiff_t start, len; int power; };

    bool lt(const T& x, const T& y) { return lt_(x, y); }

    static std::ptrdiff_t compute_minrun(std::ptrdiff_t n) {
        std::ptrdiff_t r = 0;
        while (n >= max_minrun) {
            r |= n & 1;
            n >>= 1;
        }
        return n + r;
    }

    /// a[0:n] with a[0:ok] already sorted: stable binary insertion.
    void binary_insertion(T* a, std::ptrdiff_t n, std::ptrdiff_t ok) {
        if (!ok) ++ok;
        for (; ok < n; ++ok) {
            std::ptrdiff_t left = 0, right = ok;
            do {
                std::ptrdiff_t mid = (left + right) >> 1;
                if (lt(a[ok], a[mid])) right = mid;
                else left = mid + 1;
            } while (left < right);
            T pivot = std::move(a[ok]);
            std::move_backward(a + left, a + ok, a + ok + 1);
            a[left] = std::move(pivot);
        }
    }

    /// Length of the run at a (at most `remaining`), made ascending in place.
    /// A descending run is one whose items never increase; runs of equal
    /// items inside it keep their order (reversed twice).
    std::ptrdiff_t count_run(T* a, std::ptrdiff_t remaining) {
        std::ptrdiff_t n = 1;
        for (; n < remaining; ++n)
            if (lt(a[n], a[n - 1])) break;
        if (n == remaining) return n;
        if (n > 1) {
            if (lt(a[0], a[n - 1])) return n;  // it rose somewhere: ascending
            std::reverse(a, a + n);            // all equal: the start of a descending run
        }
        ++n;
        std::ptrdiff_t equal = 0;
        auto flip_equal = [&] {
            if (equal) {
                ++equal;
                std::reverse(a + n - equal, a + n);
                equal = 0;
            }
        };
        for (; n < remaining; ++n) {
            if (lt(a[n], a[n - 1])) flip_equal();
            else if (lt(a[n - 1], a[n])) break;
            else ++equal;
        }
        flip_equal();
        std::reverse(a, a + n);
        for (; n < remaining; ++n)  // an ascending tail may extend it
            if (lt(a[n], a[n - 1])) break;
        return n;
    }

    /// Where key goes in sorted a[0:n], left of any equal items, searching
    /// outward from a[hint] by 1, 3, 7, ... then by bisection.
    std::ptrdiff_t gallop_left(const T& key, const T* a, std::ptrdiff_t n, std::ptrdiff_t hint) {
        std::ptrdiff_t last = 0, ofs = 1;
        if (lt(a[hint], key)) {
            const std::ptrdiff_t max = n - hint;
            while (ofs < max) {
                if (!lt(a[hint + ofs], key)) break;
                last = ofs;
                ofs = (ofs << 1) + 1;
            }
            if (ofs > max) ofs = max;
            last += hint;
            ofs += hint;
        } else {
            const std::ptrdiff_t max = hint + 1;
            while (ofs < max) {
                if (lt(a[hint - ofs], key)) break;
                last = ofs;
                ofs = (ofs << 1) + 1;
            }
            if (ofs > max) ofs = max;
            std::ptrdiff_t k = last;
            last = hint - ofs;
            ofs = hint - k;
        }
        ++last;
        while (last < ofs) {
            std::ptrdiff_t m = last + ((ofs - last) >> 1);
            if (lt(a[m], key)) last = m + 1;
            else ofs = m;
        }
        return ofs;
    }

    /// As gallop_left, but right of any equal items.
    std::ptrdiff_t gallop_right(const T& key, const T* a, std::ptrdiff_t n, std::ptrdiff_t hint) {
        std::ptrdiff_t last = 0, ofs = 1;
        if (lt(key, a[hint])) {
            const std::ptrdiff_t max = hint + 1;
            while (ofs < max) {
                if (!lt(key, a[hint - ofs])) break;
                last = ofs;
                ofs = (ofs << 1) + 1;
            }
            if (ofs > max) ofs = max;
            std::ptrdiff_t k = last;
            last = hint - ofs;
            ofs = hint - k;
        } else {
            const std::ptrdiff_t max = n - hint;
            while (ofs < max) {
                if (lt(key, a[hint + ofs])) break;
                last = ofs;
                ofs = (ofs << 1) + 1;
            }
            if (ofs > max) ofs = max;
            last += hint;
            ofs += hint;
        }
        ++last;
        while (last < ofs) {
            std::ptrdiff_t m = last + ((ofs - last) >> 1);
            if (lt(key, a[m])) ofs = m;
            else last = m + 1;
        }
        return ofs;
    }

    /// Merges a[0:na] and b = a + na [0:nb], na <= nb, through a copy of a.
    void merge_lo(T* pa, std::ptrdiff_t na, T* pb, std::ptrdiff_t nb) {
        tmp_.assign(std::make_move_iterator(pa), std::make_move_iterator(pa + na));
        T* A = tmp_.data();
        T* B = pb;
        T* dest = pa;
        try {
            *dest++ = std::move(*B++);
            if (--nb == 0) goto done;
            if (na == 1) goto copy_b;
            {
                std::ptrdiff_t mg = min_gallop_;
                for (;;) {
                    std::ptrdiff_t acount = 0, bcount = 0;
                    for (;;) {  // one item at a time until a run keeps winning
                        if (lt(*B, *A)) {
                            *dest++ = std::move(*B++);
                            ++bcount;
                            acount = 0;
                            if (--nb == 0) goto done;
                            if (bcount >= mg) break;
                        } else {
                            *dest++ = std::move(*A++);
                            ++acount;
                            bcount = 0;
                            if (--na == 1) goto copy_b;
                            if (acount >= mg) break;
                        }
                    }
                    ++mg;
                    do {  // galloping
                        mg -= mg > 1;
                        min_gallop_ = mg;
                        std::ptrdiff_t k = gallop_right(*B, A, na, 0);
                        acount = k;
                        if (k) {
                            dest = std::move(A, A + k, dest);
                            A += k;
                            na -= k;
                            if (na == 1) goto copy_b;
                            if (na == 0) goto done;  // only with an inconsistent order
                        }
                        *dest++ = std::move(*B++);
                        if (--nb == 0) goto done;
                        k = gallop_left(*A, B, nb, 0);
                        bcount = k;
                        if (k) {
                            dest = std::move(B, B + k, dest);
                            B += k;
                            nb -= k;
                            if (nb == 0) goto done;
                        }
                        *dest++ = std::move(*A++);
                        if (--na == 1) goto copy_b;
                    } while (acount >= initial_min_gallop || bcount >= initial_min_gallop);
                    ++mg;
                    min_gallop_ = mg;
                }
            }
        copy_b:
            // The last item of a belongs after everything left in b.
            dest = std::move(B, B + nb, dest);
            *dest = std::move(*A);
            return;
        done:;
        } catch (...) {
            std::move(A, A + na, dest);
            throw;
        }
        std::move(A, A + na, dest);
    }

    /// Merges a[0:na] and b = a + na [0:nb], na >= nb, from the right,
    /// through a copy of b.
    void merge_hi(T* pa, std::ptrdiff_t na, T* pb, std::ptrdiff_t nb) {
        tmp_.assign(std::make_move_iterator(pb), std::make_move_iterator(pb + nb));
        T* const basea = pa;
        T* const baseb = tmp_.data();
        T* dest = pb + nb - 1;
        T* A = pa + na - 1;
        T* B = baseb + nb - 1;
        try {
            *dest-- = std::move(*A--);
            if (--na == 0) goto done;
            if (nb == 1) goto copy_a;
            {
                std::ptrdiff_t mg = min_gallop_;
                for (;;) {
                    std::ptrdiff_t acount = 0, bcount = 0;
                    for (;;) {
                        if (lt(*B, *A)) {
                            *dest-- = std::move(*A--);
                            ++acount;
                            bcount = 0;
                            if (--na == 0) goto done;
                            if (acount >= mg) break;
                        } else {
                            *dest-- = std::move(*B--);
                            ++bcount;
                            acount = 0;
                            if (--nb == 1) goto copy_a;
                            if (bcount >= mg) break;
                        }
                    }
                    ++mg;
                    do {
                        mg -= mg > 1;
                        min_gallop_ = mg;
                        std::ptrdiff_t k = na - gallop_right(*B, basea, na, na - 1);
                        acount = k;
                        if (k) {
                            dest -= k;
                            A -= k;
                            std::move_backward(A + 1, A + 1 + k, dest + 1 + k);
                            na -= k;
                            if (na == 0) goto done;
                        }
                        *dest-- = std::move(*B--);
                        if (--nb == 1) goto copy_a;
                        k = nb - gallop_left(*A, baseb, nb, nb - 1);
                        bcount = k;
                        if (k) {
                            dest -= k;
                            B -= k;
                            std::move(B + 1, B + 1 + k, dest + 1);
                            nb -= k;
                            if (nb == 1) goto copy_a;
                            if (nb == 0) goto done;  // only with an inconsistent order
                        }
                        *dest-- = std::move(*A--);
                        if (--na == 0) goto done;
                    } while (acount >= initial_min_gallop || bcount >= initial_min_gallop);
                    ++mg;
                    min_gallop_ = mg;
                }
            }
        copy_a:
            // The first item of b belongs before everything left in a.
            std::move_backward(A + 1 - na, A + 1, dest + 1);
            dest -= na;
            *dest = std::move(*B);
            return;
        done:;
        } catch (...) {
            std::move(baseb, baseb + nb, dest - (nb - 1));
            throw;
        }
        std::move(baseb, baseb + nb, dest - (nb - 1));
    }

    /// Merges pending runs i and i + 1.
    void merge_at(std::ptrdiff_t i) {
        T* pa = a_ + pending_[i].start;
        std::ptrdiff_t na = pending_[i].len;
        T* pb = a_ + pending_[i + 1].start;
        std::ptrdiff_t nb = pending_[i + 1].len;
        pending_[i].len = na + nb;
        if (i == static_cast<std::ptrdiff_t>(pending_.size()) - 3) pending_[i + 1] = pending_[i + 2];
        pending_.pop_back();
        // Items of a before b's first, and of b after a's last, stay put.
        std::ptrdiff_t k = gallop_right(*pb, pa, na, 0);
        pa += k;
        na -= k;
        if (na == 0) return;
        nb = gallop_left(pa[na - 1], pb, nb, nb - 1);
        if (nb <= 0) return;
        if (na <= nb) merge_lo(pa, na, pb, nb);
        else merge_hi(pa, na, pb, nb);
    }

    /// Powersort: the depth of the boundary between two adjacent runs in
    /// the ideal binary merge tree over [0, n).
    static int power(std::ptrdiff_t s1, std::ptrdiff_t n1, std::ptrdiff_t n2, std::ptrdiff_t n) {
        int result = 0;
        std::ptrdiff_t a = 2 * s1 + n1, b = a + n1 + n2;
        for (;;) {
            ++result;
            if (a >= n) {
                a -= n;
                b -= n;
            } else if (b >= n) {
                break;
            }
            a <<= 1;
            b <<= 1;
        }
        return result;
    }

    void found_new_run(std::ptrdiff_t n2) {
        if (pending_.empty()) return;
        int p = power(pending_.back().start, pending_.back().len, n2, n_);
        while (pending_.size() > 1 && pending_[pending_.size() - 2].power > p)
            merge_at(static_cast<std::ptrdiff_t>(pending_.size()) - 2);
        pending_.back().power = p;
    }

    T* a_;
    std::ptrdiff_t n_;
    Less lt_;
    std::ptrdiff_t min_gallop_ = initial_min_gallop;
    std::vector<run> pending_;
    std::vector<T> tmp_;
};

/// Sorts v in place exactly as CPython's list.sort() would with `lt` as
/// its `<`.  If lt throws, v keeps every item, in CPython's order at that
/// point, and the exception propagates.
template <class T, class Less>
void timsort(std::vector<T>& v, Less lt) {
    timsorter<T, Less>(v.data(), static_cast<std::ptrdiff_t>(v.size()), lt).sort();
}

}  // namespace multiprocessing::detail
