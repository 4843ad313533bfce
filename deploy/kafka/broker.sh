#!/usr/bin/env bash
# Single-node Apache Kafka broker (KRaft, combined broker+controller) for development and CI.
#
#   broker.sh resolve          fetch the broker jars into deploy/kafka/lib/ (Maven; once)
#   broker.sh start  [NAME]    fresh run dir run/NAME/, format, start, wait; prints bootstrap
#   broker.sh start  NAME --brokers N
#                              a KRaft cluster of N nodes (each broker+controller, run dirs
#                              run/NAME.1 ... run/NAME.N), topics at replication min(3, N)
#                              and min.insync.replicas 2; prints every node's address,
#                              comma-separated.  stop/status/restart/clean NAME act on every
#                              node; NAME.K names node K alone (stop, restart, kill, status)
#   broker.sh kill   NAME.K    SIGKILL one node of a cluster (a crash, for tests)
#   broker.sh controller NAME  print K, the node of cluster NAME that is the active controller
#   broker.sh wait   [NAME]    wait until the broker answers metadata; prints bootstrap
#   broker.sh status [NAME]    exit 0 and print pid/bootstrap/RSS when running, 3 when not
#   broker.sh stop   [NAME]    SIGTERM its own pid (pid file), SIGKILL after a timeout
#   broker.sh restart [NAME]   start the stopped broker of run/NAME/ again, keeping its data,
#                              cluster id and ports (no reformat); prints bootstrap
#   broker.sh clean  [NAME]    remove run/NAME/ (refuses while running)
#
# NAME defaults to $KAFKA_NAME or "dev".  Only the bootstrap address (127.0.0.1:PORT) is
# written to stdout, as the last line; progress and timings go to stderr.
#
# Environment:
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT  fixed ports (default: free ports picked on 127.0.0.1)
#   KAFKA_HEAP_OPTS            default "-Xms256m -Xmx768m"
#   KAFKA_WAIT_TIMEOUT         seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT         seconds between SIGTERM and SIGKILL (default 20)
#   KAFKA_AUTO_CREATE_TOPICS   auto.create.topics.enable (default false)
#   KAFKA_OWNER_PID            stop the broker when this process exits (used by the tests)
#   PYTHON                     interpreter with aiokafka for the readiness check (python3)
#   MVN                        Maven command (mvn)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
RUN_ROOT="$HERE/run"
LIB_MARKER="$LIB/.resolved"
PYTHON="${PYTHON:-python3}"
MVN="${MVN:-mvn}"
WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"
read -r -a HEAP_OPTS <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

valid_name() {
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "invalid run name '$1' (use [A-Za-z0-9._-])"
}

# ---------------------------------------------------------------------------------- jars
# lib/.resolved records the sha256 of pom.xml it was resolved from: Maven runs only when
# lib/ is missing or pom.xml changed (then the old jars are removed first, so two Kafka
# versions never share the classpath).
pom_hash() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

jars_current() {
    [[ -f "$LIB_MARKER" ]] && [[ "$(head -n 1 "$LIB_MARKER")" == "pom-sha256 $(pom_hash)" ]] \
        && compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null
}

resolve_jars() {
    jars_current && return 0
    command -v "$MVN" >/dev/null || die "Maven ($MVN) not found; needed once to fetch the jars"
    command -v java >/dev/null || die "java not found (Java 17+ required)"
    mkdir -p "$LIB"
    # One resolver at a time (parallel CI jobs or test sessions sharing the work tree).
    exec 8>"$LIB/.lock"
    flock 8
    if ! jars_current; then
        local t0
        t0="$(now)"
        log "resolving broker jars into $LIB (Maven) ..."
        rm -f "$LIB_MARKER" "$LIB"/*.jar
        # Offline first: succeeds without network when ~/.m2 already holds the artifacts.
        if ! "$MVN" -q -B -o -f "$HERE/pom.xml" package >"$LIB/.mvn.log" 2>&1; then
            "$MVN" -q -B -f "$HERE/pom.xml" package >"$LIB/.mvn.log" 2>&1 \
                || { cat "$LIB/.mvn.log" >&2; die "Maven could not resolve the jars"; }
        fi
        compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar in $LIB"
        { printf 'pom-sha256 %s\n' "$(pom_hash)"; (cd "$LIB" && ls -- *.jar); } >"$LIB_MARKER"
        log "jars resolved in $(elapsed "$t0")s ($(find "$LIB" -name '*.jar' | wc -l) jars, $(du -sh "$LIB" | cut -f1))"
    fi
    flock -u 8
    exec 8>&-
}

# -------------------------------------------------------------------------------- helpers
free_port() {
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

port_in_use() {
    "$PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)' "$1"
}

# Kafka's Uuid: 16 random bytes, URL-safe base64 without padding, not starting with "-".
random_cluster_id() {
    "$PYTHON" -c 'import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-") and u != "AAAAAAAAAAAAAAAAAAAAAA" and u != "AAAAAAAAAAAAAAAAAAAAAQ":
        print(u)
        break'
}

# Is PID the broker of run dir $2?  Guards against pid reuse and foreign processes.
is_our_broker() {
    local pid="$1" dir="$2" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"kafka.Kafka $dir/server.properties"* ]] || return 1
    [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]]
}

running_pid() {  # prints the pid of the broker of run dir $1, or fails
    local dir="$1" pid
    [[ -f "$dir/broker.pid" ]] || return 1
    pid="$(<"$dir/broker.pid")"
    is_our_broker "$pid" "$dir" || return 1
    printf '%s\n' "$pid"
}

rss_mb() {
    awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || printf '?'
}

# write_properties DIR PORT CPORT [NODE_ID VOTERS REPLICATION MIN_ISR]: one node's
# server.properties; the defaults describe a single node.
write_properties() {
    local dir="$1" port="$2" cport="$3" autocreate="${KAFKA_AUTO_CREATE_TOPICS:-false}"
    local node="${4:-1}" voters="${5:-1@127.0.0.1:$3}" rf="${6:-1}" isr="${7:-1}"
    cat >"$dir/server.properties" <<EOF
# Generated by deploy/kafka/broker.sh -- KRaft node $node for development and CI.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

# Replication: one node has replication factor 1 and min ISR 1 everywhere (the defaults of
# 3/2 make consumer groups and transactions hang there); a cluster has min(3, nodes) and 2,
# so one node can die without losing an acknowledged write or stopping writes. Internal
# topics have one partition (fast first use).
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
share.coordinator.state.topic.num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
num.partitions=1

# Topics are created explicitly (admin client / faust declarations), as in production;
# a typo in a topic name fails instead of silently creating a new topic.
auto.create.topics.enable=$autocreate

# Tests: no 3 s wait for each new group, short session timeouts allowed.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000

# The cleaner's dedupe buffer comes out of the heap at start (default 128 MiB).
log.cleaner.dedupe.buffer.size=16777216

# Two cores: fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF
}

# -------------------------------------------------------------------------------- start
# Starts the JVM; sets STARTED_PID.  Returns 0 when ready, 2 when the process exited.
launch() {
    local dir="$1" name="$2" port="$3" cport="$4"
    rm -rf "$dir"
    mkdir -p "$dir/data" "$dir/logs"
    write_properties "$dir" "$port" "$cport"
    format_dir "$dir" "$(random_cluster_id)"
    run_jvm "$dir" "$name" "$port"
}

format_dir() {  # format_dir DIR CLUSTER_ID: a fresh data dir for the node of DIR
    local dir="$1" cluster_id="$2" t0
    t0="$(now)"
    printf '%s\n' "$cluster_id" >"$dir/cluster.id"
    java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
        -cp "$LIB/*" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$dir/server.properties" \
        >"$dir/logs/format.out" 2>&1 || { cat "$dir/logs/format.out" >&2; die "format failed"; }
    log "formatted $dir/data (cluster $cluster_id) in $(elapsed "$t0")s"
}

# Starts the JVM of an already formatted run dir; sets STARTED_PID.  0 ready, 2 exited.
run_jvm() {
    local dir="$1" name="$2" port="$3"
    spawn_jvm "$dir" "$name" "$port"
    await_ready "$dir" "$port" "$STARTED_PID"
}

# Starts the JVM without waiting for it; sets STARTED_PID.
spawn_jvm() {
    local dir="$1" name="$2" port="$3"
    # setsid: the broker does not share the caller's process group (a Ctrl-C in the
    # terminal does not kill it behind the pid file's back); stop it with `broker.sh stop`.
    setsid java "${HEAP_OPTS[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
        -Dnewswatch.kafka.run="$name" \
        -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >"$dir/logs/broker.out" 2>&1 &
    STARTED_PID=$!
    printf '%s\n' "$STARTED_PID" >"$dir/broker.pid"
    printf '127.0.0.1:%s\n' "$port" >"$dir/bootstrap.pending"
    log "started pid $STARTED_PID (heap ${HEAP_OPTS[*]}), logs in $dir/logs/"
}

# Waits until the node of DIR (client PORT, process PID) answers metadata and sees BROKERS
# brokers (default 1).  0 ready, 1 not in time, 2 the process exited.
await_ready() {
    local dir="$1" port="$2" pid="$3" brokers="${4:-1}" t0 rc=0
    t0="$(now)"
    "$PYTHON" "$HERE/kafka_ready.py" "127.0.0.1:$port" --pid "$pid" --brokers "$brokers" \
        --timeout "$WAIT_TIMEOUT" || rc=$?
    if [[ $rc -eq 0 ]]; then
        mv "$dir/bootstrap.pending" "$dir/bootstrap"
        log "ready in $(elapsed "$t0")s; RSS $(rss_mb "$pid") MB"
        return 0
    fi
    return "$rc"
}

cmd_start() {
    local name="$1" dir="$RUN_ROOT/$1" port cport auto_ports=0 attempt rc pid
    if pid="$(running_pid "$dir")"; then
        die "broker '$name' already running (pid $pid, $(cat "$dir/bootstrap" 2>/dev/null || echo 'not ready')); run: $0 stop $name"
    fi
    command -v java >/dev/null || die "java not found (Java 17+ required)"
    "$PYTHON" -c 'import aiokafka' 2>/dev/null \
        || die "$PYTHON cannot import aiokafka (needed for the readiness check); set PYTHON"
    resolve_jars
    if [[ -z "${KAFKA_PORT:-}" || -z "${KAFKA_CONTROLLER_PORT:-}" ]]; then auto_ports=1; fi

    for attempt in 1 2 3; do
        port="${KAFKA_PORT:-$(free_port)}"
        cport="${KAFKA_CONTROLLER_PORT:-$(free_port)}"
        while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
        if port_in_use "$port"; then die "port $port (KAFKA_PORT) is in use"; fi
        if port_in_use "$cport"; then die "port $cport (KAFKA_CONTROLLER_PORT) is in use"; fi
        log "run dir $dir, client port $port, controller port $cport"

        rc=0
        launch "$dir" "$name" "$port" "$cport" || rc=$?
        if [[ $rc -eq 0 ]]; then
            if [[ -n "${KAFKA_OWNER_PID:-}" ]]; then
                setsid bash "$HERE/broker.sh" _watch "$name" "$STARTED_PID" "$KAFKA_OWNER_PID" \
                    </dev/null >>"$dir/logs/watch.log" 2>&1 &
            fi
            cat "$dir/bootstrap"
            return 0
        fi
        if [[ $rc -eq 2 ]]; then
            # The JVM exited.  A port taken between picking and binding is retried.
            if [[ $auto_ports -eq 1 ]] \
                && grep -qs 'BindException\|Address already in use' "$dir/logs/server.log" "$dir/logs/broker.out" \
                && [[ $attempt -lt 3 ]]; then
                log "port race lost; retrying with new ports"
                continue
            fi
            tail -n 40 "$dir/logs/broker.out" "$dir/logs/server.log" >&2 2>/dev/null || true
            rm -f "$dir/broker.pid"
            die "broker exited during start-up; see $dir/logs/"
        fi
        tail -n 40 "$dir/logs/server.log" >&2 2>/dev/null || true
        stop_dir "$dir"
        die "broker not ready after ${WAIT_TIMEOUT}s; see $dir/logs/"
    done
}

# ------------------------------------------------------------------------------ cluster
cluster_size() {  # prints N when NAME is a cluster started with --brokers N, else fails
    [[ -f "$RUN_ROOT/$1.cluster" ]] && cat "$RUN_ROOT/$1.cluster"
}

distinct_ports() {  # distinct_ports COUNT: COUNT free, pairwise different ports
    local -A taken=()
    local port
    while (( ${#taken[@]} < $1 )); do
        port="$(free_port)"
        taken[$port]=1
    done
    printf '%s\n' "${!taken[@]}"
}

cmd_start_cluster() {
    local name="$1" count="$2" k pid cluster_id rf isr voters="" addresses="" ports
    [[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--brokers takes a positive number, not '$count'"
    for (( k = 1; k <= count; k++ )); do
        if pid="$(running_pid "$RUN_ROOT/$name.$k")"; then
            die "node $name.$k already running (pid $pid); run: $0 stop $name"
        fi
    done
    command -v java >/dev/null || die "java not found (Java 17+ required)"
    "$PYTHON" -c 'import aiokafka' 2>/dev/null \
        || die "$PYTHON cannot import aiokafka (needed for the readiness check); set PYTHON"
    resolve_jars
    rf=$(( count < 3 ? count : 3 ))
    isr=$(( rf < 2 ? 1 : 2 ))
    mapfile -t ports < <(distinct_ports $(( 2 * count )))
    for (( k = 1; k <= count; k++ )); do
        voters+="${voters:+,}$k@127.0.0.1:${ports[count + k - 1]}"
    done
    cluster_id="$(random_cluster_id)"
    mkdir -p "$RUN_ROOT"
    printf '%s\n' "$count" >"$RUN_ROOT/$name.cluster"
    for (( k = 1; k <= count; k++ )); do
        local dir="$RUN_ROOT/$name.$k"
        rm -rf "$dir"
        mkdir -p "$dir/data" "$dir/logs"
        write_properties "$dir" "${ports[k - 1]}" "${ports[count + k - 1]}" "$k" "$voters" \
            "$rf" "$isr"
        format_dir "$dir" "$cluster_id"
    done
    log "cluster $name: $count nodes, replication $rf, min.insync.replicas $isr"
    # All nodes first: none answers metadata before a majority of the controllers is up.
    local -a pids=()
    for (( k = 1; k <= count; k++ )); do
        spawn_jvm "$RUN_ROOT/$name.$k" "$name.$k" "${ports[k - 1]}"
        pids[k]=$STARTED_PID
    done
    for (( k = 1; k <= count; k++ )); do
        if ! await_ready "$RUN_ROOT/$name.$k" "${ports[k - 1]}" "${pids[k]}" "$count"; then
            tail -n 40 "$RUN_ROOT/$name.$k/logs/server.log" >&2 2>/dev/null || true
            cmd_stop "$name"
            die "node $name.$k not ready; see $RUN_ROOT/$name.$k/logs/"
        fi
        addresses+="${addresses:+,}127.0.0.1:${ports[k - 1]}"
        if [[ -n "${KAFKA_OWNER_PID:-}" ]]; then
            setsid bash "$HERE/broker.sh" _watch "$name.$k" "${pids[k]}" "$KAFKA_OWNER_PID" \
                </dev/null >>"$RUN_ROOT/$name.$k/logs/watch.log" 2>&1 &
        fi
    done
    printf '%s\n' "$addresses"
}

restart_cluster() {  # every stopped node of cluster NAME again, data kept; prints addresses
    local name="$1" count="$2" k port addresses=""
    local -a pids=() ports=()
    for (( k = 1; k <= count; k++ )); do
        local dir="$RUN_ROOT/$name.$k"
        ports[k]="$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$dir/server.properties")"
        if pids[k]="$(running_pid "$dir")"; then continue; fi
        spawn_jvm "$dir" "$name.$k" "${ports[k]}"
        pids[k]=$STARTED_PID
    done
    for (( k = 1; k <= count; k++ )); do
        local dir="$RUN_ROOT/$name.$k"
        if [[ -f "$dir/bootstrap.pending" ]]; then
            await_ready "$dir" "${ports[k]}" "${pids[k]}" "$count" \
                || die "node $name.$k did not come back; see $dir/logs/"
        fi
        addresses+="${addresses:+,}127.0.0.1:${ports[k]}"
    done
    printf '%s\n' "$addresses"
}

cmd_controller() {  # the leader of the highest quorum epoch any running node has recorded
    local name="$1" count k best_epoch=-1 best="" state epoch leader
    count="$(cluster_size "$name")" || die "'$name' is not a cluster (start NAME --brokers N)"
    for (( k = 1; k <= count; k++ )); do
        running_pid "$RUN_ROOT/$name.$k" >/dev/null || continue
        state="$RUN_ROOT/$name.$k/data/__cluster_metadata-0/quorum-state"
        [[ -f "$state" ]] || continue
        epoch="$(sed -n 's/.*"leaderEpoch":\([0-9-]*\).*/\1/p' "$state")"
        leader="$(sed -n 's/.*"leaderId":\([0-9-]*\).*/\1/p' "$state")"
        if [[ -n "$epoch" && "$leader" =~ ^[0-9]+$ ]] && (( epoch > best_epoch )); then
            best_epoch=$epoch
            best=$leader
        fi
    done
    [[ -n "$best" ]] || die "no running node of '$name' knows a controller yet"
    printf '%s\n' "$best"
}

cmd_kill() {  # SIGKILL one node, as a crash would: no controlled shutdown, data kept
    local name="$1" dir="$RUN_ROOT/$1" pid
    pid="$(running_pid "$dir")" || die "broker '$name' is not running"
    kill -KILL "$pid"
    while is_our_broker "$pid" "$dir"; do sleep 0.1; done
    rm -f "$dir/broker.pid" "$dir/bootstrap"
    log "killed pid $pid ($name)"
}

cmd_restart() {
    local name="$1" dir="$RUN_ROOT/$1" port pid rc=0 count
    if count="$(cluster_size "$name")"; then
        restart_cluster "$name" "$count"
        return
    fi
    if pid="$(running_pid "$dir")"; then
        die "broker '$name' already running (pid $pid); run: $0 stop $name"
    fi
    [[ -f "$dir/server.properties" && -f "$dir/data/meta.properties" ]] \
        || die "no formatted run dir $dir; use: $0 start $name"
    port="$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$dir/server.properties")"
    [[ -n "$port" ]] || die "no client port in $dir/server.properties"
    if port_in_use "$port"; then die "port $port is in use"; fi
    log "restarting run dir $dir (data kept), client port $port"
    run_jvm "$dir" "$name" "$port" || rc=$?
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$dir/logs/broker.out" "$dir/logs/server.log" >&2 2>/dev/null || true
        stop_dir "$dir" || rm -f "$dir/broker.pid"
        die "broker did not come back; see $dir/logs/"
    fi
    if [[ -n "${KAFKA_OWNER_PID:-}" ]]; then
        setsid bash "$HERE/broker.sh" _watch "$name" "$STARTED_PID" "$KAFKA_OWNER_PID" \
            </dev/null >>"$dir/logs/watch.log" 2>&1 &
    fi
    cat "$dir/bootstrap"
}

# ------------------------------------------------------------------------- stop / status
stop_dir() {  # stop the broker of run dir $1, if any; only ever the pid in its pid file
    local dir="$1" pid t0 waited=0
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/broker.pid"
        return 1
    fi
    t0="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    while is_our_broker "$pid" "$dir"; do
        if (( waited >= STOP_TIMEOUT * 10 )); then
            log "pid $pid still running after ${STOP_TIMEOUT}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$dir/broker.pid" "$dir/bootstrap"
    log "stopped pid $pid in $(elapsed "$t0")s"
}

cmd_stop() {
    local name="$1" count k
    if count="$(cluster_size "$name")"; then
        # all at once: a node stopped last would wait for a controller quorum that is gone
        for (( k = 1; k <= count; k++ )); do
            stop_dir "$RUN_ROOT/$name.$k" || log "node '$name.$k' is not running" &
        done
        wait
        return 0
    fi
    stop_dir "$RUN_ROOT/$name" || log "broker '$name' is not running"
}

cmd_status() {
    local name="$1" dir="$RUN_ROOT/$1" pid count k rc=0
    if count="$(cluster_size "$name")"; then
        for (( k = 1; k <= count; k++ )); do cmd_status "$name.$k" || rc=3; done
        return "$rc"
    fi
    if pid="$(running_pid "$dir")"; then
        printf 'running: name=%s pid=%s rss=%sMB bootstrap=%s\n' "$name" "$pid" "$(rss_mb "$pid")" \
            "$(cat "$dir/bootstrap" 2>/dev/null || echo 'starting')"
        return 0
    fi
    printf 'stopped: name=%s\n' "$name"
    return 3
}

cmd_wait() {
    local name="$1" dir="$RUN_ROOT/$1" pid bootstrap
    pid="$(running_pid "$dir")" || die "broker '$name' is not running"
    bootstrap="$(cat "$dir/bootstrap" 2>/dev/null || cat "$dir/bootstrap.pending")"
    "$PYTHON" "$HERE/kafka_ready.py" "$bootstrap" --pid "$pid" --timeout "$WAIT_TIMEOUT" \
        || die "broker '$name' not ready"
    printf '%s\n' "$bootstrap"
}

cmd_clean() {
    local name="$1" dir="$RUN_ROOT/$1" pid count k
    if count="$(cluster_size "$name")"; then
        for (( k = 1; k <= count; k++ )); do cmd_clean "$name.$k"; done
        rm -f "$RUN_ROOT/$name.cluster"
        return 0
    fi
    if pid="$(running_pid "$dir")"; then die "broker '$name' is running (pid $pid); stop it first"; fi
    rm -rf "$dir"
}

# Watchdog started by `start` when KAFKA_OWNER_PID is set: stops the broker once the owner
# (e.g. a pytest session killed before its teardown ran) is gone.
cmd_watch() {
    local name="$1" pid="$2" owner="$3" dir="$RUN_ROOT/$1"
    trap '' HUP INT
    while kill -0 "$owner" 2>/dev/null && is_our_broker "$pid" "$dir"; do sleep 2; done
    if is_our_broker "$pid" "$dir"; then
        log "owner pid $owner is gone; stopping broker '$name'"
        stop_dir "$dir" || true
    fi
}

# --------------------------------------------------------------------------------- main
usage() { sed -n '2,/^set -e/p' "$HERE/broker.sh" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

main() {
    local cmd="${1:-}" name brokers=1
    [[ $# -gt 0 ]] && shift
    if [[ "${1:-}" != --* ]]; then name="${1:-${KAFKA_NAME:-dev}}"; shift || true
    else name="${KAFKA_NAME:-dev}"; fi
    if [[ "$cmd" == start && "${1:-}" == --brokers ]]; then brokers="${2:-}"; fi
    case "$cmd" in
        resolve) resolve_jars; log "jars in $LIB" ;;
        start) valid_name "$name"
               if [[ "$brokers" == 1 ]]; then cmd_start "$name"
               else cmd_start_cluster "$name" "$brokers"; fi ;;
        kill) valid_name "$name"; cmd_kill "$name" ;;
        controller) valid_name "$name"; cmd_controller "$name" ;;
        stop) valid_name "$name"; cmd_stop "$name" ;;
        restart) valid_name "$name"; cmd_restart "$name" ;;
        status) valid_name "$name"; cmd_status "$name" ;;
        wait) valid_name "$name"; cmd_wait "$name" ;;
        clean) valid_name "$name"; cmd_clean "$name" ;;
        _watch) cmd_watch "$@" ;;
        *) usage ;;
    esac
}

main "$@"
