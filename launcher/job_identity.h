#pragma once
// The identity weftrun gives a job: a job id (names shared-memory files, guards connections)
// and a secret token every store and transport connection must present.
#include <cstddef>
#include <string>

namespace weft::launcher {

struct JobIdentity {
  std::string job_id;  // "j<pid><8 hex>": no '-', so "weft-<job_id>-" prefixes never overlap
  std::string token;   // 32 hex digits from /dev/urandom

  static JobIdentity generate();
};

// `bytes` random bytes from /dev/urandom as lowercase hex. Throws Error(Io) if it cannot be read.
std::string random_hex(size_t bytes);

}  // namespace weft::launcher
