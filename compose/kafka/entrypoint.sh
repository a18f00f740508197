#!/bin/sh
# Start the broker on KAFKA_HOST:KAFKA_PORT (controller on KAFKA_CONTROLLER_PORT), its log in
# /var/lib/kafka (a volume): formatted on the first start, kept on the next ones.
set -eu
host="${KAFKA_HOST:-127.0.0.1}"
port="${KAFKA_PORT:-9092}"
controller="${KAFKA_CONTROLLER_PORT:-9093}"
data=/var/lib/kafka
mkdir -p "$data/logs"
rm -f "$data/logs/server.log"  # the health check looks for this start's "Kafka Server started"
sed -e "s|\${host}|$host|g" -e "s|\${port}|$port|g" \
    -e "s|\${controller_port}|$controller|g" -e "s|\${data_dir}|$data/kraft|g" \
    /opt/kafka/server.properties > "$data/server.properties"
heap="${KAFKA_HEAP:-512m}"
opts="-Xms$heap -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dkafka.logs.dir=$data/logs -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties"
if [ ! -f "$data/kraft/meta.properties" ]; then
  # shellcheck disable=SC2086  # $opts holds several options
  cluster=$(java $opts -cp '/opt/kafka/lib/*' kafka.tools.StorageTool random-uuid | tail -n 1)
  # shellcheck disable=SC2086
  java $opts -cp '/opt/kafka/lib/*' kafka.tools.StorageTool format -g -t "$cluster" \
    -c "$data/server.properties" >/dev/null
fi
# shellcheck disable=SC2086
exec java $opts -cp '/opt/kafka/lib/*' kafka.Kafka "$data/server.properties"
