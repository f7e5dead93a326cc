#!/usr/bin/env python3
"""Variants of the shared scenarios, to see whether detection holds beyond the given files.

From the shared data (MANIFEST.json beside the captures; nothing is copied into the
repository), writes two labelled sets into OUT, each with its own MANIFEST.json for
`iotad eval`:

  OUT/new/      every attack capture replayed inside the four benign devices' traffic of
                2021-03-08 15:00-19:00 UTC, starting at 17:00:00 and at 17:37:13.37 (another
                alignment with the 10-s windows): the attacker is a device nobody has seen;
  OUT/known/    every attack whose attacker has a MAC, its attacker's frames rewritten to the
                MAC and IPv4 address of a benign device (the Blink camera, then the Lockly hub),
                starting at 17:00: a device compromised after two hours of learning. Only the
                first attacker's frames are kept, so only its attacks are labelled.

Needs python3 and editcap / mergecap (Debian: wireshark-common). Usage:
    tests/variants.py SHARED_DATA_DIR OUT
"""

import copy
import json
import os
import struct
import subprocess
import sys

# the benign window every shared scenario is built from, and the devices it holds
BENIGN = ["blink-cam-01", "blink-cam-02", "lockly-hub-01", "schlage-lock-01"]
WINDOW = ("1615215600", "1615230000")
NEW_STARTS = (1615222800.0, 1615225033.37)
KNOWN = [("f4:b8:5e:ff:2b:1b", "192.168.1.129", "cam"), ("24:6f:28:d9:a7:64", "192.168.1.128", "hub")]


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ipv4_bytes(s):
    try:
        parts = [int(x) for x in s.split(".")]
    except (AttributeError, ValueError):
        return None
    return bytes(parts) if len(parts) == 4 and all(0 <= p < 256 for p in parts) else None


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def rewrite(src, dst, old_mac, old_ip, new_mac, new_ip, shift, tmp):
    """The frames to or from old_mac in src, shifted by `shift` seconds, with old_mac and
    old_ip (Ethernet, IPv4 with its header checksum, ARP) replaced; written to dst."""
    run("editcap", "-F", "pcap", src, tmp)
    b = open(tmp, "rb").read()
    e = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = b[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    unit = 1e9 if nano else 1e6
    out = bytearray(b[:24])
    i = 24
    while i + 16 <= len(b):
        sec, frac, caplen, wirelen = struct.unpack(e + "IIII", b[i : i + 16])
        f = bytearray(b[i + 16 : i + 16 + caplen])
        i += 16 + caplen
        if old_mac not in (bytes(f[0:6]), bytes(f[6:12])):
            continue
        t = sec + frac / unit + shift
        sec = int(t)
        frac = min(int(round((t - sec) * unit)), int(unit) - 1)
        for at in (0, 6):
            if f[at : at + 6] == old_mac:
                f[at : at + 6] = new_mac
        off, ethertype = 14, bytes(f[12:14])
        if ethertype == b"\x81\x00":
            off, ethertype = 18, bytes(f[16:18])
        if old_ip and ethertype == b"\x08\x00" and len(f) >= off + 20:
            ihl = (f[off] & 15) * 4
            for at in (off + 12, off + 16):
                if f[at : at + 4] == old_ip:
                    f[at : at + 4] = new_ip
            f[off + 10 : off + 12] = b"\0\0"
            f[off + 10 : off + 12] = struct.pack("!H", checksum(bytes(f[off : off + ihl])))
        elif old_ip and ethertype == b"\x08\x06" and len(f) >= off + 28:
            for at in (off + 14, off + 24):
                if f[at : at + 4] == old_ip:
                    f[at : at + 4] = new_ip
        out += struct.pack(e + "IIII", sec, frac, len(f), wirelen) + f
    open(dst, "wb").write(out)


def shifted_truth(c, shift, attacker=None):
    truth = []
    for g in c["ground_truth"]:
        g = copy.deepcopy(g)
        g["time_range"]["start_epoch"] += shift
        g["time_range"]["end_epoch"] += shift
        if attacker:
            old = g["attacker"]
            new_mac, new_ip = attacker
            f = g["filter"].replace(old["mac"], new_mac)
            if ipv4_bytes(old.get("ip")):
                # whole addresses only: 192.168.56.1 is not 192.168.56.103
                f = " ".join(
                    t.replace("==" + old["ip"], "==" + new_ip) if t.endswith("==" + old["ip"]) else t
                    for t in f.split(" ")
                )
            g["filter"] = f
            g["attacker"] = {"mac": new_mac, "ip": new_ip}
        truth.append(g)
    return truth


def main(data, out):
    m = json.load(open(os.path.join(data, "MANIFEST.json")))
    benign = []
    os.makedirs(out, exist_ok=True)
    for name in BENIGN:
        w = os.path.join(out, "win_%s.pcap" % name)
        run("editcap", "-A", WINDOW[0], "-B", WINDOW[1], os.path.join(data, "benign_%s.pcap" % name), w)
        benign.append(w)
    tmp, attack = os.path.join(out, "tmp.pcap"), os.path.join(out, "attack.pcap")
    for kind in ("new", "known"):
        os.makedirs(os.path.join(out, kind), exist_ok=True)
    new, known = [], []
    for c in m["captures"]:
        if c["type"] != "attack":
            continue
        src, stem = os.path.join(data, c["file"]), c["file"].split(".")[0]
        for start in NEW_STARTS:
            shift = start - c["start_epoch"]
            name = "%s-at-%d.pcap" % (stem, int(start) % 10000)
            run("editcap", "-F", "pcap", "-t", "%.6f" % shift, src, attack)
            run("mergecap", "-F", "pcap", "-w", os.path.join(out, "new", name), *benign, attack)
            new.append({"file": name, "type": "scenario", "ground_truth": shifted_truth(c, shift)})
        attacker = c["ground_truth"][0]["attacker"]
        if not attacker.get("mac"):
            continue
        for new_mac, new_ip, tag in KNOWN:
            shift = NEW_STARTS[0] - c["start_epoch"]
            name = "%s-by-%s.pcap" % (stem, tag)
            rewrite(
                src, attack, mac_bytes(attacker["mac"]), ipv4_bytes(attacker.get("ip")),
                mac_bytes(new_mac), ipv4_bytes(new_ip), shift, tmp,
            )
            run("mergecap", "-F", "pcap", "-w", os.path.join(out, "known", name), *benign, attack)
            # only the attacks of the attacker whose frames were kept: a capture with several
            # attackers (three crypto-miners) replayed by one device holds that one's attack,
            # and labelling the others' with the device named attacks that are not there
            kept = [g for g in c["ground_truth"] if g["attacker"].get("mac") == attacker["mac"]]
            truth = shifted_truth(dict(c, ground_truth=kept), shift, (new_mac, new_ip))
            known.append({"file": name, "type": "scenario", "ground_truth": truth})
    for kind, captures in (("new", new), ("known", known)):
        with open(os.path.join(out, kind, "MANIFEST.json"), "w") as f:
            json.dump({"set": "variants of the shared scenarios (tests/variants.py)", "captures": captures}, f, indent=1)
        print("%s: %d captures" % (os.path.join(out, kind, "MANIFEST.json"), len(captures)))
    for p in benign + [tmp, attack]:
        os.remove(p)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
