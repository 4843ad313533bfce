#!/usr/bin/env bash
# Run a test file N times and print each run's figures (the lines the Kafka failure
# scenarios print with -s) and its outcome; the tally of failed runs comes last.
#   bash bench/repeat.sh N tests/test_kafka_zombie.py [more pytest args]
# Needs a broker: NEWSWATCH_KAFKA_BOOTSTRAP=host:port (deploy/kafka/broker.sh start NAME).
set -u
runs=$1; shift
failed=0
for i in $(seq "$runs"); do
    out=$(python -m pytest -q -s -n 0 -p no:cacheprovider "$@" 2>&1)
    status=$?
    figures=$(printf '%s\n' "$out" | grep -E "lost [0-9]+ of|re-drives|duplicated" | tr '\n' ' ')
    result=$(printf '%s\n' "$out" | tail -1)
    echo "run $i: ${figures}| ${result}"
    [ $status -eq 0 ] || failed=$((failed + 1))
done
echo "$(date -u +%F) $(git rev-parse --short HEAD): $failed of $runs run(s) failed: $*"
