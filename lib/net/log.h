// A tiny printf-style logger for the programs (not for the pure codecs, which never log).
// Lines go to stderr as "<UTC time> <level> <message>". Thread-safe: one write(2) per line.
#pragma once

#include <cstdarg>

namespace derpkit::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Lines below this level are dropped. Set once at start-up, before threads start.
void SetMinLevel(Level level);

void Logf(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define DERPKIT_LOG(level, ...) ::derpkit::log::Logf(::derpkit::log::Level::level, __VA_ARGS__)
#define LOG_DEBUG(...) DERPKIT_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) DERPKIT_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) DERPKIT_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) DERPKIT_LOG(kError, __VA_ARGS__)

}  // namespace derpkit::log
