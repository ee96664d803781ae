// The "local" DERP map source: GET /localapi/v0/derpmap from tailscaled (lib/derpmap/localapi.h
// does the exchange) and hand back the 200 answer's body.
//
// Blocking; any thread (each call has its own socket).
#include "lib/derpmap/loaders.h"
#include "lib/derpmap/localapi.h"

namespace derpkit::derpmap::detail {

Expected<std::string, MapError> FetchLocalMap(const LoadOptions& options) {
  localapi::GetRequest request;
  request.socket_path = options.socket_path;
  request.target = "/localapi/v0/derpmap";
  request.timeout = options.timeout;
  request.max_body_bytes = options.max_bytes;
  auto answer = localapi::Get(request);
  if (!answer) return Unexpected(MapError{"local", "", answer.error()});
  if (answer->status != 200) {
    return Unexpected(MapError{"local", "", localapi::DescribeAnswer(*answer)});
  }
  return std::move(answer->body);
}

}  // namespace derpkit::derpmap::detail
