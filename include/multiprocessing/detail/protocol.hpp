// The manager protocol: fixed binary headers around Boost archives, and the
// codec that carries exceptions across processes.
//
// Request:  RequestHeader, name bytes, body (archive or raw ints).
// Reply:    ReplyHeader, body (archive on success, error record on failure).
// Headers are native-endian: both ends must share an architecture, as they
// must for Boost binary archives anyway.
#pragma once

#include "multiprocessing/detail/config.hpp"
#include "multiprocessing/connection.hpp"
#include "multiprocessing/detail/demangle.hpp"
#include "multiprocessing/detail/fork.hpp"
#include "multiprocessing/exceptions.hpp"
#include "multiprocessing/managers/token.hpp"

#include <boost/serialization/string.hpp>

#include <cxxabi.h>

#include <any>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <typeinfo>
#include <variant>
#include <mutex>
#include <string>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace multiprocessing::managers::detail {

/// Bumped whenever the wire format changes; checked in HELLO.
constexpr std::uint32_t protocol_version = 5;

enum class kind : std::uint8_t {
    hello = 1,      // id = session, sig = (version << 32) | pid
    call = 2,       // id = object, sig = signature hash, name = method
    create = 3,     // id = registration fingerprint, sig = constructor hash, name = typeid
    incref = 4,     // body = n x u64 ids
    decref = 5,     // body = n x (u64 id, i64 count)
    number_of_objects = 6,
    debug_info = 7,
    shutdown = 8,
    dummy = 9,
    ack = 10,       // request_id = the reply acknowledged, sig = 1 taken / 0 refused; no reply
    collect = 11,   // frees unreachable reference cycles; reply = the count freed, as text
    describe = 12,  // name = typeid; reply = a line per exposed method: name TAB sig TAB text
    shm_open = 13,  // reply ok carries a memfd (SCM_RIGHTS): both ends then use it; error: stay on the socket
};

/// ReplyHeader::flags: the reply hands something over (a queue item, a
/// permit) that the server takes back unless the client acknowledges it.
constexpr std::uint8_t reply_wants_ack = 1;
/// ReplyHeader::flags: the body ends with n x u64 object ids and a u32 n,
/// references counted for the caller's session, one per proxy of this
/// server's objects in the body (also sets reply_wants_ack).
constexpr std::uint8_t reply_gives_refs = 2;

struct RequestHeader {
    std::uint8_t kind;
    std::uint8_t flags;
    std::uint16_t name_len;
    std::uint32_t reserved;
    std::uint64_t request_id;
    std::uint64_t id;
    std::uint64_t sig;
};
static_assert(sizeof(RequestHeader) == 32, "request header layout");

enum class status : std::uint8_t { ok = 0, error = 1 };

struct ReplyHeader {
    std::uint8_t status;
    std::uint8_t flags;
    std::uint8_t reserved[6];
    std::uint64_t request_id;
};
static_assert(sizeof(ReplyHeader) == 16, "reply header layout");

inline void put_raw(std::vector<char>& buf, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    buf.insert(buf.end(), c, c + n);
}

template <class T>
void put_pod(std::vector<char>& buf, const T& v) { put_raw(buf, &v, sizeof v); }

/// Reads PODs from a received body, refusing to run past its end.
struct reader {
    const char* p;
    std::size_t n;
    template <class T>
    T pod() {
        if (n < sizeof(T)) throw ProcessError("truncated message");
        T v;
        std::memcpy(&v, p, sizeof v);
        p += sizeof v;
        n -= sizeof v;
        return v;
    }
    std::string str() {
        auto len = pod<std::uint32_t>();
        if (len > n) throw ProcessError("truncated message");
        std::string s(p, len);
        p += len;
        n -= len;
        return s;
    }
};

inline void put_str(std::vector<char>& buf, const std::string& s) {
    put_pod(buf, static_cast<std::uint32_t>(s.size()));
    put_raw(buf, s.data(), s.size());
}

inline void begin_request(std::vector<char>& buf, kind k, std::uint64_t request_id, std::uint64_t id,
                          std::uint64_t sig, const char* name = "", std::size_t name_len = 0) {
    connection::Connection::begin_frame(buf);
    RequestHeader h{static_cast<std::uint8_t>(k), 0, static_cast<std::uint16_t>(name_len), 0,
                    request_id, id, sig};
    put_pod(buf, h);
    put_raw(buf, name, name_len);
}

inline void begin_reply(std::vector<char>& buf, status s, std::uint64_t request_id) {
    connection::Connection::begin_frame(buf);
    ReplyHeader h{static_cast<std::uint8_t>(s), 0, {}, request_id};
    put_pod(buf, h);
}

// ---- exceptions across processes ----

/// Exception types rebuilt by name on the receiving side: the library's own
/// and the standard ones.  Anything else becomes RemoteError.
class exception_table {
public:
    static exception_table& instance();

    template <class E>
    void add() {
        std::lock_guard<std::mutex> g(mu_);
        auto name = detail_name<E>();
        by_type_[std::type_index(typeid(E))] = name;
        throwers_[name] = [](const std::string& m) { throw E(m); };
    }

    /// The wire name of e's exact dynamic type, or "" if it is not rebuilt.
    std::string name_of(const std::exception& e);

    [[noreturn]] void rethrow(const std::string& type, const std::string& message);

private:
    template <class E>
    static std::string detail_name() { return multiprocessing::detail::type_name<E>(); }

    exception_table();  // registers the standard and library types (impl/protocol.ipp)
    template <class E>
    void add_plain() {
        auto name = detail_name<E>();
        by_type_[std::type_index(typeid(E))] = name;
        throwers_[name] = [](const std::string&) { throw E(); };
    }

    std::mutex mu_;
    std::unordered_map<std::type_index, std::string> by_type_;
    std::unordered_map<std::string, std::function<void(const std::string&)>> throwers_;
};

/// Error record: u8 rebuild flag, type name, message.
inline void put_error(std::vector<char>& buf, std::uint64_t request_id, bool rebuild,
                      const std::string& type, const std::string& message) {
    begin_reply(buf, status::error, request_id);
    put_pod(buf, static_cast<std::uint8_t>(rebuild));
    put_str(buf, type);
    put_str(buf, message);
}

inline void put_exception(std::vector<char>& buf, std::uint64_t request_id, const std::exception& e) {
    if (auto* r = dynamic_cast<const RemoteError*>(&e)) {
        put_error(buf, request_id, false, r->type_name(), r->message());
        return;
    }
    std::string name = exception_table::instance().name_of(e);
    if (name.empty())
        put_error(buf, request_id, false, multiprocessing::detail::demangle(typeid(e).name()), e.what());
    else
        put_error(buf, request_id, true, name, e.what());
}

/// The type and message of the exception being handled, which is not a
/// std::exception (call inside catch (...)): its type's name (Python would
/// name any class), and for the usual suspects (a string, a C string, a
/// number) the value as the message.
inline std::pair<std::string, std::string> describe_foreign_exception() {
    std::string type = "unknown";
    if (const std::type_info* t = abi::__cxa_current_exception_type())
        type = multiprocessing::detail::demangle(t->name());
    std::string message = "exception of type " + type;
    try {
        throw;
    } catch (const char* s) {
        message = s ? s : "";
    } catch (const std::string& s) {
        message = s;
    } catch (long long v) {
        message = std::to_string(v);
    } catch (long v) {
        message = std::to_string(v);
    } catch (int v) {
        message = std::to_string(v);
    } catch (unsigned v) {
        message = std::to_string(v);
    } catch (double v) {
        message = std::to_string(v);
    } catch (...) {
    }
    return {type, message};
}

/// An error reply for an exception that is not a std::exception.
inline void put_foreign_exception(std::vector<char>& buf, std::uint64_t request_id) {
    auto d = describe_foreign_exception();
    put_error(buf, request_id, false, d.first, d.second);
}

[[noreturn]] inline void throw_error(reader r) {
    bool rebuild = r.pod<std::uint8_t>() != 0;
    std::string type = r.str();
    std::string message = r.str();
    if (rebuild) exception_table::instance().rethrow(type, message);
    throw RemoteError(type, message);
}

}  // namespace multiprocessing::managers::detail

#if defined(MULTIPROCESSING_HEADER_ONLY)
#include "multiprocessing/impl/protocol.ipp"
#endif
