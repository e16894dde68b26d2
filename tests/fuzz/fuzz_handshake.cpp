// libFuzzer target: the HMAC handshake against arbitrary peer bytes.  The
// first byte picks deliver_challenge (we are the server) or
// answer_challenge (we are the client); the rest is what the peer sent.
#include "common.hpp"

#include <cstdlib>

namespace conn = multiprocessing::connection;

static const std::string kKey = "fuzz-authkey";

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("MP_FUZZ_WRITE_SEEDS")) {
        auto frame = [](const std::string& s) { return fuzz::be32(static_cast<std::uint32_t>(s.size())) + s; };
        std::string msg = "{sha256}" + std::string(40, 'A');
        // answer_challenge: a well-formed challenge, then welcome / failure.
        fuzz::write_seed(dir, "answer_ok", std::string(1, '\1') + frame("#CHALLENGE#" + msg) + frame("#WELCOME#"));
        fuzz::write_seed(dir, "answer_fail", std::string(1, '\1') + frame("#CHALLENGE#" + msg) + frame("#FAILURE#"));
        fuzz::write_seed(dir, "answer_md5", std::string(1, '\1') + frame("#CHALLENGE#{md5}xxxx"));
        // deliver_challenge: a plausible digest reply (wrong, since the
        // challenge is random) and an oversized one.
        fuzz::write_seed(dir, "deliver_digest", std::string(1, '\0') + frame("{sha256}" + std::string(32, 'x')));
        fuzz::write_seed(dir, "deliver_big", std::string(1, '\0') + fuzz::be32(300) + std::string(300, 'y'));
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 4096) return 0;
    auto [c, peer] = fuzz::fed(data + 1, size - 1);
    try {
        if (data[0] & 1)
            conn::answer_challenge(c, kKey);
        else
            conn::deliver_challenge(c, kKey);
    } catch (const std::exception&) {
        // AuthenticationError, EOFError, bad frame: expected
    }
    ::close(peer);
    return 0;
}
