#!/bin/bash
# bench/http.sh BUILDDIR: examples/http_server against nginx, both serving the
# same directory, measured with wrk.  bench/run calls it for the "http"
# scenario; it also runs alone.
#
#   small      a 13-byte file, 50 keep-alive connections
#   large      a 1 MiB file, 16 keep-alive connections
#   pipelined  the 13-byte file, 16 requests in flight on each of 16 connections
#              (a wrk Lua script that sends 16 requests per write, so wrk
#              counts the 16 answers of each write; wrk is already needed for
#              the other two, where h2load would add nghttp2-client for one)
#
# nginx is Debian's package with a generated config: one process (no master,
# so its CPU time is the serving process's), access log off, sendfile on,
# keep-alive without a request limit.  Both servers run together for the
# whole bench on CPU 0, wrk on CPU 1; the runs alternate (nginx, evchat,
# nginx, ...) and the medians are compared.  http_server runs with -q (no
# access log).  Prints requests/s, server CPU per request (ns, from
# /proc/PID/schedstat) and the ratio http_server/nginx per scenario (targets:
# >= 1.0 for small and pipelined, >= 0.9 for large).
#
# wrk and nginx are installed with apt-get when missing (as root).  Debian's
# nginx starts a system service on install: a temporary policy-rc.d that
# forbids it is put in place (and removed) unless one exists already.
#
# Environment: BENCH_ROUNDS, BENCH_SECONDS, BENCH_QUICK, BENCH_PIN as for
# bench/run; BENCH_HTTP_SCENARIOS (default "small large pipelined").

set -u
build=${1:-.}
build=$(cd "$build" && pwd) || exit 2
here=$(cd "$(dirname "$0")" && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    rounds=${BENCH_ROUNDS:-1}
    seconds=${BENCH_SECONDS:-1}
else
    rounds=${BENCH_ROUNDS:-5}
    seconds=${BENCH_SECONDS:-3}
fi
case $rounds in '' | *[!0-9]* | 0) echo "bench/http: BENCH_ROUNDS must be a positive integer" >&2; exit 2 ;; esac
# wrk counts whole seconds: a fraction is rounded up.
if ! seconds=$(awk -v s="$seconds" 'BEGIN { if (!(s + 0 > 0 && s + 0 < 3600)) exit 1; printf "%d", (s == int(s)) ? s : int(s) + 1 }'); then
    echo "bench/http: BENCH_SECONDS must be a positive number of seconds" >&2
    exit 2
fi
http_scenarios=${BENCH_HTTP_SCENARIOS:-small large pipelined}
server_prog=$build/examples/http_server
if [ ! -x "$server_prog" ]; then
    echo "bench/http: $server_prog is missing: build first (make all)" >&2
    exit 2
fi

# ---------------------------------------------------------------- the peers
install_missing() {
    local missing=() pkg created=
    for pkg in wrk nginx; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} = 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "bench/http: please install ${missing[*]} (apt-get install as root)" >&2
        return 1
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created=1
    fi
    echo "bench/http: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    local rc=$?
    [ -n "$created" ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}
install_missing || exit 1
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

server_cpu=()
client_cpu=()
pinning="not pinned"
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
    pinning="servers on CPU 0, wrk on CPU 1"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evchat-bench-http.XXXXXX") || exit 2
nginx_pid=
evc_pid=
cleanup() {
    local pid
    for pid in $nginx_pid $evc_pid; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/www"
printf 'hello, world\n' > "$tmp/www/small.txt"        # 13 bytes
head -c 1048576 /dev/urandom > "$tmp/www/large.bin"
cat > "$tmp/pipeline.lua" <<'EOF'
-- 16 requests per write: wrk counts each answer, so 16 are always in flight.
init = function(args)
    local r = {}
    for i = 1, 16 do
        r[i] = wrk.format(nil, "/small.txt")
    end
    req = table.concat(r)
end
request = function()
    return req
end
EOF

# A free loopback port for nginx (http_server picks its own with -p 0).
nginx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 2
cat > "$tmp/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000000;
    default_type application/octet-stream;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        root $tmp/www;
    }
}
EOF
"${server_cpu[@]}" "$nginx_bin" -c "$tmp/nginx.conf" -p "$tmp" 2> "$tmp/nginx.stderr" &
nginx_pid=$!
"${server_cpu[@]}" "$server_prog" -q -b 127.0.0.1 -p 0 "$tmp/www" > "$tmp/evc.out" 2> "$tmp/evc.err" &
evc_pid=$!
evc_port=
for ((i = 0; i < 100; i++)); do
    line=$(head -n 1 "$tmp/evc.out" 2>/dev/null)
    case $line in "listening on "*:*) evc_port=${line##*:}; break ;; esac
    sleep 0.05
done
# Both must serve the same bytes before anything is measured.
for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$nginx_port/small.txt" && break
    sleep 0.05
done
for port in "$nginx_port" "$evc_port"; do
    for f in small.txt large.bin; do
        if ! curl -sS --max-time 10 "http://127.0.0.1:$port/$f" | cmp -s - "$tmp/www/$f"; then
            echo "bench/http: the server on port ${port:-?} does not serve $f" >&2
            cat "$tmp/nginx.stderr" "$tmp/nginx.err" "$tmp/evc.err" 2>/dev/null >&2
            exit 1
        fi
    done
done

cpu_ns() {
    local stat
    read -r stat _ < "/proc/$1/schedstat" 2>/dev/null && echo "$stat" || echo 0
}

# run_wrk PID URL ARGS...: one wrk run; sets rate and ns (server CPU per request).
run_wrk() {
    local pid=$1 url=$2 before after total
    shift 2
    before=$(cpu_ns "$pid")
    timeout $((seconds * 3 + 20)) "${client_cpu[@]}" wrk -t1 -d"${seconds}s" "$@" "$url" \
        > "$tmp/wrk.out" 2>&1 || { cat "$tmp/wrk.out" >&2; return 1; }
    after=$(cpu_ns "$pid")
    if grep -q -e 'Non-2xx' -e 'Socket errors' "$tmp/wrk.out"; then
        echo "bench/http: wrk saw errors:" >&2
        cat "$tmp/wrk.out" >&2
        return 1
    fi
    rate=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk.out")
    total=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$tmp/wrk.out")
    [ -n "$rate" ] && [ -n "$total" ] && [ "$total" -gt 0 ] || { cat "$tmp/wrk.out" >&2; return 1; }
    ns=$(awk -v d=$((after - before)) -v n="$total" 'BEGIN { printf "%.0f", d / n }')
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

failed=0
summary=()
echo
echo "== http: examples/http_server vs nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), wrk -t1, $rounds round(s) x ${seconds} s; $pinning"
for name in $http_scenarios; do
    case $name in
    small) args=(-c50 -H "Connection: keep-alive") path=/small.txt target=1.0 ;;
    large) args=(-c16) path=/large.bin target=0.9 ;;
    pipelined) args=(-c16 -s "$tmp/pipeline.lua") path=/small.txt target=1.0 ;;
    *) echo "bench/http: unknown scenario '$name'" >&2; exit 2 ;;
    esac
    echo
    echo "-- $name: wrk ${args[*]//$tmp\//} $path"
    printf '%-6s %-12s %12s %18s\n' round server requests/s "server ns/request"
    nginx_rates=() evc_rates=() nginx_ns=() evc_ns=()
    for ((r = 1; r <= rounds; r++)); do
        for which in nginx http_server; do
            if [ $which = nginx ]; then pid=$nginx_pid port=$nginx_port; else pid=$evc_pid port=$evc_port; fi
            if ! run_wrk "$pid" "http://127.0.0.1:$port$path" "${args[@]}"; then
                echo "$name: round $r ($which) FAILED"
                failed=1
                continue 2
            fi
            printf '%-6s %-12s %12.0f %18s\n' "$r" $which "$rate" "$ns"
            if [ $which = nginx ]; then nginx_rates+=("$rate"); nginx_ns+=("$ns")
            else evc_rates+=("$rate"); evc_ns+=("$ns"); fi
        done
    done
    mn=$(printf '%s\n' "${nginx_rates[@]}" | median)
    me=$(printf '%s\n' "${evc_rates[@]}" | median)
    mn_ns=$(printf '%s\n' "${nginx_ns[@]}" | median)
    me_ns=$(printf '%s\n' "${evc_ns[@]}" | median)
    printf '%-6s %-12s %12.0f %18.0f\n' median nginx "$mn" "$mn_ns" median http_server "$me" "$me_ns"
    line=$(awk -v a="$me" -v b="$mn" -v x="$mn_ns" -v y="$me_ns" -v n="$name" -v t="$target" 'BEGIN {
        printf "http %s ratio http_server/nginx: %.2f (target >= %s); server CPU per request nginx/http_server: %.2f", n, a / b, t, (y > 0 ? x / y : 0) }')
    echo "$line"
    summary+=("$line")
done
echo
echo "== http summary"
printf '%s\n' "${summary[@]}"
exit $failed
