// The relay's metrics: derper's families under lint-clean names (counters end in _total, base
// units, HELP on every family) plus what derper lacks: send-queue delay, frames per write,
// connection durations, handshake failures by reason, mesh link state per peer, STUN responder
// latency and per-shard load. README.md "Metrics" maps derper's names to these.
//
// Nothing here is bumped on the data path: the shards count in their own ShardStats, and a
// scrape sums them (Server::Snapshot), so the cost of metrics is paid per scrape, not per packet.
// Every label comes from a closed set (enums, --workers, --mesh-with), and every series of a
// labelled family exists from the start, at 0.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace derpkit::relay {

class Server;

// Reads `server`'s counters when collected. Borrows the server, which must outlive it. Collect()
// may run on any thread, concurrently with the shards (each value is exact; the families are not
// one consistent cut). It must not run concurrently with Server::AddMeshPeers.
class RelayCollector final : public prometheus::Collectable {
 public:
  explicit RelayCollector(const Server& server) : server_(server) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Server& server_;
};

// Renders every relay metric in the Prometheus text exposition format 0.0.4 (served on
// /debug/varz with Content-Type "text/plain; version=0.0.4").
std::string RenderPrometheus(const Server& server);

// The same numbers as one JSON object, expvar-like (served on /debug/vars): an unlabelled
// counter or gauge is a number ({"derp_accepts_total": 3}); a labelled family is an object keyed
// by its labels ({"derp_packets_dropped_total": {"reason=queue_head,kind=other": 1, ...}}); a
// histogram is {"count": n, "sum": s, "buckets": {"<le>": cumulative count, ..., "+Inf": n}}.
std::string RenderVarsJson(const Server& server);

}  // namespace derpkit::relay
