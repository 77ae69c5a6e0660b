#include "launcher/job_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "runtime/unique_fd.h"
#include "runtime/error.h"

namespace weft::launcher {

std::string random_hex(size_t bytes) {
  UniqueFd fd(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno("opening /dev/urandom for the job token");
  std::vector<unsigned char> raw(bytes);
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::read(fd.get(), raw.data() + got, bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("reading /dev/urandom for the job token");
    got += static_cast<size_t>(n);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes * 2);
  for (unsigned char b : raw) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 0xf]);
  }
  return hex;
}

JobIdentity JobIdentity::generate() {
  JobIdentity id;
  id.job_id = "j" + std::to_string(::getpid()) + random_hex(4);
  id.token = random_hex(16);
  return id;
}

}  // namespace weft::launcher
