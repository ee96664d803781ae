# Sourced by the bench scripts that start a derp-relay of their own (perf-relay.sh, idle-cpu.sh).
# relay_port LOG: prints the DERP port the relay logged in LOG ("DERP on http(s)://HOST:PORT/derp"),
# waiting up to 10 s for the line; prints nothing when it never came.
relay_port() {
  local log=$1 port=""
  for _ in $(seq 100); do
    port=$(sed -n 's|.*DERP on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/derp.*|\1|p' "$log" | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  echo "$port"
}
