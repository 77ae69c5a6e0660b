#pragma once
// The identity weftrun gives a job: a job id (names shared-memory files, guards connections)
// and a secret token every store and transport connection must present.
#include <string>

namespace weft::launcher {

struct JobIdentity {
  std::string job_id;  // "j<pid><8 hex>": no '-', so "weft-<job_id>-" prefixes never overlap
  std::string token;   // 32 hex digits from getrandom()

  static JobIdentity generate();
};

}  // namespace weft::launcher
