// Go-style flags for CLI11 (see go_flags.h).
#include "lib/util/go_flags.h"

namespace derpkit {

std::vector<std::string> NormalizeGoFlags(int argc, const char* const* argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (; i < argc; ++i) out.emplace_back(argv[i]);
      break;
    }
    const bool single_dash = arg.size() > 1 && arg[0] == '-' && arg[1] != '-';
    if (single_dash && !(arg[1] >= '0' && arg[1] <= '9')) {
      const auto eq = arg.find('=');
      const std::string name = arg.substr(1, eq == std::string::npos ? std::string::npos : eq - 1);
      if (name.size() == 1 && eq != std::string::npos) {
        out.push_back("-" + name);
        out.push_back(arg.substr(eq + 1));
        continue;
      }
      if (name.size() > 1) arg = "-" + arg;
    }
    out.push_back(arg);
  }
  return out;
}

}  // namespace derpkit
