#!/bin/sh
# The client container: runs the benchmark the way $MODE names against the servers, leaves every
# result under /results with one report.html beside them, and exits with the worst status of
# its runs.
#   MODE=performance  each scenario in $SCENARIOS: a performance run (/results/<scenario>)
#   MODE=accuracy     each scenario: an accuracy run, ROUGE judged (/results/<scenario>-accuracy)
#   MODE=full         each scenario: both, then the accuracy verdict of each
#   MODE=sla          the highest Server load within the SLA, confirmed (/results/sla)
#   MODE=submission   the MLPerf submission folder and MLCommons' checker's verdict
#                     (/results/submission; $SYSTEM_FILE and $CHECKER mounted in)
# SAMPLES=N makes every run short (N samples, N queries; the runs say they are not compliant).
# The servers: the URLs in $ENDPOINTS (dns+http://NAME:PORT for every address of NAME) and those
# listed in $ENDPOINTS_FILE (written by the server container's launcher; several, space-separated,
# one per server container). With
# $EXPECT_ENDPOINTS it first waits (up to $WAIT_S seconds) until that many servers answer.
set -eu

if [ "$(id -u)" = 0 ]; then
    # Docker creates a missing bind-mounted ./results as root: hand it to the benchmark user.
    # Then run as the folder's owner (the host user who made it), never as root.
    [ "$(stat -c %u /results)" = 0 ] && chown bench:bench /results
    exec setpriv --reuid="$(stat -c %u /results)" --regid="$(stat -c %g /results)" \
        --clear-groups "$0" "$@"
fi

mode=${MODE:-performance}
case "$mode" in
    performance|accuracy|full|sla|submission) ;;
    *) echo "MODE=$mode: choose performance, accuracy, full, sla or submission" >&2; exit 2 ;;
esac

endpoint_flags=""
for url in ${ENDPOINTS:-}; do
    endpoint_flags="$endpoint_flags --endpoint $url"
done
for file in ${ENDPOINTS_FILE:-}; do  # one per server container's launcher
    endpoint_flags="$endpoint_flags --endpoints-file $file"
done
[ -n "$endpoint_flags" ] || { echo "set ENDPOINTS or ENDPOINTS_FILE" >&2; exit 2; }

if [ -n "${EXPECT_ENDPOINTS:-}" ]; then
    # shellcheck disable=SC2086  # the flag lists are meant to split into words
    client-sut endpoints $endpoint_flags --expect "$EXPECT_ENDPOINTS" --wait "${WAIT_S:-1800}"
fi

# What every run is given: the servers, the data, the model, and a short size with SAMPLES.
common="$endpoint_flags --dataset ${DATASET:?set DATASET}${MODEL:+ --model $MODEL}"
short=""
[ -n "${SAMPLES:-}" ] && short="--total-sample-count $SAMPLES --min-query-count $SAMPLES --duration 1"
worst=0
folders=""

keep() {  # keep() STATUS: the worst status so far
    [ "$1" -gt "$worst" ] && worst=$1
    return 0
}

run() {  # run SCENARIO KIND: one `client-sut run` into /results/<scenario>[-accuracy]
    out="/results/$(echo "$1" | tr '[:upper:]' '[:lower:]')"
    kind=""
    if [ "$2" = accuracy ]; then
        out="$out-accuracy"
        kind="--mode accuracy"
    fi
    echo "client-sut: $1 $2 -> $out"
    status=0
    # shellcheck disable=SC2086  # the flag lists are meant to split into words
    client-sut run $common --scenario "$1" $kind ${TARGET_QPS:+--target-qps "$TARGET_QPS"} \
        $short --output-dir "$out" --no-report ${EXTRA_ARGS:-} || status=$?
    keep "$status"
    folders="$folders $out"
}

verdict() {  # the accuracy verdict of a scenario's accuracy run, in one line
    python3 -c 'import json, sys
accuracy = json.load(open(sys.argv[2])).get("accuracy") or {}
print(sys.argv[1] + ": accuracy", "PASSED" if accuracy.get("passed") else "FAILED",
      "(rouge1 %s, %s samples)" % (accuracy.get("rouge1"), accuracy.get("gen_num")))' \
        "$1" "$2/results.json" || true
}

case "$mode" in
    performance|accuracy|full)
        for scenario in ${SCENARIOS:-Offline Server}; do
            [ "$mode" != accuracy ] && run "$scenario" performance
            [ "$mode" != performance ] && run "$scenario" accuracy
        done
        if [ "$mode" = full ]; then
            for scenario in ${SCENARIOS:-Offline Server}; do
                verdict "$scenario" "/results/$(echo "$scenario" | tr '[:upper:]' '[:lower:]')-accuracy"
            done
        fi
        ;;
    sla)
        status=0
        # shellcheck disable=SC2086  # the flag lists are meant to split into words
        client-sut sla $common ${SAMPLES:+--total-sample-count "$SAMPLES"} --output-dir /results/sla \
            --no-report ${SLA_ARGS:-} ${EXTRA_ARGS:-} || status=$?
        keep "$status"
        folders=/results/sla
        ;;
    submission)
        status=0
        scenario_flags=""
        for scenario in ${SCENARIOS:-Offline Server}; do
            scenario_flags="$scenario_flags --scenario $scenario"
        done
        # shellcheck disable=SC2086  # the flag lists are meant to split into words
        client-sut submission --system-file "${SYSTEM_FILE:?set SYSTEM_FILE}" \
            --checker "${CHECKER:?set CHECKER (a checkout of mlcommons/inference)}" \
            $scenario_flags --output-dir /results/submission \
            ${SAMPLES:+--skip-dataset-size-check} -- $common $short \
            ${EXTRA_ARGS:-} || status=$?
        keep "$status"
        folders=$(find /results/submission/runs -mindepth 2 -maxdepth 2 -name performance | sort)
        ;;
esac

if [ -n "$folders" ]; then
    # shellcheck disable=SC2086  # one folder a word
    client-sut report $folders --output-dir /results || keep 1
fi
echo "client-sut: MODE=$mode done, exit status $worst"
exit "$worst"
