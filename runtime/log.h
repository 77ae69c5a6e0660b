#pragma once
// Logging with a rank prefix. Level from WEFT_LOG (error, warn, info, debug; default warn),
// read once at the first line and set by nothing else.
#include <sstream>
#include <string>

namespace weft::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

Level level();
// Sets the "[weft rank N]" prefix used by every later line of this process, from any thread.
// The one caller in weft is comm::init_from_env, which says so; until then lines carry no rank.
void set_rank(int rank);
void write(Level lvl, const std::string& message);

}  // namespace weft::log

#define WEFT_LOG_AT(lvl, expr)                                      \
  do {                                                              \
    if (static_cast<int>(lvl) <= static_cast<int>(::weft::log::level())) { \
      std::ostringstream weft_log_os_;                              \
      weft_log_os_ << expr;                                         \
      ::weft::log::write(lvl, weft_log_os_.str());                  \
    }                                                               \
  } while (0)
#define WEFT_ERROR(expr) WEFT_LOG_AT(::weft::log::Level::error, expr)
#define WEFT_WARN(expr) WEFT_LOG_AT(::weft::log::Level::warn, expr)
#define WEFT_INFO(expr) WEFT_LOG_AT(::weft::log::Level::info, expr)
#define WEFT_DEBUG(expr) WEFT_LOG_AT(::weft::log::Level::debug, expr)
