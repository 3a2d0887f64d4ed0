#!/bin/sh
# Runs each scenario in $SCENARIOS against every URL in $ENDPOINTS, one `client-sut run` each,
# leaving the results in /results/<scenario>. Exits with the worst status of the runs.
set -eu

endpoint_flags=""
for url in ${ENDPOINTS:?set ENDPOINTS to one or more server URLs}; do
    endpoint_flags="$endpoint_flags --endpoint $url"
done

worst=0
for scenario in ${SCENARIOS:-Offline Server}; do
    out="/results/$(echo "$scenario" | tr '[:upper:]' '[:lower:]')"
    echo "client-sut: $scenario -> $out"
    status=0
    # shellcheck disable=SC2086  # the flag lists are meant to split into words
    client-sut run $endpoint_flags --dataset "${DATASET:?set DATASET}" --scenario "$scenario" \
        ${MODEL:+--model "$MODEL"} ${TARGET_QPS:+--target-qps "$TARGET_QPS"} \
        --output-dir "$out" ${EXTRA_ARGS:-} || status=$?
    [ "$status" -gt "$worst" ] && worst=$status
done
exit "$worst"
