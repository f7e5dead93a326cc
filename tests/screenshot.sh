#!/bin/bash
# tests/screenshot.sh: `make screenshot`. Renders the status page of a synthesized network
# that had anomalies in headless Chromium (Debian's chromium) at a phone's width and a
# desktop's, into tests/screenshots/{phone,desktop}.png, which the README shows. The page
# is the real one: `iotad run` on a veth pair (root, iproute2, tcpreplay) fed a capture with a
# port scan, a DNS tunnel and a telnet brute force, replayed at ten times its pace.
# (The images live under tests/ because the top level is fixed; they are this script's
# output, a picture of what tests/status_live.rs checks.)
set -euo pipefail
BIN=${BIN:-target/release/iotad}
OUT=${OUT:-tests/screenshots}
work=$(mktemp -d /tmp/iotad-screenshot.XXXXXX)
id=$$
cap=isc$((id % 100000)) inj=isj$((id % 100000))
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  ip link del "$cap" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for t in ip tcpreplay chromium curl; do
  command -v $t >/dev/null || { echo "*** SKIPPED make screenshot: no $t (Debian: iproute2 tcpreplay chromium curl) ***" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "*** SKIPPED make screenshot: not root (the veth pair needs CAP_NET_ADMIN) ***" >&2; exit 1; }

"$BIN" synth --out "$work/net.pcap" --seed 3 --duration 420 --devices 6 \
  --attack portscan@200:02:10:00:00:00:00 \
  --attack dns-tunnel@230:02:10:03:00:00:03 \
  --attack telnet-brute@260:02:10:02:00:00:02 >/dev/null
ip link add "$cap" type veth peer name "$inj"
ip link set "$cap" up && ip link set "$inj" up
for i in "$cap" "$inj"; do echo 1 >"/proc/sys/net/ipv6/conf/$i/disable_ipv6"; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "{\"http\": {\"bind\": \"127.0.0.1:$port\"}, \"capture\": {\"visibility_secs\": 3600}}" >"$work/config.json"
RUST_LOG=warn "$BIN" run --config "$work/config.json" --interface "$cap" --learning-windows 12 \
  2>"$work/iotad.log" & pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
tcpreplay -q -i "$inj" --multiplier=10 "$work/net.pcap" >/dev/null
sleep 12
mkdir -p "$OUT"
shot() {
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$2" --screenshot="$OUT/$1.png" "http://127.0.0.1:$port/" >/dev/null 2>&1
  echo "$OUT/$1.png ($2)"
}
shot phone 390,1800
shot desktop 1280,1200
