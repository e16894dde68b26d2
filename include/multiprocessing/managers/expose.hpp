// MP_EXPOSE and MP_PROXY: declare which methods of a class a proxy exposes.
//
// Python lists exposed method names at register() time and checks calls at
// run time; here the list makes a proxy class whose member functions have
// those names, so calling a method that is not exposed, or with arguments
// that do not convert to its parameters, fails to compile.
//
// Overloads: an entry `(name, int(int), std::string(std::string) const)`
// exposes those overloads of name; a call picks the first whose parameter
// types match the arguments exactly, else the first they convert to.
// Default arguments: a call may leave out the trailing arguments that have
// defaults; the server calls the method by name, so the class's own
// defaults apply (not for overloads listed with signatures).
// Limits: up to 32 entries; use MP_PROXY for several proxies of one class;
// MP_EXPOSE goes in T's namespace or at global scope (where lookup from T
// finds it), not in a third namespace.
#pragma once

#include <tuple>
#include <utility>

/// Lets argument-dependent lookup reach the global namespace, where
/// MP_EXPOSE at global scope declares its function for a T of any namespace.
struct multiprocessing_expose_tag {};

#define MP_DETAIL_EXPAND(x) x

#define MP_DETAIL_FE_1(M, T, x) M(T, x)
#define MP_DETAIL_FE_2(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_1(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_3(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_2(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_4(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_3(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_5(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_4(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_6(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_5(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_7(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_6(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_8(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_7(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_9(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_8(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_10(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_9(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_11(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_10(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_12(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_11(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_13(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_12(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_14(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_13(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_15(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_14(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_16(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_15(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_17(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_16(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_18(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_17(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_19(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_18(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_20(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_19(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_21(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_20(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_22(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_21(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_23(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_22(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_24(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_23(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_25(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_24(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_26(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_25(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_27(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_26(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_28(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_27(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_29(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_28(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_30(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_29(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_31(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_30(M, T, __VA_ARGS__))
#define MP_DETAIL_FE_32(M, T, x, ...) M(T, x) MP_DETAIL_EXPAND(MP_DETAIL_FE_31(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_1(M, T, x) M(T, x)
#define MP_DETAIL_FL_2(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_1(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_3(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_2(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_4(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_3(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_5(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_4(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_6(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_5(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_7(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_6(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_8(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_7(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_9(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_8(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_10(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_9(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_11(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_10(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_12(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_11(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_13(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_12(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_14(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_13(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_15(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_14(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_16(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_15(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_17(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_16(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_18(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_17(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_19(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_18(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_20(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_19(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_21(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_20(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_22(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_21(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_23(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_22(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_24(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_23(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_25(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_24(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_26(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_25(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_27(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_26(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_28(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_27(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_29(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_28(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_30(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_29(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_31(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_30(M, T, __VA_ARGS__))
#define MP_DETAIL_FL_32(M, T, x, ...) M(T, x), MP_DETAIL_EXPAND(MP_DETAIL_FL_31(M, T, __VA_ARGS__))
#define MP_DETAIL_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, NAME, ...) NAME
#define MP_DETAIL_FOR_EACH(M, T, ...) MP_DETAIL_EXPAND(MP_DETAIL_PICK(__VA_ARGS__, MP_DETAIL_FE_32, MP_DETAIL_FE_31, MP_DETAIL_FE_30, MP_DETAIL_FE_29, MP_DETAIL_FE_28, MP_DETAIL_FE_27, MP_DETAIL_FE_26, MP_DETAIL_FE_25, MP_DETAIL_FE_24, MP_DETAIL_FE_23, MP_DETAIL_FE_22, MP_DETAIL_FE_21, MP_DETAIL_FE_20, MP_DETAIL_FE_19, MP_DETAIL_FE_18, MP_DETAIL_FE_17, MP_DETAIL_FE_16, MP_DETAIL_FE_15, MP_DETAIL_FE_14, MP_DETAIL_FE_13, MP_DETAIL_FE_12, MP_DETAIL_FE_11, MP_DETAIL_FE_10, MP_DETAIL_FE_9, MP_DETAIL_FE_8, MP_DETAIL_FE_7, MP_DETAIL_FE_6, MP_DETAIL_FE_5, MP_DETAIL_FE_4, MP_DETAIL_FE_3, MP_DETAIL_FE_2, MP_DETAIL_FE_1, MP_DETAIL_UNUSED)(M, T, __VA_ARGS__))
#define MP_DETAIL_FOR_LIST(M, T, ...) MP_DETAIL_EXPAND(MP_DETAIL_PICK(__VA_ARGS__, MP_DETAIL_FL_32, MP_DETAIL_FL_31, MP_DETAIL_FL_30, MP_DETAIL_FL_29, MP_DETAIL_FL_28, MP_DETAIL_FL_27, MP_DETAIL_FL_26, MP_DETAIL_FL_25, MP_DETAIL_FL_24, MP_DETAIL_FL_23, MP_DETAIL_FL_22, MP_DETAIL_FL_21, MP_DETAIL_FL_20, MP_DETAIL_FL_19, MP_DETAIL_FL_18, MP_DETAIL_FL_17, MP_DETAIL_FL_16, MP_DETAIL_FL_15, MP_DETAIL_FL_14, MP_DETAIL_FL_13, MP_DETAIL_FL_12, MP_DETAIL_FL_11, MP_DETAIL_FL_10, MP_DETAIL_FL_9, MP_DETAIL_FL_8, MP_DETAIL_FL_7, MP_DETAIL_FL_6, MP_DETAIL_FL_5, MP_DETAIL_FL_4, MP_DETAIL_FL_3, MP_DETAIL_FL_2, MP_DETAIL_FL_1, MP_DETAIL_UNUSED)(M, T, __VA_ARGS__))

// An entry is a method name, or `(name, Sig...)` for the overloads of name
// with those signatures (`int(int)`, `int(int) const`).
#define MP_DETAIL_CAT(a, b) MP_DETAIL_CAT_I(a, b)
#define MP_DETAIL_CAT_I(a, b) a##b
#define MP_DETAIL_UNPAREN(...) __VA_ARGS__
#define MP_DETAIL_PROBE_PAREN(...) ~, 1
#define MP_DETAIL_SECOND(a, b, ...) b
#define MP_DETAIL_SECOND_I(...) MP_DETAIL_EXPAND(MP_DETAIL_SECOND(__VA_ARGS__))
#define MP_DETAIL_IS_PAREN(x) MP_DETAIL_SECOND_I(MP_DETAIL_PROBE_PAREN x, 0, ~)
#define MP_DETAIL_WITH_T(T, x) (T, MP_DETAIL_UNPAREN x)

#define MP_DETAIL_PROXY_METHOD(T, x) MP_DETAIL_CAT(MP_DETAIL_PROXY_METHOD_, MP_DETAIL_IS_PAREN(x))(T, x)
#define MP_DETAIL_PROXY_METHOD_0(T, name)                                                    \
    struct mp_call_##name {                                                                  \
        template <class MpC, class... MpA>                                                   \
        static auto call(MpC& c, MpA&&... a) -> decltype(c.name(std::forward<MpA>(a)...)) {  \
            return c.name(std::forward<MpA>(a)...);                                          \
        }                                                                                    \
    };                                                                                       \
    template <class... MpArgs>                                                               \
    decltype(auto) name(MpArgs&&... mp_args) const {                                         \
        return this->template _call_defaulted_<&T::name, mp_call_##name>(#name,              \
                                                                         std::forward<MpArgs>(mp_args)...); \
    }
#define MP_DETAIL_PROXY_METHOD_1(T, x) MP_DETAIL_EXPAND(MP_DETAIL_PROXY_OVERLOADS MP_DETAIL_WITH_T(T, x))
#define MP_DETAIL_PROXY_OVERLOADS(T, name, ...)                                              \
    struct mp_overloads_##name {                                                             \
        template <class MpSig>                                                               \
        static constexpr MpSig T::*pointer() { return &T::name; }                            \
    };                                                                                       \
    template <class... MpArgs>                                                               \
    decltype(auto) name(MpArgs&&... mp_args) const {                                         \
        return this->template _call_overload_<mp_overloads_##name, __VA_ARGS__>(             \
            #name, std::forward<MpArgs>(mp_args)...);                                        \
    }

#define MP_DETAIL_METHOD_DESC(T, x) MP_DETAIL_CAT(MP_DETAIL_METHOD_DESC_, MP_DETAIL_IS_PAREN(x))(T, x)
#define MP_DETAIL_METHOD_DESC_0(T, name) \
    ::multiprocessing::managers::detail::defaulted_descs<&T::name, mp_call_##name, T>(#name)
#define MP_DETAIL_METHOD_DESC_1(T, x) MP_DETAIL_EXPAND(MP_DETAIL_OVERLOAD_DESCS MP_DETAIL_WITH_T(T, x))
#define MP_DETAIL_OVERLOAD_DESCS(T, name, ...) \
    ::multiprocessing::managers::detail::overload_descs<mp_overloads_##name, __VA_ARGS__>(#name)

// _exposed_ is a template on the referent so that its table is built only
// where it is used (a registration, a call), not in every file that sees
// the macro: a full specialization's plain member would be instantiated
// in each of them.
#define MP_DETAIL_PROXY_BODY(T, ...)                                                         \
    MP_DETAIL_FOR_EACH(MP_DETAIL_PROXY_METHOD, T, __VA_ARGS__)                               \
    template <class MpSelf = T>                                                              \
    static auto _exposed_() {                                                                \
        return std::tuple_cat(MP_DETAIL_FOR_LIST(MP_DETAIL_METHOD_DESC, MpSelf, __VA_ARGS__)); \
    }

/// Exposes methods of class T through Proxy<T> (Python's `exposed=`).
/// Use after T is complete, in T's namespace or at global scope:
/// MP_EXPOSE(Counter, increment, value).  It declares, in that namespace,
/// the class MpExposedProxy<T> (Proxy<T>'s base) and a function that
/// argument-dependent lookup finds from T.
#define MP_EXPOSE(T, ...)                                                                    \
    template <class MpExposed>                                                               \
    class MpExposedProxy;                                                                    \
    template <>                                                                              \
    class MpExposedProxy<T> : public ::multiprocessing::managers::ProxyBase<T> {             \
    public:                                                                                  \
        using ::multiprocessing::managers::ProxyBase<T>::ProxyBase;                          \
        MP_DETAIL_PROXY_BODY(T, __VA_ARGS__)                                                 \
    };                                                                                       \
    [[maybe_unused]] inline MpExposedProxy<T>* multiprocessing_exposed_proxy(T*, ::multiprocessing_expose_tag) { \
        return nullptr;                                                                      \
    }

#define MP_DETAIL_IFACE_METHOD(I, x) MP_DETAIL_CAT(MP_DETAIL_IFACE_METHOD_, MP_DETAIL_IS_PAREN(x))(I, x)
#define MP_DETAIL_IFACE_METHOD_0(I, name) \
    static_assert(sizeof(I*) == 0, "MP_INTERFACE: write each method as (name, Signature...), e.g. (get, int(double))");
#define MP_DETAIL_IFACE_METHOD_1(I, x) MP_DETAIL_EXPAND(MP_DETAIL_IFACE_OVERLOADS MP_DETAIL_WITH_T(I, x))
#define MP_DETAIL_IFACE_OVERLOADS(I, name, ...)                                              \
    template <class... MpArgs>                                                               \
    decltype(auto) name(MpArgs&&... mp_args) const {                                         \
        return this->template _call_declared_<__VA_ARGS__>(#name, std::forward<MpArgs>(mp_args)...); \
    }
#define MP_DETAIL_IFACE_DESC(I, x) MP_DETAIL_CAT(MP_DETAIL_IFACE_DESC_, MP_DETAIL_IS_PAREN(x))(I, x)
#define MP_DETAIL_IFACE_DESC_0(I, name) std::tuple<>()
#define MP_DETAIL_IFACE_DESC_1(I, x) MP_DETAIL_EXPAND(MP_DETAIL_IFACE_DESCS MP_DETAIL_WITH_T(I, x))
#define MP_DETAIL_IFACE_DESCS(I, name, ...) \
    ::multiprocessing::managers::detail::declared_descs<I, __VA_ARGS__>(#name)

/// Declares a proxy class Name for a class this program does not have,
/// from the methods a client calls, each as `(name, Signature...)`:
///   MP_INTERFACE(StringQueue, (put, void(const std::string&)), (get, std::string(double)));
///   M::register_type<StringQueue>("get_queue");  m.connect();
///   auto q = m.create<StringQueue>();  q.put("x");
/// Python's client-side register('get_queue') with no callable, typed:
/// calls are checked at compile time against these signatures, and connect()
/// (or create) checks that the server exposes each method with the same
/// parameter and result types (TypeError naming the method otherwise).
/// A method returning a new shared object is declared as returning
/// std::shared_ptr<OtherInterface>.  Usable in any namespace.
#define MP_INTERFACE(Name, ...)                                                              \
    class Name : public ::multiprocessing::managers::InterfaceProxy<Name> {                  \
    public:                                                                                  \
        using ::multiprocessing::managers::InterfaceProxy<Name>::InterfaceProxy;             \
        MP_DETAIL_FOR_EACH(MP_DETAIL_IFACE_METHOD, Name, __VA_ARGS__)                         \
        static auto _exposed_() {                                                            \
            return std::tuple_cat(MP_DETAIL_FOR_LIST(MP_DETAIL_IFACE_DESC, Name, __VA_ARGS__)); \
        }                                                                                    \
    }

/// Defines a named proxy class exposing some methods of T (Python's
/// `proxytype=` with its own `_exposed_`).  Register it with
/// register_type<T, Name>(typeid).  Usable in any namespace.
#define MP_PROXY(Name, T, ...)                                                               \
    class Name : public ::multiprocessing::managers::ProxyBase<T> {                          \
    public:                                                                                  \
        using ::multiprocessing::managers::ProxyBase<T>::ProxyBase;                          \
        MP_DETAIL_PROXY_BODY(T, __VA_ARGS__)                                                 \
    }
