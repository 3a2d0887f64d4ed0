"""The three dataset forms, the official prompt, and bad dataset input."""

import json
from pathlib import Path

import pytest

from client_sut.data.dataset import (
    PROMPT_TEMPLATE,
    Sample,
    build_prompt,
    load_samples,
    tokenize_prompts,
)
from client_sut.errors import UsageError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cnndm_validation_200.jsonl"


def test_prompt_is_the_official_one_byte_for_byte():
    assert build_prompt("A B.") == (
        "Summarize the following news article in 128 tokens. Please output the summary only, "
        "without any other text.\n\nArticle:\nA B.\n\nSummary:")
    assert PROMPT_TEMPLATE.count("{input}") == 1


def test_mlcommons_cnn_eval_json_keeps_tok_input(tmp_path):
    path = tmp_path / "cnn_eval.json"
    path.write_text(json.dumps([{"input": "art", "tok_input": [128000, 5, 6], "output": "ref"}]))
    assert load_samples(str(path)) == [Sample("art", "ref", (128000, 5, 6))]


def test_jsonl_with_article_and_highlights(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"article": "a1", "highlights": "h1"}\n\n{"article": "a2", "highlights": "h2"}\n')
    assert [s.article for s in load_samples(str(path))] == ["a1", "a2"]


def test_jsonl_with_input_and_output(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"input": "a", "output": "o"}\n')
    assert load_samples(str(path)) == [Sample("a", "o")]


def test_real_cnn_dailymail_samples_load():
    samples = load_samples(str(SHARED), limit=200)
    assert len(samples) == 200
    assert all(s.article and s.reference for s in samples)
    assert "\n" in samples[0].reference  # highlights stay joined by newlines


def test_hugging_face_dataset_from_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cnn_dailymail"
    folder.mkdir()
    rows = [{"article": f"article {i}", "highlights": f"summary {i}", "id": str(i)}
            for i in range(3)]
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    samples = load_samples(f"hf:{folder}")  # the split defaults to validation
    assert [s.reference for s in samples] == ["summary 0", "summary 1", "summary 2"]
    assert len(load_samples(f"hf:{folder}::train")) == 1


def test_limit_takes_the_first_samples_and_rejects_too_many(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"input": str(i), "output": "o"}) + "\n" for i in range(5)))
    assert [s.article for s in load_samples(str(path), limit=2)] == ["0", "1"]
    with pytest.raises(UsageError, match="more than the 5 samples"):
        load_samples(str(path), limit=6)


@pytest.mark.parametrize("content, message", [
    ("[]", "has no samples"),
    ("{\"a\": 1}", "expected a list"),
    ("[{\"title\": \"x\"}]", "expected input/output"),
    ("[1, 2]", "is not an object"),
    ("not json", "is not valid JSON"),
    ("[{\"input\": 5, \"output\": \"o\"}]", "must be strings"),
])
def test_bad_dataset_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_samples(str(path))


def test_missing_dataset_names_the_fix(tmp_path):
    with pytest.raises(UsageError, match="does not exist; pass --dataset"):
        load_samples(str(tmp_path / "nope.json"))


def test_tokenize_prompts_uses_tok_input_where_given():
    class Tokenizer:
        def __call__(self, texts):
            return {"input_ids": [[len(t)] for t in texts]}

    samples = [Sample("x", "r", (1, 2)), Sample("abc", "r")]
    assert tokenize_prompts(Tokenizer(), samples) == [(1, 2), (len(build_prompt("abc")),)]


def test_the_chat_format_puts_the_official_prompt_in_the_tokenizers_own_template(
        demo_tokenizer):
    from transformers import AutoTokenizer

    from client_sut.config import PromptFormat
    from client_sut.data.dataset import prompt_texts

    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    sample = Sample("An article.", "A highlight.", (1, 2, 3))
    [official] = prompt_texts(tokenizer, [sample])
    [chat] = prompt_texts(tokenizer, [sample], PromptFormat.CHAT)
    assert official == build_prompt("An article.")
    # The demo template: BOS, the user's turn with the whole official prompt, the assistant's.
    assert chat == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + official
                    + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # MLCommons' tok_input is the official prompt's: the chat format tokenizes its own text.
    assert tokenize_prompts(tokenizer, [sample]) == [(1, 2, 3)]
    [ids] = tokenize_prompts(tokenizer, [sample], PromptFormat.CHAT)
    assert tokenizer.decode(ids) == chat


def test_a_tokenizer_without_a_chat_template_cannot_take_the_chat_format(demo_tokenizer):
    from transformers import AutoTokenizer

    from client_sut.config import PromptFormat

    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(UsageError, match="has none; use --prompt-format official"):
        tokenize_prompts(tokenizer, [Sample("a", "b")], PromptFormat.CHAT)
