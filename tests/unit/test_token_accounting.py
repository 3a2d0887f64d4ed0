"""Which source each token figure used, and how far the sources disagreed."""

from array import array

from client_sut.analysis.token_accounting import token_accounting
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource


def record(ids: int, usage: int | None, source: TokenIdSource, failed: bool = False):
    return RequestRecord(
        sample_index=0, endpoint="http://e", issue_ns=0, send_ns=0, first_byte_ns=1, end_ns=2,
        event_ns=array("q"), event_tokens=array("i"), token_ids=array("i", range(ids)),
        token_id_source=source, server_completion_tokens=usage, finish_reason="length",
        http_status=200, error=RequestError(ErrorKind.TRUNCATED, "x") if failed else None)


def test_each_figures_source_and_every_disagreement_between_sources():
    records = [record(128, 128, TokenIdSource.SERVER), record(128, 128, TokenIdSource.SERVER),
               record(130, 128, TokenIdSource.RETOKENIZED),  # re-tokenized text runs longer
               record(135, 128, TokenIdSource.RETOKENIZED), record(7, None, TokenIdSource.SERVER),
               # llama.cpp's ids fell short of its count: the whole text, re-tokenized
               record(129, 128, TokenIdSource.IDS_MISSING),
               # its ids fell short, and those left out were recovered from the text's bytes
               record(128, 128, TokenIdSource.RECOVERED),
               record(3, 9, TokenIdSource.SERVER, failed=True)]  # a failed one is not counted
    accounting = token_accounting(records)
    assert accounting["requests"] == {"with_usage": 6, "with_server_ids": 3,
                                      "server_ids_recovered": 1, "reference_tokenizer": 3,
                                      "server_ids_incomplete": 1}
    assert accounting["disagreements"]["usage_vs_server_ids"] == {
        "compared": 3, "disagreed": 0, "max_difference": 0, "total_difference": 0}
    assert accounting["disagreements"]["usage_vs_reference_tokenizer"] == {
        "compared": 3, "disagreed": 3, "max_difference": 7, "total_difference": 10}
    assert accounting["output_tokens"] == ("the server's usage count (6 requests), else the "
                                           "count of its ids (1)")
    assert ("reference tokenizer over the whole text (3, of which 1 where the server's ids fell "
            "short of its count)") in accounting["accuracy_log_ids"]
