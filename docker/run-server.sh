#!/bin/sh
# Starts the launcher: one vLLM server per GPU (INSTANCES servers on a CPU profile) on
# consecutive ports from PORT. Once every one answers /health it writes their URLs, by the name
# clients reach this container by (ADVERTISE_HOST, default: the compose service name `server`),
# to ENDPOINTS_FILE, which the client reads from a shared volume.
set -eu
exec python3 -m server.launch --profile "${PROFILE:?set PROFILE}" --model "${MODEL:?set MODEL}" \
    ${GPUS:+--gpus "$GPUS"} --instances "${INSTANCES:-1}" --host 0.0.0.0 --port "${PORT:-8000}" \
    --log-dir /tmp/vllm-logs --endpoints-file "$ENDPOINTS_FILE" \
    --advertise-host "${ADVERTISE_HOST:-server}"
