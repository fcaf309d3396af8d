# Shell helpers for the bench scripts (sourced, not run). Needs bash and python3.

# A free TCP port on loopback (the kernel picks it; a race with another process is possible
# but harmless here: the server that then fails to bind makes the script fail loudly).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Installs the Debian packages a bench needs where a command is missing: as root through
# apt-get (like scripts/test does for its servers), otherwise it says what to install.
# Usage: ensure_commands command=package ...
ensure_commands() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || need+=("${pair#*=}")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need[*]}" >&2
        apt-get update -qq
        # policy-rc.d (containers) or systemd may start the packaged nginx/redis: we never
        # use those, every server here is started on its own ports.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
        exit 2
    fi
}

# Builds the release binary when it is missing or older than any source, manifest or lock
# file: a benchmark of a stale binary measures yesterday's code.
ensure_release_build() {
    local bin=$1
    # Only what goes into the binary: library and binary sources, manifests, the lock file
    # (tests and benches do not). When cargo finds nothing to do the binary keeps its date,
    # and the next run asks cargo again, which costs a second.
    if [ ! -x "$bin" ] || [ -n "$(find crates Cargo.toml Cargo.lock -newer "$bin" -type f \
            \( -path '*/src/*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit)" ]; then
        echo "building $bin (cargo build --release)" >&2
        cargo build --release -p palisade >&2
    fi
}

# Waits (up to 10 s) until URL answers with any HTTP status. Extra args go to curl.
wait_http() {
    local url=$1; shift
    for _ in $(seq 100); do
        curl -sk -o /dev/null "$@" "$url" && return 0
        sleep 0.1
    done
    echo "$url never answered" >&2
    return 1
}

# User and system CPU time (clock ticks) of PIDs, summed: prints `user system`.
# /proc/PID/stat counts every thread of the process; fields 14 and 15 after the `(comm)`
# (which may hold spaces) are utime, stime.
cpu_ticks() {
    local user=0 system=0 pid stat rest
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat") || continue
        rest=${stat##*) }
        read -r -a f <<< "$rest"
        # `rest` starts at field 3 (state): utime is field 14, stime 15.
        user=$((user + f[11])); system=$((system + f[12]))
    done
    echo "$user $system"
}

# Busy clock ticks of the whole machine (every process, interrupts included): the first
# line of /proc/stat minus idle and iowait.
machine_busy_ticks() {
    local label user nice system idle iowait irq softirq steal rest
    read -r label user nice system idle iowait irq softirq steal rest < /proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# Sum over PIDs of one /proc/PID/status field in KiB (VmRSS, VmHWM, ...).
status_kib() {
    local field=$1 total=0 pid value; shift
    for pid in "$@"; do
        value=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${value:-0}))
    done
    echo "$total"
}

# An nginx master and its workers (the processes doing nginx's work).
nginx_pids() {
    local master
    master=$(cat "$1")
    echo "$master" $(ps -o pid= --ppid "$master")
}

# Open file descriptors of PIDs (sockets included): how many connections a server holds.
fd_count() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(ls "/proc/$pid/fd" 2>/dev/null | wc -l)))
    done
    echo "$total"
}

# Starts the upstream every bench measures against: one nginx worker answering the same
# small JSON body to every request, on 127.0.0.1:PORT, its files in DIR (pid: DIR/upstream.pid).
# Usage: start_upstream DIR PORT
start_upstream() {
    local dir=$1 port=$2
    cat > "$dir/upstream.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $dir/upstream.pid;
error_log $dir/upstream-error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            default_type application/json;
            return 200 '{"id":"1","ownerId":"bench","item":"book","quantity":1}';
        }
    }
}
NGINX
    nginx -c "$dir/upstream.conf" -p "$dir" -e "$dir/upstream-error.log"
    wait_http "http://127.0.0.1:$port/"
}
