"""Failed requests, said first: a run, a probe or a sweep point whose requests failed did not
measure the deployment it meant to, whatever LoadGen's verdict. Decided here once, for every
command and the report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from client_sut.records import ErrorKind, RequestRecord

# An interrupt's or an early stop's cancellations are the client's own doing: the notes say
# why the run ended, not that the server failed them.
_OWN_DOING = ErrorKind.CANCELLED.value


def error_examples(records: Sequence[RequestRecord]) -> dict[str, str]:
    """Per error kind, its most common message: why the requests of that kind failed."""
    messages: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        if record.error is not None:
            messages[record.error.kind.value][record.error.message] += 1
    return {kind: counts.most_common(1)[0][0] for kind, counts in sorted(messages.items())}


def failed_by_kind(client: dict) -> dict[str, int]:
    """results.json's `client.errors_by_kind` less the client's own cancellations: the requests
    the deployment failed."""
    return {kind: count for kind, count in client.get("errors_by_kind", {}).items()
            if kind != _OWN_DOING}


def failed_requests(client: dict, endpoints: Sequence[dict] = ()) -> str | None:
    """"12,598 of 13,600 requests failed: connect (12,598: cannot connect to ...: [Errno 24]
    Too many open files)", from results.json's `client` and, where there are several, its
    `endpoints` (which failed how many); None when none failed."""
    by_kind = failed_by_kind(client)
    failed = sum(by_kind.values())
    if not failed:
        return None
    examples = client.get("error_examples", {})
    kinds = "; ".join(f"{kind} ({count:,}" + (f": {examples[kind]}" if kind in examples else "")
                      + ")" for kind, count in sorted(by_kind.items(), key=lambda kc: -kc[1]))
    where = [f"{e['url']} {e['errors']:,}" for e in endpoints if e.get("errors")]
    on = f" (on {', '.join(where)})" if len(endpoints) > 1 and where else ""
    return f"{failed:,} of {client['requests']:,} requests failed{on}: {kinds}"
