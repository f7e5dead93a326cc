#!/usr/bin/env bash
# The same synthesized captures through two builds of iotad (say x86_64 and aarch64 under
# qemu) must give identical output: the capture bytes, the feature windows, the replay.
# usage: tests/cross_arch.sh NATIVE_IOTAD "OTHER_IOTAD (may start with a runner)"
set -euo pipefail
native=$1 other=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
attacks=(--attack portscan@120:02:10:00:00:00:00 --attack dns-tunnel@300:02:10:03:00:00:03
         --attack telnet-brute@500:02:10:02:00:00:02 --attack arp-scan@700+20:02:10:01:00:00:01)
$native synth --out "$dir/native.pcap" --seed 21 --duration 900 --devices 8 "${attacks[@]}" 2>/dev/null
$other synth --out "$dir/other.pcap" --seed 21 --duration 900 --devices 8 "${attacks[@]}" 2>/dev/null
cmp "$dir/native.pcap" "$dir/other.pcap"
echo "  synth: identical captures ($(stat -c %s "$dir/native.pcap") bytes)"
for cmd in "features" "features --format jsonl" "replay --json --learning-windows 10" "replay --learning-windows 10"; do
  # shellcheck disable=SC2086
  $native $cmd "$dir/native.pcap" >"$dir/a.out"
  # shellcheck disable=SC2086
  $other $cmd "$dir/native.pcap" >"$dir/b.out"
  if ! cmp -s "$dir/a.out" "$dir/b.out"; then
    echo "  $cmd: outputs differ:" >&2
    diff "$dir/a.out" "$dir/b.out" | head -20 >&2
    exit 1
  fi
  echo "  $cmd: identical output ($(wc -l <"$dir/a.out") lines, $(grep -c "\"kind\":\"anomaly\"" "$dir/a.out" || true) anomaly events)"
done
