#!/bin/bash
# bench/workers.sh BUILDDIR: the same evchat servers on 1 and on 2 worker loops.
#
# Two scenarios, the load generator as in bench/run:
#   echo   pipelined line echo: bench/chat_echo_server -w N
#   churn  connect, "hi\r\n\r\n", read the time to EOF: examples/time_server -w N
# and three servers per scenario, run as interleaved rounds (1, 2, 2-acceptor,
# 1, 2, 2-acceptor, ...) so that noise from a shared machine falls on all alike:
#   1            -w 1: one worker loop (on a thread of its own)
#   2            -w 2: two loops, a SO_REUSEPORT listener each (the default)
#   2-acceptor   -w 2 --acceptor: two loops, one thread accepting and dealing
#                the connections round robin
# Nothing is pinned: with two loops the server may use both cores, which the
# load generator (one thread) shares.  Each run also reports the CPU split:
# the cores the server used (all its threads, /proc/PID/task/*/schedstat) and
# the load generator used (its getrusage), over the run's wall time, and the
# server's CPU per operation, which says what a loop costs when cores are the
# limit (on a shared 2-core machine the rate mostly says who got scheduled).
# Prints every run, the medians, and per scenario
#   "workers <scenario> ratio 2-loop/1-loop: X.XX"
#   "workers <scenario> ratio acceptor/reuseport (2 loops): X.XX"
# Exits 1 if a run fails.
#
# Environment (as bench/run): BENCH_ROUNDS (default 5), BENCH_SECONDS (default
# 3), BENCH_QUICK=1 (1 round of 1 second), BENCH_ECHO_ARGS, BENCH_CHURN_ARGS;
# BENCH_WORKERS_CONFIGS, the servers to run (default "1 2 2-acceptor"), and
# BENCH_WORKERS_SCENARIOS, which scenarios (default "echo churn").

# make runs bench/run with $(SHELL), which may not be bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u

build=${1:-.}
build=$(cd "$build" && pwd) || exit 2
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    rounds=${BENCH_ROUNDS:-1}
    seconds=${BENCH_SECONDS:-1}
else
    rounds=${BENCH_ROUNDS:-5}
    seconds=${BENCH_SECONDS:-3}
fi
case $rounds in '' | *[!0-9]* | 0) echo "workers bench: BENCH_ROUNDS must be a positive integer" >&2; exit 2 ;; esac
if ! limit=$(awk -v s="$seconds" 'BEGIN { if (s + 0 > 0 && s + 0 < 3600) printf "%d", s * 3 + 20; else exit 1 }'); then
    echo "workers bench: BENCH_SECONDS must be a positive number of seconds" >&2
    exit 2
fi
echo_args=${BENCH_ECHO_ARGS:---conns 32 --depth 2048 --lines 512}
churn_args=${BENCH_CHURN_ARGS:---conns 16}
configs=${BENCH_WORKERS_CONFIGS:-1 2 2-acceptor}
for c in $configs; do
    case $c in 1 | 2 | 2-acceptor) ;; *) echo "workers bench: unknown config '$c'" >&2; exit 2 ;; esac
done

loadgen=$build/bench/loadgen
for prog in "$loadgen" "$build/bench/chat_echo_server" "$build/examples/time_server"; do
    if [ ! -x "$prog" ]; then
        echo "workers bench: $prog is missing: build first (make all)" >&2
        exit 2
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evchat-workers.XXXXXX") || exit 2
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Nanoseconds all of the process's threads have run on a CPU.
server_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

now_ns() {
    date +%s%N
}

# start_server PROG ARGS...: on 127.0.0.1 port 0; sets server_pid and port.
start_server() {
    local i line out
    out=$(mktemp "$tmp/server.XXXXXX") || return 1
    "$@" -b 127.0.0.1 -p 0 > "$out" 2> "$tmp/server.err" &
    server_pid=$!
    for ((i = 0; i < 100; i++)); do
        line=$(head -n 1 "$out" 2>/dev/null)
        case $line in
        "listening on "*:*)
            port=${line##*:}
            return 0
            ;;
        esac
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "workers bench: $1 did not announce 'listening on HOST:PORT'" >&2
    cat "$tmp/server.err" >&2
    return 1
}

stop_server() {
    local i status
    kill -TERM "$server_pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "workers bench: server $server_pid did not exit on SIGTERM" >&2
        kill -KILL "$server_pid"
    fi
    wait "$server_pid"
    status=$?
    server_pid=
    if [ "$status" != 0 ]; then
        echo "workers bench: server exited with status $status" >&2
        cat "$tmp/server.err" >&2
        return 1
    fi
}

# run_one MODE ARGS PROG CONFIG: sets rate, server_cores, loadgen_cores and
# server_ns (the server's CPU per operation, all its threads).
run_one() {
    local mode=$1 args=$2 prog=$3 config=$4 before after t0 t1 rc cpu total
    local workers=(-w "${config%%-*}")
    [ "$config" = 2-acceptor ] && workers+=(--acceptor)
    start_server "$prog" "${workers[@]}" || return 1
    before=$(server_ns "$server_pid")
    t0=$(now_ns)
    # shellcheck disable=SC2086  # args are a word list on purpose
    timeout "$limit" "$loadgen" "$mode" 127.0.0.1 "$port" $args --seconds "$seconds" \
        > "$tmp/loadgen.out" 2>&1
    rc=$?
    t1=$(now_ns)
    after=$(server_ns "$server_pid")
    stop_server || return 1
    if [ $rc != 0 ]; then
        echo "workers bench: loadgen $mode against $(basename "$prog") $config failed (status $rc):" >&2
        cat "$tmp/loadgen.out" >&2
        return 1
    fi
    rate=$(sed -n 's/^rate: //p' "$tmp/loadgen.out")
    cpu=$(sed -n 's/^cpu: //p' "$tmp/loadgen.out")
    total=$(sed -n 's/^total: //p' "$tmp/loadgen.out")
    server_ns=$(awk -v d=$((after - before)) -v n="$total" 'BEGIN { printf "%.0f", d / n }')
    server_cores=$(awk -v d=$((after - before)) -v w=$((t1 - t0)) 'BEGIN { printf "%.2f", d / w }')
    loadgen_cores=$(awk -v c="$cpu" -v w=$((t1 - t0)) 'BEGIN { printf "%.2f", c * 1e9 / w }')
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

failed=0

# scenario NAME UNIT MODE ARGS PROG
scenario() {
    local name=$1 unit=$2 mode=$3 args=$4 prog=$5 r c
    declare -A rates=() scores=() lcores=() nss=()
    echo
    echo "== workers $name: loadgen $mode $args --seconds $seconds against ${prog#"$build"/} -w N"
    printf '%-6s %-11s %14s %13s %14s %16s\n' round server "$unit/s" "server cores" "loadgen cores" \
        "server ns/${unit%s}"
    for ((r = 1; r <= rounds; r++)); do
        for c in $configs; do
            if ! run_one "$mode" "$args" "$prog" "$c"; then
                echo "workers $name: round $r ($c) FAILED"
                failed=1
                return
            fi
            printf '%-6s %-11s %14.0f %13s %14s %16s\n' "$r" "$c" "$rate" "$server_cores" \
                "$loadgen_cores" "$server_ns"
            rates[$c]+="$rate "
            scores[$c]+="$server_cores "
            lcores[$c]+="$loadgen_cores "
            nss[$c]+="$server_ns "
        done
    done
    declare -A med=()
    for c in $configs; do
        med[$c]=$(printf '%s\n' ${rates[$c]} | median)
        printf '%-6s %-11s %14.0f %13s %14s %16s\n' median "$c" "${med[$c]}" \
            "$(printf '%s\n' ${scores[$c]} | median)" "$(printf '%s\n' ${lcores[$c]} | median)" \
            "$(printf '%s\n' ${nss[$c]} | median)"
    done
    if [ -n "${med[1]:-}" ] && [ -n "${med[2]:-}" ]; then
        awk -v a="${med[2]}" -v b="${med[1]}" -v n="$name" \
            'BEGIN { printf "workers %s ratio 2-loop/1-loop: %.2f\n", n, a / b }'
    fi
    if [ -n "${med[2]:-}" ] && [ -n "${med[2-acceptor]:-}" ]; then
        awk -v a="${med[2-acceptor]}" -v b="${med[2]}" -v n="$name" \
            'BEGIN { printf "workers %s ratio acceptor/reuseport (2 loops): %.2f\n", n, a / b }'
    fi
}

echo "workers bench: $rounds round(s) x ${seconds} s per server; not pinned; $(nproc) CPUs"
case " ${BENCH_WORKERS_SCENARIOS:-echo churn} " in *" echo "*)
    scenario echo lines echo "$echo_args" "$build/bench/chat_echo_server" ;;
esac
case " ${BENCH_WORKERS_SCENARIOS:-echo churn} " in *" churn "*)
    scenario churn conns churn "$churn_args" "$build/examples/time_server" ;;
esac
if [ $failed != 0 ]; then
    echo "workers bench: FAILED (see above)"
    exit 1
fi
