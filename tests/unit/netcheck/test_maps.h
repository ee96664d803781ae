// DERP maps built in code for netcheck's unit tests: small, with every field that the plan, the
// home choice and the printers look at spelled out.
#pragma once

#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"

namespace derpkit::netcheck::testing {

inline derpmap::Node MakeNode(std::int64_t region, std::string name, std::string ipv4 = "",
                              std::string ipv6 = "", int stun_port = 0) {
  derpmap::Node n;
  n.name = std::move(name);
  n.region_id = region;
  n.host_name = n.name + ".derp.example";
  n.ipv4 = std::move(ipv4);
  n.ipv6 = std::move(ipv6);
  n.stun_port = stun_port;
  return n;
}

inline derpmap::Region MakeRegion(std::int64_t id, std::string code, std::string name,
                                  std::vector<derpmap::Node> nodes) {
  derpmap::Region r;
  r.region_id = id;
  r.region_code = std::move(code);
  r.region_name = std::move(name);
  r.nodes = std::move(nodes);
  return r;
}

inline derpmap::DerpMap MakeMap(std::vector<derpmap::Region> regions) {
  derpmap::DerpMap m;
  for (auto& r : regions) m.regions.emplace(r.region_id, std::move(r));
  return m;
}

}  // namespace derpkit::netcheck::testing
