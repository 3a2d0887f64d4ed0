"""The emitter's `/metrics`: vLLM 0.32's metric names, fed by what the emitter really did.

- `vllm:num_requests_waiting`: streamed requests accepted that have not written a token yet
  (in a capacity run, also those waiting for a slot); `vllm:num_requests_running`: streams
  writing tokens;
- `vllm:prompt_tokens_total` (the prompt's ids, 1 for a text prompt, as its usage says),
  `vllm:generation_tokens_total` (every token written, counted as its event is written);
- `vllm:time_to_first_token_seconds`: first write minus the request's arrival, in vLLM's
  buckets;
- `vllm:kv_cache_usage_perc`: the share of a nominal cache of KV_CACHE_TOKENS that the open
  streams' prompt and output tokens would hold. The emitter keeps no cache; this is the
  occupancy a server holding those sequences would report.

The emitter counts no preemptions, prefix cache or queue and inter-token histograms: a client
must get by without what a server does not expose.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# vLLM 0.32's buckets for time to first token.
TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                  5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
KV_CACHE_TOKENS = 524_288
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EmitterMetrics:
    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        common = {"labelnames": ("model_name", "engine"), "registry": self.registry}
        labels = (model, "0")
        self.running = Gauge("vllm:num_requests_running", "streams writing tokens",
                             **common).labels(*labels)
        self.waiting = Gauge("vllm:num_requests_waiting", "accepted, no token written yet",
                             **common).labels(*labels)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "share of a nominal KV cache held",
                        **common).labels(*labels)
        self.prompt = Counter("vllm:prompt_tokens", "prompt tokens accepted",
                              **common).labels(*labels)
        self.generated = Counter("vllm:generation_tokens", "output tokens written",
                                 **common).labels(*labels)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "first write - arrival",
                              buckets=TTFT_BUCKETS_S, **common).labels(*labels)
        self._open: dict[int, _OpenStream] = {}
        # Counted per event as plain ints and handed to prometheus_client (whose every update
        # takes a lock) only when scraped: an engine step writes an event per stream.
        self._held = 0
        self._generated = 0
        self._generated_exported = 0

    def accepted(self, number: int, arrival_ns: int, prompt_tokens: int, output_tokens: int,
                 tokens_per_event: int) -> None:
        self._open[number] = _OpenStream(arrival_ns, output_tokens, tokens_per_event,
                                         prompt_tokens)
        self.prompt.inc(prompt_tokens)
        self.waiting.inc()
        self._held += prompt_tokens

    def wrote(self, number: int, start: int, end: int, stamp_ns: int) -> None:
        """Events [start, end) of request `number` went out at stamp_ns."""
        stream = self._open.get(number)
        if stream is None:
            return
        total, step = stream.output_tokens, stream.tokens_per_event
        tokens = min(end * step, total) - min(start * step, total)
        self._generated += tokens
        stream.held += tokens
        self._held += tokens
        if not stream.writing:
            stream.writing = True
            self.ttft.observe((stamp_ns - stream.arrival_ns) / 1e9)
            self.waiting.dec()
            self.running.inc()
        if end * step >= total:
            self.dropped(number)

    def dropped(self, number: int) -> None:
        """The stream ended: its last event went out, or its client went away first."""
        stream = self._open.pop(number, None)
        if stream is not None:
            (self.running if stream.writing else self.waiting).dec()
            self._held -= stream.held

    def exposition(self) -> bytes:
        self.generated.inc(self._generated - self._generated_exported)
        self._generated_exported = self._generated
        self.kv.set(self._held / KV_CACHE_TOKENS)
        return generate_latest(self.registry)


class _OpenStream:
    __slots__ = ("arrival_ns", "output_tokens", "tokens_per_event", "held", "writing")

    def __init__(self, arrival_ns: int, output_tokens: int, tokens_per_event: int,
                 prompt_tokens: int) -> None:
        self.arrival_ns = arrival_ns
        self.output_tokens = output_tokens
        self.tokens_per_event = tokens_per_event
        self.held = prompt_tokens  # the prompt's and the written tokens: what a cache would hold
        self.writing = False
