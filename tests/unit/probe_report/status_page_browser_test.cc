// The status page's layout measured in a real browser (headless Chromium, as
// scripts/install-deps.sh installs it): on a phone-sized window the page does not scroll sideways
// and every error box lies inside the screen; on a desk-sized window the table keeps its header
// row. The page itself has no script: the test appends one to a copy of it that measures the
// layout and writes the numbers into the DOM, which --dump-dom prints. Fails (does not skip)
// when chromium is not installed.
//
// Thread affinity: the test's thread; chromium runs as a child under `timeout`.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>

#include "probe/status_page.h"
#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

// Writes the numbers the assertions need into <pre id="layout">: the viewport width, the page's
// and the table box's scroll widths, the error boxes' extent, and whether the header row shows.
constexpr const char* kMeasure = R"js(<script>
const w = window.innerWidth, box = document.querySelector('.scroll');
let left = 1e9, right = -1e9, errors = 0;
for (const e of document.querySelectorAll('.err')) {
  const r = e.getBoundingClientRect();
  left = Math.min(left, r.left); right = Math.max(right, r.right); errors++;
}
const thead = document.querySelector('thead').getBoundingClientRect().height > 0 ? 1 : 0;
const out = document.createElement('pre');
out.id = 'layout';
out.textContent = 'viewport=' + w + ' page_scroll=' + document.documentElement.scrollWidth +
    ' box_scroll=' + box.scrollWidth + ' box_client=' + box.clientWidth + ' errors=' + errors +
    ' err_left=' + Math.floor(left) + ' err_right=' + Math.ceil(right) + ' thead=' + thead;
document.body.appendChild(out);
</script>)js";

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "derpkit-page-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

bool OnPath(const std::string& name) {
  const char* path = ::getenv("PATH");
  const std::string dirs = path != nullptr ? path : "";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    if (end > start &&
        ::access((dirs.substr(start, end - start) + "/" + name).c_str(), X_OK) == 0) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

// Renders the rich snapshot's page in a `width` x 900 window; the measured numbers by name, or
// an empty map (with the reason in `error`) when chromium did not produce them.
std::map<std::string, long> Measure(int width, std::string& error) {
  ScratchDir dir;
  if (dir.path().empty()) {
    error = "mkdtemp failed";
    return {};
  }
  std::string page = RenderStatusPage(fixtures::RichSnapshot(), {});
  page.insert(page.rfind("</body>"), kMeasure);
  const auto html = dir.path() / "page.html", dom = dir.path() / "dom.html",
             log = dir.path() / "chromium.log";
  std::ofstream(html, std::ios::binary) << page;
  const std::string command =
      "timeout -k 5 60 chromium --headless --no-sandbox --disable-gpu --no-first-run "
      "--disable-extensions --user-data-dir='" +
      (dir.path() / "profile").string() + "' --window-size=" + std::to_string(width) +
      ",900 --dump-dom 'file://" + html.string() + "' >'" + dom.string() + "' 2>'" + log.string() +
      "'";
  const int rc = std::system(command.c_str());
  std::ifstream in(dom, std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("<pre id=\"layout\">([^<]*)</pre>"))) {
    std::ifstream log_in(log);
    error = "chromium (exit " + std::to_string(rc) + ") printed no measurements; its log: " +
            std::string{std::istreambuf_iterator<char>(log_in), std::istreambuf_iterator<char>()};
    return {};
  }
  std::map<std::string, long> numbers;
  const std::string line = m[1];
  const std::regex pair_re("(\\w+)=(-?\\d+)");
  for (auto it = std::sregex_iterator(line.begin(), line.end(), pair_re);
       it != std::sregex_iterator(); ++it) {
    numbers[(*it)[1]] = std::stol((*it)[2]);
  }
  return numbers;
}

TEST(StatusPageInABrowser, PhoneShowsEveryErrorWithoutSidewaysScrolling) {
  ASSERT_TRUE(OnPath("chromium")) << "chromium is not installed (scripts/install-deps.sh)";
  std::string error;
  // Chromium's headless window is at least 500 px wide; the page switches to cards below 47rem.
  const auto n = Measure(400, error);
  ASSERT_FALSE(n.empty()) << error;
  const long viewport = n.at("viewport");
  ASSERT_GT(viewport, 0);
  ASSERT_LT(viewport, 47 * 16) << "the window is wider than the narrow layout's breakpoint";
  EXPECT_EQ(n.at("errors"), 2);  // 2a tls and 2a udp fail in the rich snapshot
  EXPECT_LE(n.at("page_scroll"), viewport);
  EXPECT_LE(n.at("box_scroll"), n.at("box_client")) << "the table box scrolls sideways";
  EXPECT_GE(n.at("err_left"), 0);
  EXPECT_LE(n.at("err_right"), viewport);
  EXPECT_EQ(n.at("thead"), 0);
}

TEST(StatusPageInABrowser, DeskKeepsTheTable) {
  ASSERT_TRUE(OnPath("chromium")) << "chromium is not installed (scripts/install-deps.sh)";
  std::string error;
  const auto n = Measure(1400, error);
  ASSERT_FALSE(n.empty()) << error;
  EXPECT_GE(n.at("viewport"), 47 * 16);
  EXPECT_EQ(n.at("thead"), 1);
  EXPECT_EQ(n.at("errors"), 2);
  EXPECT_LE(n.at("err_right"), n.at("viewport"));
}

}  // namespace
}  // namespace derpkit::probe
