// DERP map texts shared by the lib/derpmap tests: one map that sets every field, in tailcfg JSON
// and in Headscale's YAML, and the examples of derp-protocol.md §12.4 and §12.5 as printed there.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace derpkit::derpmap::samples {

inline constexpr const char* kPin =
    "sha256-raw:4f1ca3ca0d1d2e7fb4f0ad3a4d7b9a2f31c0d4e2b8f6a1c9d3e5f7a9b1c3d5e7";

// Every field of DERPMap, DERPRegion and DERPNode set to a value other than its zero value.
inline constexpr const char* kEveryFieldJson = R"({
  "HomeParams": {"RegionScore": {"900": 0.8, "901": 1.5}},
  "Regions": {
    "900": {
      "RegionID": 900, "RegionCode": "home", "RegionName": "Home lab",
      "Latitude": 52.37, "Longitude": -4.89, "Avoid": true, "NoMeasureNoHome": true,
      "Nodes": [
        {"Name": "900a", "RegionID": 900, "HostName": "derp1.example.net",
         "CertName": "sha256-raw:4f1ca3ca0d1d2e7fb4f0ad3a4d7b9a2f31c0d4e2b8f6a1c9d3e5f7a9b1c3d5e7",
         "IPv4": "192.0.2.10", "IPv6": "2001:db8::10", "STUNPort": 3479, "STUNOnly": true,
         "DERPPort": 8443, "InsecureForTests": true, "STUNTestIP": "192.0.2.99",
         "CanPort80": true}
      ]
    },
    "901": {
      "RegionID": 901, "RegionCode": "away", "RegionName": "Away",
      "Nodes": [{"Name": "901a", "RegionID": 901, "HostName": "derp2.example.net",
                 "IPv4": "none", "STUNPort": -1}]
    }
  },
  "omitDefaultRegions": true
})";

// The same map as Headscale's YAML spells it.
inline constexpr const char* kEveryFieldYaml = R"(homeparams:
  regionscore:
    900: 0.8
    901: 1.5
regions:
  900:
    regionid: 900
    regioncode: home
    regionname: Home lab
    latitude: 52.37
    longitude: -4.89
    avoid: true
    nomeasurenohome: true
    nodes:
      - name: 900a
        regionid: 900
        hostname: derp1.example.net
        certname: sha256-raw:4f1ca3ca0d1d2e7fb4f0ad3a4d7b9a2f31c0d4e2b8f6a1c9d3e5f7a9b1c3d5e7
        ipv4: 192.0.2.10
        ipv6: 2001:db8::10
        stunport: 3479
        stunonly: true
        derpport: 8443
        insecurefortests: true
        stuntestip: 192.0.2.99
        canport80: true
  901:
    regionid: 901
    regioncode: away
    regionname: Away
    nodes:
      - name: 901a
        regionid: 901
        hostname: derp2.example.net
        ipv4: none
        stunport: -1
omitdefaultregions: true
)";

// derp-protocol.md §12.4, verbatim. Its CertName pin is written "<64 hex>" in the doc, so the
// text parses but Validate refuses that field (validate_test checks both, and that the example
// validates once a real pin stands there).
inline constexpr const char* kProtocolDocJson = R"({
  "Regions": {
    "900": {
      "RegionID": 900,
      "RegionCode": "home",
      "RegionName": "Home lab",
      "Nodes": [
        {"Name": "900a", "RegionID": 900, "HostName": "derp1.example.net",
         "IPv4": "192.0.2.10", "IPv6": "2001:db8::10", "CanPort80": true},
        {"Name": "900b", "RegionID": 900, "HostName": "192.0.2.11", "IPv4": "192.0.2.11", "IPv6": "none",
         "CertName": "sha256-raw:<64 hex>", "DERPPort": 8443, "STUNPort": 3479}
      ]
    }
  },
  "omitDefaultRegions": true
}
)";

// derp-protocol.md §12.5, verbatim.
inline constexpr const char* kProtocolDocYaml = R"(regions:
  1: null              # drop region 1 from maps loaded earlier
  900:
    regionid: 900      # must equal the map key
    regioncode: custom-east
    regionname: My region (east)
    nodes:
      - name: 900a
        regionid: 900
        hostname: derp900a.example.com
        ipv4: 198.51.100.1
        ipv6: 2001:db8::1
        stunport: 0       # 0 = 3478, -1 = no STUN
        stunonly: false
        derpport: 0       # 0 = 443
        canport80: true   # node answers /generate_204 on :80
)";

// Returns a file under the shared testdata folder (derpmap-good.json and friends).
inline std::string ReadTestdata(const std::string& relative) {
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/" + relative, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace derpkit::derpmap::samples
