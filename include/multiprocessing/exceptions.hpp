// Exception types named after the Python ones they stand for.
//
// Each derives from the std exception closest in meaning, so code that
// catches std::out_of_range also catches KeyError and IndexError.  All of
// them cross the process boundary: an exception of one of these exact types
// thrown by a method in the server is re-thrown as the same type in the
// caller (see managers::RemoteError for every other type).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

namespace multiprocessing {

/// Python's ProcessError: base of the errors this library raises itself.
class ProcessError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python's BufferTooShort: a receive buffer was smaller than the message.
/// From Connection::recv_bytes_into, received() holds the whole message (in
/// Python, e.args[0]).
class BufferTooShort : public ProcessError {
public:
    using ProcessError::ProcessError;
    BufferTooShort(const std::string& what, std::string received)
        : ProcessError(what), received_(std::make_shared<const std::string>(std::move(received))) {}
    /// The message that did not fit (empty if none came with the error).
    const std::string& received() const {
        static const std::string none;
        return received_ ? *received_ : none;
    }

private:
    std::shared_ptr<const std::string> received_;  // shared: copying an exception must not throw
};

/// Python's AuthenticationError: the HMAC challenge on the authkey failed.
class AuthenticationError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// Python's TimeoutError: a wait with a timeout ran out.
class TimeoutError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

/// Python's ConnectionError (and EOFError/BrokenPipeError): the peer is gone
/// or the connection failed.  Calls on a dead server throw this.
class ConnectionError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python's EOFError: the peer closed the connection.
class EOFError : public ConnectionError {
public:
    using ConnectionError::ConnectionError;
};

/// Python's TypeError: an operation got a value of the wrong type.
class TypeError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Python's ValueError: right type, bad value.
class ValueError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Python's OverflowError: an arithmetic result out of range (here: an int
/// result that does not fit in 64 bits, where Python grows a big int).
class OverflowError : public std::overflow_error {
public:
    using std::overflow_error::overflow_error;
};

/// Python's KeyError: a missing key.
class KeyError : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

/// Python's IndexError: a sequence index out of range.
class IndexError : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

/// Python's AttributeError: no attribute of that name.
class AttributeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python's NotImplementedError.
class NotImplementedError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// Python's StopIteration: an iterator is exhausted.
class StopIteration : public std::runtime_error {
public:
    StopIteration() : std::runtime_error("StopIteration") {}
    using std::runtime_error::runtime_error;
};

}  // namespace multiprocessing

namespace multiprocessing {

/// Python's FileNotFoundError: attaching to (or unlinking) a shared memory
/// name that does not exist.  Python's derives from OSError; there is no
/// OSError here, so it derives from std::runtime_error.
class FileNotFoundError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python's FileExistsError: creating a shared memory segment under a name
/// already in use.
class FileExistsError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace multiprocessing
