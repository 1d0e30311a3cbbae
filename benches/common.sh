# Sourced by the benchmarks, from the repository's root.
#
# `bench_setup`: a temporary $work directory and a $pids list, both cleaned
# up on exit (the processes in $pids killed, an nginx started under $work
# stopped). `free_port`: a free TCP port on 127.0.0.1. `start_nginx WORK
# PORT` serves "ok" on 127.0.0.1:PORT and 127.0.0.2:PORT from a config kept
# under WORK/nginx.

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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_nginx() {
  local work=$1 port=$2
  mkdir -p "$work/nginx/tmp"
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
}
CONF
  nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
}
