#pragma once
// Random names and secrets from the kernel: job ids, tokens, unique temporary file names.
#include <cstddef>
#include <string>

namespace weft {

// `bytes` random bytes from getrandom() as lowercase hex (two digits a byte). Throws Error(Io)
// if the kernel cannot give them.
std::string random_hex(size_t bytes);

}  // namespace weft
