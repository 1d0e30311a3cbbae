# Sourced by the benchmarks, from the repository's root.
#
# `bench_setup`: a temporary $work directory and a $pids list, both cleaned
# up on exit (the processes in $pids killed, an nginx started under $work
# stopped). `free_port`: a free TCP port on 127.0.0.1. `start_nginx WORK
# PORT [TLS_PORT]` serves "ok" on 127.0.0.1:PORT and 127.0.0.2:PORT from a
# config kept under WORK/nginx, and with TLS_PORT also over HTTPS there, with
# a certificate for *.example.com, 127.0.0.1 and 127.0.0.2 signed by the CA
# in WORK/nginx/ca.pem (made with openssl). `release_bin`: builds the
# exporter's release binary if stale and sets $bin to it.

bench_setup() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}

# The release build of the exporter, built if stale; its path in $bin.
release_bin() {
  cargo build --release --quiet --bin badgateway-exporter
  bin=${CARGO_TARGET_DIR:-target}/release/badgateway-exporter
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_nginx() {
  local work=$1 port=$2 tls_port=${3:-} tls=""
  mkdir -p "$work/nginx/tmp"
  if [ -n "$tls_port" ]; then
    local d=$work/nginx
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
      -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=example.com \
      -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:*.example.com,IP:127.0.0.1,IP:127.0.0.2\n' > "$d/san.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
    tls="server { listen 127.0.0.1:$tls_port ssl; listen 127.0.0.2:$tls_port ssl;
    ssl_certificate $d/server.pem; ssl_certificate_key $d/server.key;
    location / { return 200 \"ok\\n\"; } }"
  fi
  cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body; proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fcgi; uwsgi_temp_path $work/nginx/tmp/uwsgi; scgi_temp_path $work/nginx/tmp/scgi;
  server { listen 127.0.0.1:$port; listen 127.0.0.2:$port; location / { return 200 "ok\n"; } }
  $tls
}
CONF
  nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
}
