#!/bin/bash
# deploy/pi.sh: install iotad on a Raspberry Pi over ssh, or remove it; `make deploy PI=user@host`
# and `make uninstall PI=user@host` call it.
#
#   deploy/pi.sh install   BIN=<aarch64 binary> PI=user@host [ROOT=/prefix] [SSH_OPTS="-F cfg"]
#   deploy/pi.sh uninstall PI=user@host [ROOT=/prefix] [SSH_OPTS=...]
#
# install copies the binary to /usr/local/bin/iotad (0755), the unit to
# /etc/systemd/system/iotad.service (0644) and deploy/config.json to /etc/iotad/config.json
# (0644; an existing configuration is kept), then, when systemd runs the Pi (PID 1) and no
# ROOT is given: systemctl daemon-reload && systemctl enable --now iotad (restart when the
# binary or unit changed). What it creates is listed in /etc/iotad/.deployed, which uninstall
# reads: it removes those files and directories (the configuration only when unchanged; the
# learned state under /var/lib/private/iotad stays). Both are idempotent: a second run
# changes nothing. ROOT puts every path under a prefix (the tests' way) and skips systemctl.
# A non-root PI user needs sudo on the Pi.
set -euo pipefail

action=${1:-}
for a in "${@:2}"; do
  case $a in
    *=*) export "${a%%=*}=${a#*=}" ;;
    *) echo "deploy/pi.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
PI=${PI:-}
ROOT=${ROOT:-}
SSH_OPTS=${SSH_OPTS:-}
if [ -z "$PI" ] || { [ "$action" != install ] && [ "$action" != uninstall ]; }; then
  echo "usage: deploy/pi.sh install|uninstall PI=user@host [BIN=path] [ROOT=/prefix] [SSH_OPTS=...]" >&2
  exit 2
fi
# shellcheck disable=SC2086
ssh_() { ssh $SSH_OPTS -o BatchMode=yes "$PI" "$@"; }
sudo_=""
[ "$(ssh_ id -u)" = 0 ] || sudo_=sudo

if [ "$action" = install ]; then
  BIN=${BIN:-}
  [ -n "$BIN" ] && [ -f "$BIN" ] || { echo "deploy/pi.sh: BIN=$BIN is not a file (make aarch64 builds one)" >&2; exit 2; }
  tmp=$(ssh_ mktemp -d /tmp/iotad-deploy.XXXXXX)
  trap 'ssh_ rm -rf "$tmp"' EXIT
  # shellcheck disable=SC2086
  scp -q $SSH_OPTS -o BatchMode=yes "$BIN" "$here/../systemd/iotad.service" "$here/config.json" "$PI:$tmp/"
  src=$tmp
else
  src=""
fi

# The Pi's side: one script over ssh, the same for both actions.
# (ssh joins its arguments into one command line: each is quoted, empty ones too)
said=$(mktemp)
trap 'rm -f "$said"; [ -z "${tmp:-}" ] || ssh_ rm -rf "$tmp"' EXIT
ssh_ "$(printf '%q ' $sudo_ bash -s -- "$action" "$src" "$ROOT" "$(basename "${BIN:-iotad}")")" <<'REMOTE' | tee "$said"
set -euo pipefail
action=$1 src=$2 root=$3 binname=$4
manifest=$root/etc/iotad/.deployed
changed=0
note() { printf '  %s\n' "$*"; }
# mkdir -p, listing each directory it creates
mkdirs() {
  local d=$1 missing=()
  while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for d in "${missing[@]}"; do
    mkdir -m 0755 "$d"; created+=("d $d")
  done
}
# put a file in place with a mode unless it is already there, the same and with that mode
place() {
  local from=$1 to=$2 mode=$3 keep=${4:-}
  if [ -e "$to" ] && [ -n "$keep" ]; then note "kept $to (an existing configuration)"; return; fi
  if [ -e "$to" ] && cmp -s "$from" "$to" && [ "$(stat -c %a "$to")" = "${mode#0}" ]; then
    note "unchanged $to"; return
  fi
  mkdirs "$(dirname "$to")"
  [ -e "$to" ] || created+=("f $to")
  install -m "$mode" "$from" "$to.new" && mv -f "$to.new" "$to"
  note "installed $to ($mode)"; changed=1
}
systemd_runs() { [ -z "$root" ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

if [ "$action" = install ]; then
  created=()
  place "$src/$binname" "$root/usr/local/bin/iotad" 0755
  place "$src/iotad.service" "$root/etc/systemd/system/iotad.service" 0644
  place "$src/config.json" "$root/etc/iotad/config.json" 0644 keep
  # the default configuration, to tell at uninstall whether it was edited
  place "$src/config.json" "$root/etc/iotad/.default-config.json" 0644
  if [ ${#created[@]} -gt 0 ]; then printf '%s\n' "${created[@]}" >>"$manifest"; chmod 0644 "$manifest"; fi
  if systemd_runs; then
    systemctl daemon-reload
    systemctl enable --quiet iotad
    if [ $changed = 1 ]; then systemctl restart iotad; note "systemctl restart iotad"; else systemctl start iotad; fi
    systemctl --no-pager --lines=0 status iotad || true
  else
    note "not run (systemd is not PID 1${root:+, or ROOT=$root}): systemctl daemon-reload; systemctl enable --now iotad"
  fi
  [ $changed = 1 ] || note "nothing changed"
  # the status page's address, from the configuration in place
  enabled=$("$root/usr/local/bin/iotad" config --check "$root/etc/iotad/config.json" --get http.enabled 2>/dev/null || true)
  bind=$("$root/usr/local/bin/iotad" config --check "$root/etc/iotad/config.json" --get http.bind 2>/dev/null || true)
  if [ "$enabled" = true ] && [ -n "$bind" ]; then note "status page: http.bind $bind"; fi
else
  if systemd_runs && systemctl cat iotad >/dev/null 2>&1; then
    systemctl disable --now --quiet iotad || true
    note "systemctl disable --now iotad"
  elif [ -z "$root" ]; then
    note "not run (systemd is not PID 1): systemctl disable --now iotad"
  fi
  if [ ! -f "$manifest" ]; then note "nothing to remove (no $manifest)"; exit 0; fi
  conf=$root/etc/iotad/config.json default=$root/etc/iotad/.default-config.json
  list=$(cat "$manifest")
  # files first, then the directories it made, deepest first, when empty
  while read -r f; do
    if [ "$f" = "$conf" ] && [ -f "$f" ] && ! cmp -s "$f" "$default"; then
      note "kept $f (edited since deploy)"; continue
    fi
    if [ -e "$f" ]; then rm -f "$f"; note "removed $f"; fi
  done < <(grep '^f ' <<<"$list" | cut -c3-)
  rm -f "$default" "$manifest"
  while read -r d; do
    if [ -d "$d" ] && rmdir "$d" 2>/dev/null; then note "removed $d/"; fi
  done < <(grep '^d ' <<<"$list" | cut -c3- | sort -r)
  systemd_runs && systemctl daemon-reload
  note "the learned state (/var/lib/private/iotad with DynamicUser) is kept"
fi
REMOTE

if [ "$action" = install ]; then
  host=${PI#*@}
  echo "iotad on $host: journalctl -u iotad -f (alerts in the log), events in ${ROOT}/var/log/iotad/events.jsonl;"
  echo "  configuration: ${ROOT}/etc/iotad/config.json (then: systemctl reload-or-restart iotad)"
  bind=$(sed -n 's/^  status page: http.bind //p' "$said")
  port=${bind##*:}
  case $bind in
    "") echo "status page: off (http.enabled is false)" ;;
    127.*|localhost:*|"[::1]":*)
      echo "status page: http://$bind/ on the Pi (loopback only); from here: ssh -L $port:$bind $PI, then open http://localhost:$port/" ;;
    0.0.0.0:*|"[::]":*)
      echo "status page: http://$host:$port/ (bring http.token: http://$host:$port/?token=...)" ;;
    *) echo "status page: http://$bind/ (bring http.token: ?token=...)" ;;
  esac
fi
