# Sourced by the server scripts (s3.sh, azurite.sh, gcs.sh): a server started in the
# background is known by its pid file, and stopped by it, never by a pattern.

# pid_running FILE: the process in FILE is alive.
pid_running() {
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# pid_stop FILE: stops the process in FILE (TERM, then KILL after 10 s) and removes FILE.
pid_stop() {
    if pid_running "$1"; then
        local pid
        pid="$(cat "$1")"
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}
