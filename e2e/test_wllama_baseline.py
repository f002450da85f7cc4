"""The llama.cpp baseline of `python -m bench` (bench/wllama.py: npm @wllama/wllama in this Chromium) computes
the same model from the same prompt: at one thread its greedy answer to the recorded chat prompt is the numpy
reference's. Correctness only; its speed is the benchmark's business."""
from bench.wllama import create_wllama_app, load_wllama, open_wllama_page, prompt_text, wllama_generate


def test_wllama_greedy_answer_is_the_reference_answer(webgpu_browser, serve, smollm2_gguf, smollm2_tokenizer,
                                                      smollm2_greedy_case):
    case = smollm2_greedy_case
    prompt_ids, answer_ids = case["prompt_ids"], case["greedy_ids"][:-1]
    assert case["greedy_ids"][-1] in case["stop_ids"]  # an end token, which the baseline masks (ignore_eos)
    context = webgpu_browser.new_context()
    page = open_wllama_page(context, serve(create_wllama_app(smollm2_gguf)))
    load_wllama(page, threads=1, context_tokens=len(prompt_ids) + len(answer_ids))
    run = wllama_generate(page, prompt_ids, prompt_text(smollm2_tokenizer, prompt_ids), len(answer_ids))
    context.close()
    assert run["ids"] == answer_ids
