#!/bin/sh
# Runs each scenario in $SCENARIOS against the servers, one `client-sut run` each, leaving the
# results in /results/<scenario>; exits with the worst status of the runs. The servers: the URLs
# in $ENDPOINTS (dns+http://NAME:PORT for every address of NAME) and those listed in
# $ENDPOINTS_FILE (written by the server container's launcher). With $EXPECT_ENDPOINTS it first
# waits (up to $WAIT_S seconds) until that many servers are found and answer /health.
set -eu

if [ "$(id -u)" = 0 ]; then
    # Docker creates a missing bind-mounted ./results as root: hand it to the benchmark user.
    # Then run as the folder's owner (the host user who made it), never as root.
    [ "$(stat -c %u /results)" = 0 ] && chown bench:bench /results
    exec setpriv --reuid="$(stat -c %u /results)" --regid="$(stat -c %g /results)" \
        --clear-groups "$0" "$@"
fi

endpoint_flags=""
for url in ${ENDPOINTS:-}; do
    endpoint_flags="$endpoint_flags --endpoint $url"
done
[ -n "${ENDPOINTS_FILE:-}" ] && endpoint_flags="$endpoint_flags --endpoints-file $ENDPOINTS_FILE"
[ -n "$endpoint_flags" ] || { echo "set ENDPOINTS or ENDPOINTS_FILE" >&2; exit 2; }

if [ -n "${EXPECT_ENDPOINTS:-}" ]; then
    # shellcheck disable=SC2086  # the flag lists are meant to split into words
    client-sut endpoints $endpoint_flags --expect "$EXPECT_ENDPOINTS" --wait "${WAIT_S:-1800}"
fi

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
