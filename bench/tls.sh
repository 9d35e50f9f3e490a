#!/bin/bash
# bench/tls.sh BUILDDIR: HTTPS, examples/http_server --cert/--key against nginx
# with the same certificate (ECDSA P-256), TLS 1.3 only and one cipher suite
# (TLS_AES_128_GCM_SHA256, set for both through an OPENSSL_CONF file, which
# OpenSSL applies to every context, and checked with openssl s_client),
# measured with wrk.  bench/run calls it for the "tls" scenario; it also runs
# alone.
#
#   keepalive   a 13-byte file, 50 keep-alive connections: the record layer
#   handshakes  the same file with "Connection: close", 16 connections: a new
#               TLS connection (a full handshake, X25519) per request
#
# nginx runs as in bench/http.sh (one process, no master, access log off);
# both servers on CPU 0 for the whole bench, wrk on CPU 1, the runs alternate
# (nginx, evchat, ...) and the medians are compared.  Prints requests/s,
# server CPU per request (ns, /proc/PID/schedstat) and the ratio
# http_server/nginx per scenario (target >= 1.0 for both).
#
# Environment: BENCH_ROUNDS, BENCH_SECONDS, BENCH_QUICK, BENCH_PIN as for
# bench/run; BENCH_TLS_SCENARIOS (default "keepalive handshakes").

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
case $rounds in '' | *[!0-9]* | 0) echo "bench/tls: BENCH_ROUNDS must be a positive integer" >&2; exit 2 ;; esac
# wrk counts whole seconds: a fraction is rounded up.
if ! seconds=$(awk -v s="$seconds" 'BEGIN { if (!(s + 0 > 0 && s + 0 < 3600)) exit 1; printf "%d", (s == int(s)) ? s : int(s) + 1 }'); then
    echo "bench/tls: BENCH_SECONDS must be a positive number of seconds" >&2
    exit 2
fi
tls_scenarios=${BENCH_TLS_SCENARIOS:-keepalive handshakes}
server_prog=$build/examples/http_server
if [ ! -x "$server_prog" ]; then
    echo "bench/tls: $server_prog is missing: build first (make all)" >&2
    exit 2
fi
if "$server_prog" --cert /dev/null --key /dev/null -p 1 2>&1 | grep -q 'built without TLS'; then
    echo "bench/tls: evchat was built without OpenSSL: skipped"
    exit 0
fi

# ---------------------------------------------------------------- the peers
install_missing() {
    local missing=() pkg created=
    for pkg in wrk nginx; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} = 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "bench/tls: please install ${missing[*]} (apt-get install as root)" >&2
        return 1
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created=1
    fi
    echo "bench/tls: installing ${missing[*]}"
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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evchat-bench-tls.XXXXXX") || exit 2
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
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 -subj /CN=localhost \
    -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' >/dev/null 2>&1 || exit 2
# The protocol and the suite, the same for both servers.
cat > "$tmp/openssl.cnf" <<EOF
openssl_conf = evc_bench
[evc_bench]
ssl_conf = evc_bench_ssl
[evc_bench_ssl]
system_default = evc_bench_tls
[evc_bench_tls]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF
export OPENSSL_CONF=$tmp/openssl.cnf

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
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        root $tmp/www;
    }
}
EOF
"${server_cpu[@]}" "$nginx_bin" -c "$tmp/nginx.conf" -p "$tmp" 2> "$tmp/nginx.stderr" &
nginx_pid=$!
"${server_cpu[@]}" "$server_prog" -q -b 127.0.0.1 -p 0 --cert "$tmp/cert.pem" --key "$tmp/key.pem" \
    "$tmp/www" > "$tmp/evc.out" 2> "$tmp/evc.err" &
evc_pid=$!
evc_port=
for ((i = 0; i < 100; i++)); do
    line=$(head -n 1 "$tmp/evc.out" 2>/dev/null)
    case $line in "listening on "*:*) evc_port=${line##*:}; break ;; esac
    sleep 0.05
done
for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$nginx_port/small.txt" && break
    sleep 0.05
done
# Both serve the same bytes over the same protocol and suite before anything is measured.
for port in "$nginx_port" "$evc_port"; do
    if ! curl -sS --max-time 10 --cacert "$tmp/cert.pem" "https://127.0.0.1:$port/small.txt" |
        cmp -s - "$tmp/www/small.txt"; then
        echo "bench/tls: the server on port ${port:-?} does not serve small.txt" >&2
        cat "$tmp/nginx.stderr" "$tmp/nginx.err" "$tmp/evc.err" 2>/dev/null >&2
        exit 1
    fi
    suite=$(openssl s_client -connect "127.0.0.1:$port" -CAfile "$tmp/cert.pem" </dev/null 2>/dev/null |
            sed -n 's/^New, \(TLSv1.3\), Cipher is \(.*\)$/\1 \2/p')
    if [ "$suite" != "TLSv1.3 TLS_AES_128_GCM_SHA256" ]; then
        echo "bench/tls: the server on port $port negotiates '$suite'" >&2
        exit 1
    fi
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
        echo "bench/tls: wrk saw errors:" >&2
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
echo "== tls: examples/http_server --cert vs nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), TLS 1.3 TLS_AES_128_GCM_SHA256, ECDSA P-256, wrk -t1, $rounds round(s) x ${seconds} s; $pinning"
for name in $tls_scenarios; do
    case $name in
    keepalive) args=(-c50 -H "Connection: keep-alive") ;;
    handshakes) args=(-c16 -H "Connection: close") ;;
    *) echo "bench/tls: unknown scenario '$name'" >&2; exit 2 ;;
    esac
    echo
    echo "-- $name: wrk ${args[*]} /small.txt"
    printf '%-6s %-12s %12s %18s\n' round server requests/s "server ns/request"
    nginx_rates=() evc_rates=() nginx_ns=() evc_ns=()
    for ((r = 1; r <= rounds; r++)); do
        for which in nginx http_server; do
            if [ $which = nginx ]; then pid=$nginx_pid port=$nginx_port; else pid=$evc_pid port=$evc_port; fi
            if ! run_wrk "$pid" "https://127.0.0.1:$port/small.txt" "${args[@]}"; then
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
    line=$(awk -v a="$me" -v b="$mn" -v x="$mn_ns" -v y="$me_ns" -v n="$name" 'BEGIN {
        printf "tls %s ratio http_server/nginx: %.2f (target >= 1.0); server CPU per request nginx/http_server: %.2f", n, a / b, (y > 0 ? x / y : 0) }')
    echo "$line"
    summary+=("$line")
done
echo
echo "== tls summary"
printf '%s\n' "${summary[@]}"
exit $failed
