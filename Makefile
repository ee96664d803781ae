# derpkit: the two commands a newcomer needs are `make run` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh is idempotent).
.PHONY: run test build release asan fuzz bench deps format clean

JOBS ?= $(shell nproc)

deps:
	@bash scripts/install-deps.sh

release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

build: release

# Builds derp-relay alone and starts it on 127.0.0.1 with a generated self-signed certificate.
run: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target derp-relay
	@bash scripts/run-local.sh

# Release and ASan+UBSan builds, each running the whole ctest suite (fuzz corpora replay as tests).
test: release asan
	ctest --preset release
	ctest --preset asan

# The benchmark matrix against local relays (about 6 minutes); rewrites BENCHMARKS.md.
bench: release
	bash bench/run-benchmarks.sh build/release

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	bash scripts/fuzz.sh build/fuzz $(or $(FUZZ_SECONDS),30)

# Copies the Prometheus rules and Grafana dashboards where those read them (as root; see
# scripts/install-dashboards.sh --help, e.g. DASHBOARDS_FLAGS="--prometheus-url http://prom:9090").
.PHONY: install-dashboards
install-dashboards:
	bash scripts/install-dashboards.sh $(DASHBOARDS_FLAGS)

format:
	find lib relay tests bench probe stunc netcheck \( -name '*.h' -o -name '*.cc' \) 2>/dev/null | xargs clang-format -i

clean:
	rm -rf build
