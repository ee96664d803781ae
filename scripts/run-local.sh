#!/usr/bin/env bash
# `make run`: starts derp-relay on 127.0.0.1 with a self-signed certificate for localhost, prints a
# DERP map that points a client at it and a command that checks it end to end. The state folder
# (key, certificate, map) is created once and reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/release"
state=${DERPKIT_STATE_DIR:-$root/.state}
port=${DERP_PORT:-8443}
http_port=${HTTP_PORT:-8080}
stun_port=${STUN_PORT:-3478}
mkdir -p "$state"
echo "derpkit: state folder $state (server key, certificate, DERP map)"

"$build/relay/derp-relay" -a "127.0.0.1:$port" --http-port "$http_port" --stun-port "$stun_port" \
  -c "$state/derper.key" --certmode selfsigned --certdir "$state/certs" --hostname localhost &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' INT TERM EXIT

# Bounded wait until the relay answers on its TLS port.
for _ in $(seq 1 100); do
  if curl -s -o /dev/null --max-time 1 --cacert "$state/certs/localhost.crt" \
      --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/derp/probe"; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { echo "derpkit: derp-relay exited" >&2; exit 1; }
  sleep 0.1
done

pin=$(openssl x509 -in "$state/certs/localhost.crt" -outform der | sha256sum | cut -d' ' -f1)
cat >"$state/derpmap.json" <<JSON
{
  "Regions": {
    "900": {
      "RegionID": 900,
      "RegionCode": "local",
      "RegionName": "derpkit on localhost",
      "Nodes": [
        {
          "Name": "900a",
          "RegionID": 900,
          "HostName": "localhost",
          "IPv4": "127.0.0.1",
          "IPv6": "none",
          "DERPPort": $port,
          "STUNPort": $stun_port,
          "CertName": "sha256-raw:$pin"
        }
      ]
    }
  },
  "omitDefaultRegions": true
}
JSON
echo
echo "DERP map ($state/derpmap.json):"
cat "$state/derpmap.json"
echo
echo "Check it (\`make release\` builds these tools):"
echo "  $build/netcheck/netcheck --derp-map $state/derpmap.json --portmap=false --connect"
echo "  $build/stunc/stunc 127.0.0.1 $stun_port"
echo "  $build/probe/derp-probe --derp-map $state/derpmap.json --once"
echo "  $build/bench/derp-load --url https://localhost:$port/derp --dial-host 127.0.0.1 \\"
echo "      --ca-file $state/certs/localhost.crt --pairs 1 --rate-mbps 10 --duration 2s"
echo
echo "derp-relay is running (pid $pid); Ctrl-C stops it."
wait "$pid"
