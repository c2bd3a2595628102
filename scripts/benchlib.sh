# scripts/benchlib.sh — the measuring harness shared by scripts/bench and
# scripts/bench-mirror. Source it after lib.sh; it defines:
#   group, cmd, target, check, bench, S   declare and run hyperfine groups
#   start_registry NAME                   a docker-registry of the bench's own
#   cpu_ticks, measure_rounds             every declared group, in rounds;
#                                         sets `others` (cores other processes used);
#                                         calls after_group GROUP ROUND, if the
#                                         script defines it, after each group
#   summarize [TITLE]                     bench_summary.py over the results
#                                         (tee'd to summary.txt; its status)
# and reads these variables of the calling script: spec (the spec.tsv path),
# out_dir, w (the work directory; RSS files in $w/rss), run (per-run
# outputs), prepare (the common prepare step), disk, rounds, nice_level,
# TIME, PY, MEM_TARGET_MIB, medium, strata (for S), reg_dir and reg_pids
# (for start_registry).

# Everything to measure is first declared in $spec, then run in rounds.
# group NAME RUNS WARMUP [PREPARE] — a hyperfine invocation; RUNS is the
#   total over all rounds, WARMUP is per round; PREPARE, a shell command run
#   before every run after the common prepare step.
# cmd GROUP KEY ROLE LABEL COMMAND — a command of GROUP.
#   ROLE: strata | skopeo | umoci (the peer tools: KEY skopeo or umoci is the
#         one the "× peer" column divides by) | floor (the target's floor;
#         the fastest counts) | ref (a reference point, shown for context).
#   strata, skopeo and umoci commands run under /usr/bin/time to record
#   peak RSS.
# target GROUP FACTOR [floor|skopeo|umoci|seconds] — the group's strata rows
#   must be ≤ FACTOR × its (fastest) floor, or × the peer's median, or take
#   ≤ FACTOR seconds (median).
group() { printf 'group\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$spec"; }
cmd() {
    local group=$1 key=$2 role=$3 label=$4 command=$5
    if [ "$role" = strata ] || [ "$role" = skopeo ] || [ "$role" = umoci ]; then
        command="$TIME -f %M -a -o '$w/rss/$group.$key' $command"
    fi
    printf 'cmd\t%s\t%s\t%s\t%s\t%s\n' "$group" "$key" "$role" "$label" "$command" >>"$spec"
}
target() { printf 'target\t%s\t%s\t%s\n' "$1" "$2" "${3:-floor}" >>"$spec"; }
# check NAME PASS|FAIL|INFO TEXT — a result measured outside hyperfine (a
#   correctness check, say), printed under the table; PASS and FAIL count
#   with the targets.
check() { printf 'check\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$spec"; }
# bench GROUP ROUND — one round of GROUP's commands, JSON in GROUP.rROUND.json.
bench() {
    local group=$1 round=$2 kind g key role label command total=0 warm=0 n
    local args=() prep="$prepare"
    while IFS=$'\t' read -r kind g key role label command; do
        [ "$g" = "$group" ] || continue
        case "$kind" in
            group)
                total=$key warm=$role
                if [ -n "$label" ]; then prep="$prep && $label"; fi
                ;;
            cmd) args+=(-n "$key" "$command") ;;
        esac
    done <"$spec"
    [ "$disk" = 1 ] && prep="$prep && sync"
    n=$(((total + rounds - 1) / rounds))
    log "== $group, round $round/$rounds: $((${#args[@]} / 3)) commands, $n runs, $warm warmup"
    nice -n "$nice_level" hyperfine --style basic --runs "$n" --warmup "$warm" \
        --prepare "$prep" --cleanup "rm -rf '$run'" \
        --export-json "$out_dir/$group.r$round.json" "${args[@]}"
}
# S ARGS — the strata command line, quoted for hyperfine's shell.
S() { printf "'%s'" "$strata"; printf " %s" "$@"; }

# start_registry NAME — a plain-HTTP docker-registry on a free 127.0.0.1
# port, its storage, config and log in $reg_dir/NAME; sets reg_addr.
start_registry() {
    local name=$1 dir="$reg_dir/$1" port pid
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$dir/storage"
    cat >"$dir/config.yml" <<EOF
# written by scripts/${0##*/} (registry $name)
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: strata-bench-$name
EOF
    # setsid: no terminal signals; the pid is the registry's (nice and
    # setsid exec it). The same niceness as the measured commands: the
    # registry's work is part of every run.
    nice -n "$nice_level" setsid docker-registry serve "$dir/config.yml" \
        >"$dir/log" 2>&1 </dev/null &
    pid=$!
    reg_pids+=("$pid")
    for _ in $(seq 1 150); do
        if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/"; then
            reg_addr="127.0.0.1:$port"
            log "registry $name on $reg_addr (storage $dir/storage)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$dir/log" >&2 || true
    die "registry $name did not start"
}
# cpu_ticks — busy CPU ticks of the whole machine, and of this script's
# finished children, so the summary can say how much other processes ran.
cpu_ticks() {
    echo "$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat)" \
        "$(awk '{print $16 + $17}' "/proc/$$/stat")" "$(date +%s.%N)"
}
# measure_rounds — every group declared in $spec, round after round;
# sets `others`: the cores other processes used on average meanwhile.
measure_rounds() {
    local all0 self0 t0 all1 self1 t1 g round groups
    read -r all0 self0 t0 < <(cpu_ticks)
    log "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
    mapfile -t groups < <(awk -F'\t' '$1 == "group" {print $2}' "$spec")
    for round in $(seq 1 "$rounds"); do
        for g in "${groups[@]}"; do
            bench "$g" "$round"
            # A hook of the calling script's, e.g. to check what a group left.
            if declare -F after_group >/dev/null; then after_group "$g" "$round"; fi
        done
    done
    read -r all1 self1 t1 < <(cpu_ticks)
    # Cores used by other processes, on average, while measuring.
    others="$(awk -v a="$((all1 - all0))" -v s="$((self1 - self0))" -v t0="$t0" -v t1="$t1" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN {x = (a - s) / hz / (t1 - t0); printf "%.2f", x < 0 ? 0 : x}')"
    log "other processes used $others cores on average while measuring"
}

# summarize [TITLE] — the summary table (and summary.txt); status 1 when a
# target or check FAILed.
summarize() {
    "$PY" "$(dirname "${BASH_SOURCE[0]}")/bench_summary.py" "$out_dir" "$w/rss" "$MEM_TARGET_MIB" \
        "$medium" "$rounds" "$others" "$nice_level" "${1:-strata benchmark}" \
        | tee "$out_dir/summary.txt"
    return "${PIPESTATUS[0]}"
}
