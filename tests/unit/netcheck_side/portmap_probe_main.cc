// portmap_probe: runs netcheck's port-mapping probe once and prints the result as JSON, with the
// report's key names (UPnP, PMP, PCP: true, false or null = not checked). tests/netns/
// portmap_test.sh runs it inside network namespaces until `netcheck --format json` can.
//
//   portmap_probe [--gateway 192.0.2.1] [--timeout 2500ms]
//
// Thread affinity: one thread, one io_context.
#include <asio.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "lib/util/duration.h"
#include "netcheck/portmap.h"

namespace {

nlohmann::json Tri(const std::optional<bool>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "portmap_probe: %s\n"
               "usage: portmap_probe [--gateway IPv4] [--timeout 2500ms]\n"
               "example: portmap_probe --gateway 192.0.2.1 --timeout 1s\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  derpkit::netcheck::PortMapOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage("asks the default gateway for UPnP, NAT-PMP and PCP, and prints JSON");
      return 0;
    }
    if (i + 1 >= argc) return Usage(("unknown flag or missing value: " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--gateway") {
      options.gateway = value;
    } else if (arg == "--timeout") {
      auto d = derpkit::ParseGoDuration(value);
      if (!d) return Usage(("--timeout " + value + ": not a duration").c_str());
      options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    } else {
      return Usage(("unknown flag: " + arg).c_str());
    }
  }
  asio::io_context io;
  derpkit::netcheck::PortMapResult result;
  asio::co_spawn(io, derpkit::netcheck::ProbePortMapping(options),
                 [&](std::exception_ptr e, derpkit::netcheck::PortMapResult r) {
                   if (e) std::rethrow_exception(e);
                   result = std::move(r);
                 });
  io.run();
  nlohmann::json out = {{"Gateway", result.gateway},
                        {"UPnP", Tri(result.upnp)},
                        {"PMP", Tri(result.pmp)},
                        {"PCP", Tri(result.pcp)},
                        {"Notes", result.notes}};
  std::cout << out.dump(1, '\t') << "\n";
  return 0;
}
