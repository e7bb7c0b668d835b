#!/usr/bin/env bash
# Start the local Postgres and RabbitMQ when they are not running, and wait until they answer.
# On a machine without them installed, point DF_DATABASE_URL / DF_AMQP_URL elsewhere
# (e.g. `docker compose up -d postgres rabbitmq`) and this script only checks they answer.
set -euo pipefail

pg_host=127.0.0.1
pg_port=5432
amqp_port=5672

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A broker can accept TCP connections and still never answer (seen after heavy quorum-queue
# churn): send the AMQP protocol header and expect the first byte of a Connection.Start frame.
amqp_answers() {
    local first
    first=$(
        exec 3<>"/dev/tcp/127.0.0.1/$amqp_port" || exit 1
        printf 'AMQP\x00\x00\x09\x01' >&3
        timeout 5 head -c 1 <&3 | od -An -tx1 | tr -d ' \n'
    ) 2>/dev/null
    [ "$first" = "01" ]
}

wait_for_amqp() {  # seconds
    local deadline=$((SECONDS + $1))
    until amqp_answers; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

wait_for() {  # name host port seconds
    local deadline=$((SECONDS + $4))
    until port_open "$2" "$3"; do
        if ((SECONDS >= deadline)); then
            echo "ensure-services: $1 is not answering on $2:$3" >&2
            return 1
        fi
        sleep 0.5
    done
}

if ! port_open "$pg_host" "$pg_port"; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "ensure-services: starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    fi
fi
wait_for PostgreSQL "$pg_host" "$pg_port" 60
if command -v pg_isready >/dev/null 2>&1; then
    deadline=$((SECONDS + 60))
    until pg_isready -q -h "$pg_host" -p "$pg_port"; do
        ((SECONDS < deadline)) || { echo "ensure-services: PostgreSQL not ready" >&2; exit 1; }
        sleep 0.5
    done
fi

if ! port_open 127.0.0.1 "$amqp_port"; then
    if command -v rabbitmq-server >/dev/null 2>&1; then
        echo "ensure-services: starting RabbitMQ"
        rabbitmq-server -detached
    fi
fi
wait_for RabbitMQ 127.0.0.1 "$amqp_port" 120
if ! wait_for_amqp 60; then
    # Never killed from here: this script cannot tell whether it started that broker, and a
    # broker that is slow to answer may be one somebody else is using.
    cat >&2 <<EOM
ensure-services: RabbitMQ accepts connections on 127.0.0.1:$amqp_port but does not answer AMQP
after 60 s. It is running but wedged (seen after heavy quorum-queue churn) or still starting.
  Look:     rabbitmq-diagnostics -q status; rabbitmqctl -q list_queues name | wc -l
  Restart:  rabbitmqctl stop && rabbitmq-server -detached   (if it is yours to restart)
Then run this command again.
EOM
    exit 1
fi
echo "ensure-services: PostgreSQL and RabbitMQ are up"
