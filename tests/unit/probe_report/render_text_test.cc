// The words and numbers the renderers share (probe/render_text.h): counted nouns, the map, cert
// and bw notes, latency in milliseconds.
#include "probe/render_text.h"

#include <gtest/gtest.h>

#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using fixtures::Now;

TEST(RenderText, CountedNounsAndTheMapNote) {
  EXPECT_EQ(Counted(0, "node", "nodes"), "0 nodes");
  EXPECT_EQ(Counted(1, "node", "nodes"), "1 node");
  EXPECT_EQ(Counted(12, "node", "nodes"), "12 nodes");
  EXPECT_EQ(MapSizeNote(1, 1), "1 region, 1 node");
  EXPECT_EQ(MapSizeNote(1, 2), "1 region, 2 nodes");
  EXPECT_EQ(MapSizeNote(2, 3), "2 regions, 3 nodes");
}

TEST(RenderText, CertNoteCountsWholeDaysToTheSoonestExpiry) {
  CertFacts cert = fixtures::Cert("derp.test", 89 * 24h + 5h, false);
  EXPECT_EQ(CertNote(cert, Now()), "cert derp.test, 89 days left");
  cert.not_after = Now() + 36h;
  cert.earliest_not_after = SystemTime{};  // none judged: the leaf's date counts
  EXPECT_EQ(CertNote(cert, Now()), "cert derp.test, 1 day left");
  cert.earliest_not_after = Now() + 5h;  // an intermediate expires first
  cert.pinned = true;
  EXPECT_EQ(CertNote(cert, Now()), "cert derp.test, 0 days left, pinned");
  cert.earliest_not_after = Now() - 1h;
  EXPECT_EQ(CertNote(cert, Now()), "cert derp.test, expired 1 day ago, pinned");
  cert.earliest_not_after = Now() - 49h;
  EXPECT_EQ(DaysLeft(cert.Expiry(), Now()), -3);
  EXPECT_EQ(CertNote(cert, Now()), "cert derp.test, expired 3 days ago, pinned");
}

TEST(RenderText, BwNoteInDecimalUnits) {
  ProbeResult r;
  r.bw_bytes = 1'000'000;
  r.bw_transfer_time = 12300us;
  EXPECT_EQ(BwNote(r), "1.0 MB in 12.3ms (650 Mbit/s)");
  r.bw_bytes = 1500;
  r.bw_transfer_time = 2s;
  EXPECT_EQ(BwNote(r), "1.5 kB in 2000.0ms (0.0 Mbit/s)");
  r.bw_bytes = 999;
  r.bw_transfer_time = 0ns;  // no time measured: no rate
  EXPECT_EQ(BwNote(r), "999 B in 0.0ms");
  r.bw_bytes = 2'500'000'000;
  r.bw_transfer_time = 4s;
  EXPECT_EQ(BwNote(r), "2.5 GB in 4000.0ms (5000 Mbit/s)");
}

TEST(RenderText, MillisHasOneDecimal) {
  EXPECT_EQ(Millis(1234567ns), "1.2ms");
  EXPECT_EQ(Millis(0ns), "0.0ms");
  EXPECT_EQ(Millis(12s), "12000.0ms");
  EXPECT_EQ(FormatNumber("%.0f Mbit/s", 649.6), "650 Mbit/s");
}

}  // namespace
}  // namespace derpkit::probe
