#!/usr/bin/env python3
"""scripts/bench_summary.py — the summary table of scripts/bench and
scripts/bench-mirror (called through benchlib.sh's summarize).

Usage: bench_summary.py OUT_DIR RSS_DIR MEM_TARGET_MIB MEDIUM ROUNDS OTHERS NICE [TITLE]
  reads OUT_DIR/spec.tsv (cmd, target and check lines) and hyperfine's
  OUT_DIR/GROUP.rN.json, RSS_DIR/GROUP.KEY (peak RSS in KiB, one a run);
  prints median/min/cpu seconds, ratios to the floor and the peer, peak RSS
  and PASS/FAIL per target; exit status 1 when a target or check FAILed.
"""
import glob, json, os, statistics, sys

out_dir, rss_dir, mem_target, medium, rounds, others, nice = sys.argv[1:8]
title = sys.argv[8] if len(sys.argv) > 8 else "strata benchmark"
mem_target = float(mem_target)
groups, targets, checks = {}, {}, []
with open(os.path.join(out_dir, "spec.tsv")) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "cmd":
            _, g, key, role, label, _command = parts
            groups.setdefault(g, []).append((key, role, label))
        elif parts[0] == "target":
            # FACTOR, and what it multiplies: the floor, a peer's median
            # (skopeo, umoci), or one second (an absolute limit)
            targets[parts[1]] = (float(parts[2]), parts[3] if len(parts) > 3 else "floor")
        elif parts[0] == "check":
            # NAME, PASS|FAIL|INFO, TEXT: a result measured outside hyperfine
            checks.append(tuple(parts[1:4]))

def peak_rss_mib(g, key):
    try:
        with open(os.path.join(rss_dir, f"{g}.{key}")) as f:
            vals = [int(l) for l in f if l.strip().isdigit()]
    except FileNotFoundError:
        return None
    return max(vals) / 1024 if vals else None

fails = passes = 0
rows = []
strata_rss = {}
hdr = ("group", "command", "median s", "min s", "cpu s", "× floor", "× peer", "peak RSS", "verdict")
for g, cmds in groups.items():
    # Every round's runs of a command, merged.
    res = {}
    for path in sorted(glob.glob(os.path.join(out_dir, f"{g}.r*.json"))):
        with open(path) as f:
            for r in json.load(f)["results"]:
                acc = res.setdefault(r["command"], {"times": [], "cpu": []})
                acc["times"] += r["times"]
                acc["cpu"] += [r["user"] + r["system"]] * len(r["times"])
    for acc in res.values():
        acc["median"] = statistics.median(acc["times"])
        acc["min"] = min(acc["times"])
        acc["cpu"] = statistics.mean(acc["cpu"])
    med = {k: res[k]["median"] for k, _, _ in cmds if k in res}
    floors = [med[k] for k, role, _ in cmds if role == "floor" and k in med]
    floor = min(floors) if floors else None
    # The peer tool strata is compared with: the target's, else skopeo or umoci.
    against_t = targets.get(g, (None, None))[1]
    peer_key = against_t if against_t in med else "skopeo" if "skopeo" in med else "umoci"
    peer = med.get(peer_key)
    for key, role, label in cmds:
        if key not in res:
            continue
        r = res[key]
        m = r["median"]
        ratio_f = f"{m / floor:.2f}" if floor else "-"
        ratio_s = f"{m / peer:.2f}" if peer and role == "strata" else "-"
        rss = peak_rss_mib(g, key)
        rss_s = f"{rss:.1f} MiB" if rss is not None else "-"
        if role == "strata" and rss is not None:
            strata_rss[g] = max(rss, strata_rss.get(g, 0))
        verdict = []
        if role == "strata":
            factor, against = targets.get(g, (None, None))
            base = {"floor": floor, "seconds": 1.0}.get(against, med.get(against))
            if factor and base:
                ok = m <= factor * base
                limit = f"≤{factor:g} s" if against == "seconds" else f"≤{factor}× {against}"
                verdict.append(f"time {'PASS' if ok else 'FAIL'} ({limit})")
                passes += ok; fails += not ok
            if rss is not None:
                ok = rss < mem_target
                verdict.append(f"mem {'PASS' if ok else 'FAIL'}")
                passes += ok; fails += not ok
        elif role == "floor":
            targeted = targets.get(g, (None, None))[1] == "floor"
            verdict.append("floor" + (" (target)" if targeted and m == floor else ""))
        rows.append((g, label, f"{m:.3f}", f"{r['min']:.3f}",
                     f"{r['cpu']:.3f}", ratio_f, ratio_s, rss_s,
                     ", ".join(verdict)))
    rows.append(None)

widths = [max(len(h), *(len(r[i]) for r in rows if r)) for i, h in enumerate(hdr)]
def line(cells):
    return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()
print()
print(f"{title} on {medium}, {rounds} round(s), niceness {nice}; "
      f"other processes used {others} of {os.cpu_count()} cores on average meanwhile")
if float(others) > 0.2:
    print("warning: the machine was busy: multi-threaded commands (strata, skopeo) "
          "lose more to that than the one-thread floors; rerun when it is idle")
print("median/min of all runs; cpu = user+sys (mean); × floor = median / the group's fastest floor; "
      "× peer = strata's median / the peer tool's (skopeo; umoci in mount-*)")
print(line(hdr))
print(line(["-" * w for w in widths]))
for r in rows:
    print(line(r) if r else "")
print(f"memory target: every strata run < {mem_target:.0f} MiB peak RSS; strata's peak by group: "
      + (", ".join(f"{g} {v:.1f} MiB" for g, v in strata_rss.items()) or "no strata runs"))
for name, verdict, text in checks:
    print(f"{name}: {verdict}: {text}" if verdict != "INFO" else f"{name}: {text}")
    passes += verdict == "PASS"
    fails += verdict == "FAIL"
print(f"targets: {passes} passed, {fails} failed")
sys.exit(1 if fails else 0)
