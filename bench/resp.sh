#!/bin/bash
# bench/resp.sh BUILDDIR: examples/resp_server against redis-server, both driven
# by redis-benchmark -t ping,set,get -c 50 at -P 1 and -P 16.
#
# Both servers run for the whole scenario on loopback (redis-server on a free
# port with a generated configuration: no persistence, no protected mode), pinned
# to CPU 0 with redis-benchmark on CPU 1, as bench/run pins its pairs.  After one
# uncounted warm-up run against each, the runs are interleaved per test
# (redis, resp, then resp, redis in the next round, ...) so that noise from the
# shared machine falls on both alike.  Each run is one redis-benchmark test, so
# the server's CPU time (/proc/PID/task/*/schedstat) can be charged to it.
# Prints every run, then per pipeline depth and test the median requests/s and
# server CPU ns/request of each server and the ratios resp_server / redis-server
# (higher is better for evchat; the target is >= 1.0).
# Exits 1 if a run fails or a server does not stop cleanly.
#
# Installs redis-server and redis-tools with apt-get when they are missing (as
# root), keeping the package's own service from starting (policy-rc.d).
#
# Environment:
#   BENCH_QUICK=1          smoke test: one round of 10,000 requests
#   BENCH_ROUNDS=N         rounds (default 5; 1 when quick)
#   BENCH_RESP_REQUESTS=N  requests per -P 1 test (default 200000); a test at
#                          -P D gets D times as many, so that it lasts about as
#                          long (200,000 requests at -P 16 take a tenth of a second)
#   BENCH_PIN=0            do not pin the servers to CPU 0 and redis-benchmark to CPU 1

# make runs bench/run with $(SHELL), which may not be bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u

build=${1:-.}
build=$(cd "$build" && pwd) || exit 2
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    rounds=${BENCH_ROUNDS:-1}
    requests=${BENCH_RESP_REQUESTS:-10000}
else
    rounds=${BENCH_ROUNDS:-5}
    requests=${BENCH_RESP_REQUESTS:-200000}
fi
case $rounds$requests in *[!0-9]*) echo "resp bench: rounds and requests must be integers" >&2; exit 2 ;; esac
clients=50
depths="1 16"
tests="PING_INLINE PING_MBULK SET GET"
resp_server=$build/examples/resp_server
if [ ! -x "$resp_server" ]; then
    echo "resp bench: $resp_server is missing: build first (make all)" >&2
    exit 2
fi

# Installs the peer without letting the package start its own redis on port 6379.
install_peer() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "resp bench: please install redis-server and redis-tools (apt-get install as root)" >&2
        return 1
    fi
    local policy=/usr/sbin/policy-rc.d created=0 rc
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# No service starts while the bench installs its peer.\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        created=1
    fi
    echo "resp bench: installing redis-server and redis-tools"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        redis-server redis-tools > /dev/null
    rc=$?
    [ $created = 1 ] && rm -f "$policy"
    return $rc
}
if ! command -v redis-server > /dev/null || ! command -v redis-benchmark > /dev/null; then
    install_peer || exit 2
fi

server_cpu=()
client_cpu=()
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset > /dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evchat-resp-bench.XXXXXX") || exit 2
redis_pid=
resp_pid=
cleanup() {
    local pid
    for pid in $redis_pid $resp_pid; do
        kill -KILL "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to 5 s for a server on port to answer PING.
await_ping() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2> /dev/null)" = PONG ] && return 0
        kill -0 "$2" 2> /dev/null || return 1
        sleep 0.05
    done
    return 1
}

# redis-server cannot pick its own port: try random high ports until one is free.
start_redis() {
    local attempt
    for ((attempt = 0; attempt < 20; attempt++)); do
        redis_port=$((20000 + RANDOM % 40000))
        cat > "$tmp/redis.conf" <<EOF
bind 127.0.0.1
port $redis_port
protected-mode no
save ""
appendonly no
daemonize no
dir $tmp
logfile $tmp/redis.log
EOF
        "${server_cpu[@]}" redis-server "$tmp/redis.conf" --save '' --appendonly no &
        redis_pid=$!
        await_ping "$redis_port" "$redis_pid" && return 0
        kill -KILL "$redis_pid" 2> /dev/null
        wait "$redis_pid" 2> /dev/null
        redis_pid=
    done
    echo "resp bench: redis-server did not start:" >&2
    cat "$tmp/redis.log" >&2
    return 1
}

start_resp() {
    local i line
    "${server_cpu[@]}" "$resp_server" -b 127.0.0.1 -p 0 > "$tmp/resp.out" 2> "$tmp/resp.err" &
    resp_pid=$!
    for ((i = 0; i < 100; i++)); do
        line=$(head -n 1 "$tmp/resp.out" 2> /dev/null)
        case $line in "listening on "*:*)
            resp_port=${line##*:}
            await_ping "$resp_port" "$resp_pid" && return 0 ;;
        esac
        kill -0 "$resp_pid" 2> /dev/null || break
        sleep 0.05
    done
    echo "resp bench: resp_server did not start:" >&2
    cat "$tmp/resp.err" >&2
    return 1
}

# stop PID NAME: SIGTERM; it must exit 0 within 5 s.
stop() {
    local i status
    kill -TERM "$1" 2> /dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2> /dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2> /dev/null; then
        echo "resp bench: $2 did not exit on SIGTERM" >&2
        kill -KILL "$1"
    fi
    wait "$1"
    status=$?
    if [ $status != 0 ]; then
        echo "resp bench: $2 exited with status $status" >&2
        return 1
    fi
}

# Nanoseconds the process's threads have run on a CPU, user and system (printed
# with %.0f: some awks cap %d at 2^31, which is only 2.1 s of CPU time).
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

# bench PORT PID DEPTH TEST N: one redis-benchmark test of N requests; prints
# "RPS NS_PER_REQUEST", the second the server's CPU time over the requests.
# A failure says why on stderr (redis-benchmark's messages and its output).
bench_once() {
    local before after
    before=$(cpu_ns "$2")
    if ! timeout 600 "${client_cpu[@]}" redis-benchmark -h 127.0.0.1 -p "$1" -t "$4" \
        -c "$clients" -n "$5" -P "$3" --csv > "$tmp/bench.csv" 2> "$tmp/bench.err"; then
        echo "resp bench: redis-benchmark failed (port $1, -P $3, $4):" >&2
        cat "$tmp/bench.err" "$tmp/bench.csv" >&2
        return 1
    fi
    after=$(cpu_ns "$2")
    # CSV rows: "TEST","rps",...; the header row's rps column is not a number.
    awk -F'"' -v ns=$((after - before)) -v n="$5" \
        '$4 ~ /^[0-9.]+$/ { printf "%s %.0f\n", $4, ns / n; found = 1 } END { exit !found }' \
        "$tmp/bench.csv" && return 0
    echo "resp bench: no figures from redis-benchmark (port $1, -P $3, $4):" >&2
    cat "$tmp/bench.err" "$tmp/bench.csv" >&2
    return 1
}

# The smoke run (BENCH_QUICK=1) is a check that everything runs, not a
# measurement: a run that fails once is tried again, saying so, before it
# fails the bench.
bench() {
    bench_once "$@" && return 0
    [ "${BENCH_QUICK:-0}" = 1 ] || return 1
    echo "resp bench: trying that run once more" >&2
    bench_once "$@"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

start_redis || exit 1
start_resp || exit 1
echo
echo "== resp: redis-benchmark -t ping,set,get -c $clients, -P 1 -n $requests, -P 16 -n $((requests * 16))"
echo "   reference: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
     "(save '', appendonly no)    evchat: examples/resp_server"
# Warm-up, not counted: both servers grow their buffers and tables, and the
# machine's caches settle, before the first measured run.
failed=0
for depth in $depths; do
    bench "$redis_port" "$redis_pid" "$depth" ping,set,get $((requests / 10)) > /dev/null &&
        bench "$resp_port" "$resp_pid" "$depth" ping,set,get $((requests / 10)) > /dev/null ||
        failed=1
done
printf '%-6s %-3s %-13s %-12s %14s %10s\n' round -P server test "requests/s" "server ns/req"
for ((r = 1; r <= rounds && !failed; r++)); do
    # Who goes first alternates from round to round.
    order="redis-server resp_server"
    [ $((r % 2)) = 0 ] && order="resp_server redis-server"
    for depth in $depths; do
        for test in $tests; do
            for which in $order; do
                if [ $which = redis-server ]; then
                    port=$redis_port pid=$redis_pid
                else
                    port=$resp_port pid=$resp_pid
                fi
                if ! run=$(bench "$port" "$pid" "$depth" "$test" $((requests * depth))); then
                    failed=1
                    break 3
                fi
                read -r rps ns <<< "$run"
                printf '%-6s %-3s %-13s %-12s %14.0f %10s\n' "$r" "$depth" $which "$test" "$rps" "$ns"
                echo "$rps" >> "$tmp/rates.$depth.$which.$test"
                echo "$ns" >> "$tmp/cpu.$depth.$which.$test"
            done
        done
    done
done
stop "$resp_pid" resp_server || failed=1
resp_pid=
stop "$redis_pid" redis-server || failed=1
redis_pid=
if [ $failed = 0 ]; then
    printf '%-6s %-3s %-12s %14s %14s %7s %11s %11s %7s\n' median -P test "redis-server/s" \
        "resp_server/s" ratio "redis ns/req" "resp ns/req" "cpu"
    for depth in $depths; do
        for test in $tests; do
            ref=$(median < "$tmp/rates.$depth.redis-server.$test" 2> /dev/null)
            evc=$(median < "$tmp/rates.$depth.resp_server.$test" 2> /dev/null)
            ref_ns=$(median < "$tmp/cpu.$depth.redis-server.$test" 2> /dev/null)
            evc_ns=$(median < "$tmp/cpu.$depth.resp_server.$test" 2> /dev/null)
            if [ -z "$ref" ] || [ -z "$evc" ] || [ -z "$ref_ns" ] || [ -z "$evc_ns" ]; then
                echo "resp bench: no figures for $test at -P $depth" >&2
                failed=1
                continue
            fi
            printf '%-6s %-3s %-12s %14.0f %14.0f %7.2f %11.0f %11.0f %7.2f\n' median "$depth" \
                "$test" "$ref" "$evc" "$(awk -v a="$evc" -v b="$ref" 'BEGIN { print a / b }')" \
                "$ref_ns" "$evc_ns" "$(awk -v a="$ref_ns" -v b="$evc_ns" 'BEGIN { print b ? a / b : 0 }')"
            awk -v a="$evc" -v b="$ref" -v t="$test" -v d="$depth" \
                'BEGIN { printf "resp -P %s %s ratio resp_server/redis-server: %.2f\n", d, t, a / b }' \
                >> "$tmp/ratios"
            awk -v a="$ref_ns" -v b="$evc_ns" -v t="$test" -v d="$depth" \
                'BEGIN { printf "resp -P %s %s server CPU per request ratio redis-server/resp_server: %.2f\n", d, t, b ? a / b : 0 }' \
                >> "$tmp/ratios"
        done
    done
    [ $failed = 0 ] && cat "$tmp/ratios"
fi
if [ $failed != 0 ]; then
    echo "resp bench: FAILED (see above)"
    exit 1
fi
