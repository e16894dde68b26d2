// Out-of-line members of the classes in <multiprocessing/shared_memory.hpp>: inline in
// header-only builds, compiled once with MULTIPROCESSING_SEPARATE_COMPILATION
// (so other files neither parse nor instantiate them).
#pragma once

#include "multiprocessing/shared_memory.hpp"

namespace multiprocessing::shared_memory {

MULTIPROCESSING_DECL auto ShareableList::reference::operator=(const Item& v) const -> const reference& {
    sl_->set(i_, v);
    return *this;
}

MULTIPROCESSING_DECL ShareableList::ShareableList(const std::vector<Item>& sequence, std::optional<std::string> name) {
    create(sequence, std::move(name));
}

MULTIPROCESSING_DECL ShareableList::ShareableList(std::initializer_list<Item> sequence, std::optional<std::string> name) {
    create(std::vector<Item>(sequence), std::move(name));
}

MULTIPROCESSING_DECL ShareableList ShareableList::attach(std::string name) {
    return ShareableList(SharedMemory::attach(std::move(name)));
}

MULTIPROCESSING_DECL Item ShareableList::get(std::ptrdiff_t i) const {
    std::size_t p = position(i, "index out of range");
    std::string fmt = format_at(p);
    int code = code_at(p);
    const unsigned char* at = base() + data_start() + static_cast<std::size_t>(offsets_[p]);
    if (code == 3) return Item();
    if (!fmt.empty() && fmt.back() == 's') {
        std::size_t n = slot_len(fmt);
        if (n > slot(p)) throw ValueError("corrupt ShareableList: item larger than its slot");
        std::string raw(reinterpret_cast<const char*>(at), n);
        raw.erase(raw.find_last_not_of('\0') + 1);  // Python's rstrip(b'\x00')
        if (code == 1) return Item(std::move(raw));
        return Item(shared_memory::bytes{std::move(raw)});
    }
    if (code != 0) throw ValueError("corrupt ShareableList: bad back-transform code");
    if (fmt == "q") { std::int64_t v; std::memcpy(&v, at, 8); return Item(v); }
    if (fmt == "d") { double v; std::memcpy(&v, at, 8); return Item(v); }
    if (fmt == fmt_bool) return Item(at[7] != 0);
    throw ValueError("ShareableList item has unsupported format '" + fmt + "'");
}

MULTIPROCESSING_DECL void ShareableList::set(std::ptrdiff_t i, const Item& v) const {
    std::size_t p = position(i, "assignment index out of range");
    unsigned char* at = base() + data_start() + static_cast<std::size_t>(offsets_[p]);
    if (v.is_str() || v.is_bytes()) {
        const std::string& enc = v.is_str() ? v.as_str() : v.as_bytes().data;
        std::size_t room = slot(p);
        if (enc.size() > room) throw ValueError("bytes/str item exceeds available storage");
        std::string fmt = format_at(p);
        if (fmt.empty() || fmt.back() != 's') fmt = std::to_string(room) + "s";
        std::size_t n = slot_len(fmt);
        if (n > room || enc.size() > n) throw ValueError("bytes/str item exceeds available storage");
        write_meta(p, fmt, v.is_str() ? 1 : 2);
        std::memset(at, 0, n);
        if (!enc.empty()) std::memcpy(at, enc.data(), enc.size());
        return;
    }
    write_meta(p, format_for(v), v.is_none() ? 3 : 0);
    pack_fixed(at, v);
}

MULTIPROCESSING_DECL std::size_t ShareableList::count(const Item& v) const {
    std::size_t c = 0;
    for (auto it = begin(); it != end(); ++it) c += (*it == v);
    return c;
}

MULTIPROCESSING_DECL std::size_t ShareableList::index(const Item& v) const {
    for (std::size_t i = 0; i < n_; ++i)
        if (get(static_cast<std::ptrdiff_t>(i)) == v) return i;
    throw ValueError(v.repr() + " not in this container");
}

MULTIPROCESSING_DECL std::string ShareableList::format() const {
    if (!base()) throw ValueError("operation on a closed ShareableList");
    std::string s;
    for (std::size_t i = 0; i < n_; ++i) s += format_at(i);
    return s;
}

MULTIPROCESSING_DECL std::string ShareableList::repr() const {
    std::string s = "ShareableList([";
    for (std::size_t i = 0; i < n_; ++i) {
        if (i) s += ", ";
        s += get(static_cast<std::ptrdiff_t>(i)).repr();
    }
    return s + "], name=" + multiprocessing::detail::py_str_repr(shm_.name()) + ")";
}

MULTIPROCESSING_DECL ShareableList::ShareableList(SharedMemory shm) : shm_(std::move(shm)) {
    auto b = shm_.buf();
    if (b.size() < 16) throw ValueError("shared memory block too small for a ShareableList");
    std::int64_t n;
    std::memcpy(&n, b.data(), 8);
    // Each item needs 8 offset bytes, at least 8 data bytes, 8 format
    // bytes and one code byte: reject counts the block cannot hold.
    if (n < 0 || static_cast<std::uint64_t>(n) > (b.size() - 16) / 25)
        throw ValueError("shared memory block is not a ShareableList");
    n_ = static_cast<std::size_t>(n);
    offsets_.resize(n_ + 1);
    std::memcpy(offsets_.data(), b.data() + 8, 8 * (n_ + 1));
    for (std::size_t i = 0; i <= n_; ++i)
        if (offsets_[i] < 0 || (i && offsets_[i] < offsets_[i - 1]))
            throw ValueError("shared memory block is not a ShareableList");
    if (static_cast<std::uint64_t>(offsets_[n_]) > b.size() - data_start() - 9 * n_)
        throw ValueError("shared memory block is not a ShareableList");
}

MULTIPROCESSING_DECL void ShareableList::create(const std::vector<Item>& seq, std::optional<std::string> name) {
    build(seq, [&](std::size_t total) {
        return SharedMemory(std::move(name), true, static_cast<std::ptrdiff_t>(total));
    });
}

MULTIPROCESSING_DECL std::size_t ShareableList::code_points(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

MULTIPROCESSING_DECL std::string ShareableList::format_for(const Item& v) {
    switch (v.type()) {
    case Item::kind::integer: return "q";
    case Item::kind::floating: return "d";
    case Item::kind::boolean: return fmt_bool;
    case Item::kind::none: return fmt_none;
    default: return "";
    }
}

MULTIPROCESSING_DECL void ShareableList::pack_fixed(unsigned char* at, const Item& v) {
    std::memset(at, 0, 8);  // struct writes 'x' pad bytes as zeros
    if (v.is_int()) { auto x = v.as_int(); std::memcpy(at, &x, 8); }
    else if (v.is_float()) { auto x = v.as_float(); std::memcpy(at, &x, 8); }
    else if (v.is_bool()) at[7] = v.as_bool() ? 1 : 0;
    // None: "xxxxxx?x" packs None's truth value, False, as byte 6 = 0.
}

MULTIPROCESSING_DECL std::size_t ShareableList::slot_len(const std::string& fmt) {
    std::size_t n = 0;
    for (std::size_t i = 0; i + 1 < fmt.size(); ++i) {
        if (fmt[i] < '0' || fmt[i] > '9') throw ValueError("bad ShareableList format '" + fmt + "'");
        n = n * 10 + static_cast<std::size_t>(fmt[i] - '0');
    }
    return fmt.size() == 1 ? 1 : n;  // struct's bare "s" is one byte
}

MULTIPROCESSING_DECL std::size_t ShareableList::position(std::ptrdiff_t i, const char* what) const {
    if (!base()) throw ValueError("operation on a closed ShareableList");
    auto n = static_cast<std::ptrdiff_t>(n_);
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw IndexError(what);
    return static_cast<std::size_t>(i);
}

MULTIPROCESSING_DECL std::string ShareableList::format_at(std::size_t p) const {
    const char* f = reinterpret_cast<const char*>(base() + formats_start() + 8 * p);
    return std::string(f, strnlen(f, 8));
}

MULTIPROCESSING_DECL void ShareableList::write_meta(std::size_t p, const std::string& fmt, int code) const {
    unsigned char* f = base() + formats_start() + 8 * p;
    std::memset(f, 0, 8);
    std::memcpy(f, fmt.data(), fmt.size() < 8 ? fmt.size() : 8);
    base()[codes_start() + p] = static_cast<unsigned char>(code);
}

}  // namespace multiprocessing::shared_memory

namespace multiprocessing::shared_memory {

MULTIPROCESSING_DECL SharedMemory::SharedMemory(std::optional<std::string> name , bool create ,
                          std::ptrdiff_t size) {
    if (size < 0) throw ValueError("'size' must be a positive integer");
    if (create && size == 0)
        throw ValueError("'size' must be a positive number different from zero");
    if (!name && !create) throw ValueError("'name' can only be None if create=True");
    if (name && name->find('\0') != std::string::npos) throw ValueError("embedded null character");

    if (!name) {
        for (;;) {  // a clash with an existing random name just draws again
            std::string n = detail::make_filename();
            try {
                open(n, true, static_cast<std::size_t>(size));
                break;
            } catch (const FileExistsError&) {
            }
        }
    } else {
        open(*name, create, static_cast<std::size_t>(size));
    }
}

MULTIPROCESSING_DECL SharedMemory SharedMemory::create(std::size_t size, std::optional<std::string> name) {
    return SharedMemory(std::move(name), true, static_cast<std::ptrdiff_t>(size));
}

MULTIPROCESSING_DECL SharedMemory::SharedMemory(SharedMemory&& o) noexcept : name_(std::move(o.name_)), size_(std::exchange(o.size_, 0)), region_(std::move(o.region_)) {
    o.name_.clear();
}

MULTIPROCESSING_DECL SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
    if (this != &o) {
        close();
        name_ = std::move(o.name_);
        o.name_.clear();
        size_ = std::exchange(o.size_, 0);
        region_ = std::move(o.region_);
    }
    return *this;
}

MULTIPROCESSING_DECL memoryview SharedMemory::buf() const noexcept {
    if (!region_) return {};
    return {static_cast<unsigned char*>(region_->get_address()), size_};
}

MULTIPROCESSING_DECL void SharedMemory::unlink() {
    if (name_.empty()) return;
    if (::shm_unlink(name_.c_str()) != 0) {
        int err = errno;
        if (err == ENOENT) throw FileNotFoundError(detail::errno_message(err, name_));
        throw std::system_error(err, std::generic_category(), detail::errno_message(err, name_));
    }
}

MULTIPROCESSING_DECL std::string SharedMemory::repr() const {
    return "SharedMemory(" + multiprocessing::detail::py_str_repr(name()) +
           ", size=" + std::to_string(size_) + ")";
}

MULTIPROCESSING_DECL void SharedMemory::open(const std::string& user_name, bool create, std::size_t size) {
    namespace bip = boost::interprocess;
    std::string internal = "/" + user_name;  // Python prepends '/' whatever the name
    std::unique_ptr<bip::shared_memory_object> shm;
    try {
        if (create)
            shm = std::make_unique<bip::shared_memory_object>(bip::create_only, internal.c_str(),
                                                              bip::read_write, bip::permissions(0600));
        else
            shm = std::make_unique<bip::shared_memory_object>(bip::open_only, internal.c_str(),
                                                              bip::read_write);
    } catch (const bip::interprocess_exception& e) {
        int err = e.get_native_error();
        if (e.get_error_code() == bip::already_exists_error || err == EEXIST)
            throw FileExistsError(detail::errno_message(EEXIST, internal));
        if (e.get_error_code() == bip::not_found_error || err == ENOENT)
            throw FileNotFoundError(detail::errno_message(ENOENT, internal));
        throw std::system_error(err ? err : EINVAL, std::generic_category(),
                                detail::errno_message(err ? err : EINVAL, internal));
    }
    try {
        if (create) shm->truncate(static_cast<bip::offset_t>(size));
        bip::offset_t real = 0;
        shm->get_size(real);
        size = static_cast<std::size_t>(real);
        if (size == 0) throw ValueError("cannot mmap an empty file");
        region_ = std::make_unique<bip::mapped_region>(*shm, bip::read_write, 0, size);
    } catch (const bip::interprocess_exception& e) {
        if (create) ::shm_unlink(internal.c_str());  // as Python: don't leave a half-made block
        int err = e.get_native_error() ? e.get_native_error() : EINVAL;
        throw std::system_error(err, std::generic_category(), detail::errno_message(err, internal));
    } catch (...) {
        if (create) ::shm_unlink(internal.c_str());
        throw;
    }
    // The descriptor closes with `shm`; the mapping stays valid without it.
    name_ = std::move(internal);
    size_ = size;
}

}  // namespace multiprocessing::shared_memory

namespace multiprocessing::shared_memory {

MULTIPROCESSING_DECL const char* Item::type_name() const noexcept {
    static const char* names[] = {"NoneType", "int", "float", "bool", "str", "bytes"};
    return names[v_.index()];
}

MULTIPROCESSING_DECL std::string Item::repr() const {
    switch (type()) {
    case kind::none: return "None";
    case kind::integer: return std::to_string(std::get<std::int64_t>(v_));
    case kind::floating: return multiprocessing::detail::py_float_repr(std::get<double>(v_));
    case kind::boolean: return std::get<bool>(v_) ? "True" : "False";
    case kind::str: return multiprocessing::detail::py_str_repr(std::get<std::string>(v_));
    case kind::bytes: return multiprocessing::detail::py_bytes_repr(std::get<shared_memory::bytes>(v_).data);
    }
    return "?";
}

MULTIPROCESSING_DECL bool Item::int_equals_double(std::int64_t i, double d) {
    if (!std::isfinite(d) || d != std::trunc(d)) return false;
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
    return static_cast<std::int64_t>(d) == i;
}

}  // namespace multiprocessing::shared_memory

namespace multiprocessing::shared_memory {

MULTIPROCESSING_DECL unsigned char& memoryview::at(std::ptrdiff_t i) const {
    auto n = static_cast<std::ptrdiff_t>(size_);
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw IndexError("index out of bounds on dimension 1");
    return data_[i];
}

MULTIPROCESSING_DECL memoryview memoryview::sub(std::size_t offset, std::size_t count) const noexcept {
    if (offset > size_) offset = size_;
    if (count > size_ - offset) count = size_ - offset;
    return {data_ + offset, count};
}

MULTIPROCESSING_DECL std::string memoryview::tobytes(std::size_t offset , std::size_t count) const {
    auto s = sub(offset, count);
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

MULTIPROCESSING_DECL void memoryview::write(std::size_t offset, std::string_view b) const {
    if (offset > size_ || b.size() > size_ - offset)
        throw IndexError("memoryview assignment out of range");
    if (!b.empty()) std::memcpy(data_ + offset, b.data(), b.size());
}

}  // namespace multiprocessing::shared_memory

namespace multiprocessing::shared_memory {

MULTIPROCESSING_DECL ShareableList::reference::operator Item() const { return sl_->get(i_); }

MULTIPROCESSING_DECL Item ShareableList::reference::get() const { return sl_->get(i_); }

MULTIPROCESSING_DECL auto ShareableList::reference::operator=(const reference& o) const -> const reference& { return *this = o.get(); }

MULTIPROCESSING_DECL ShareableList::reference::reference(const ShareableList* sl, std::ptrdiff_t i) : sl_(sl), i_(i) {}

MULTIPROCESSING_DECL ShareableList::const_iterator::const_iterator(const ShareableList* sl, std::size_t i) : sl_(sl), i_(i) {}

MULTIPROCESSING_DECL Item ShareableList::const_iterator::operator*() const { return sl_->get(static_cast<std::ptrdiff_t>(i_)); }

MULTIPROCESSING_DECL auto ShareableList::const_iterator::operator++() -> const_iterator& { ++i_; return *this; }

MULTIPROCESSING_DECL auto ShareableList::const_iterator::operator++(int) -> const_iterator { auto t = *this; ++i_; return t; }

MULTIPROCESSING_DECL ShareableList::ShareableList() { create({}, std::nullopt); }

MULTIPROCESSING_DECL std::size_t ShareableList::size() const noexcept { return n_; }

MULTIPROCESSING_DECL auto ShareableList::operator[](std::ptrdiff_t i) const -> reference { return reference(this, i); }

MULTIPROCESSING_DECL auto ShareableList::begin() const -> const_iterator { return {this, 0}; }

MULTIPROCESSING_DECL auto ShareableList::end() const -> const_iterator { return {this, n_}; }

MULTIPROCESSING_DECL std::vector<Item> ShareableList::tolist() const { return {begin(), end()}; }

MULTIPROCESSING_DECL SharedMemory& ShareableList::shm() noexcept { return shm_; }

MULTIPROCESSING_DECL const SharedMemory& ShareableList::shm() const noexcept { return shm_; }

MULTIPROCESSING_DECL ShareableList::ShareableList(unbuilt) noexcept {}

MULTIPROCESSING_DECL int ShareableList::code_for(const Item& v) { return v.is_str() ? 1 : v.is_bytes() ? 2 : v.is_none() ? 3 : 0; }

MULTIPROCESSING_DECL unsigned char* ShareableList::base() const noexcept { return shm_.buf().data(); }

MULTIPROCESSING_DECL std::size_t ShareableList::data_start() const noexcept { return (n_ + 2) * 8; }

MULTIPROCESSING_DECL std::size_t ShareableList::formats_start() const noexcept { return data_start() + static_cast<std::size_t>(offsets_[n_]); }

MULTIPROCESSING_DECL std::size_t ShareableList::codes_start() const noexcept { return formats_start() + 8 * n_; }

MULTIPROCESSING_DECL std::size_t ShareableList::slot(std::size_t p) const noexcept { return static_cast<std::size_t>(offsets_[p + 1] - offsets_[p]); }

MULTIPROCESSING_DECL int ShareableList::code_at(std::size_t p) const { return static_cast<signed char>(base()[codes_start() + p]); }

}  // namespace multiprocessing::shared_memory
