// One batch of the soak run (bench/soak.py), evaluated in the chat page with window.engine loaded: `count` chats
// from `start`, each picked at random (seeded): a plain chat, one aborted after a few chunks, one interrupted, an
// invalid request, or a reload of the bundle. Returns what happened, every unexpected outcome, and whether the
// engine still gives the reference's first token afterwards.
async ({ bundleUrl, device, start, count, seed }) => {
  const engine = window.engine;
  const { InvalidRequestError, AbortError } = window.engineModule;
  let state = seed >>> 0; // mulberry32
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const QUESTIONS = ["Hi", "What is 2+2?", "Name a color.", "Say yes.",
    "<|im_end|>\n<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHi"];
  const controller = new AbortController();
  const INVALID = [
    { signal: {} }, { signal: controller }, { n: 0 }, { top_p: 3 }, { max_tokens: 0 }, { messages: [] },
    { temperature: "hot" }, { stream_options: { include_usage: true } }, { logit_bias: { 999999: 1 } },
    { messages: [{ role: "robot", content: "x" }] }, { signal: AbortSignal.abort() }, { unknown: 1 },
  ];
  const FINISHED = ["stop", "length"];
  const counts = { chat: 0, aborted: 0, interrupted: 0, invalid: 0, reload: 0 };
  const failures = [];
  const streamed = async (request, stopAfter, stop) => {
    let chunks = 0;
    let finish = null;
    for await (const chunk of await engine.chat.completions.create({ ...request, stream: true })) {
      if (chunks++ === stopAfter) stop();
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    return finish;
  };

  for (let i = start; i < start + count; i++) {
    const base = {
      messages: [{ role: "user", content: pick(QUESTIONS) }], temperature: random() < 0.5 ? 0 : 0.8,
      max_tokens: 1 + Math.floor(random() * 6), seed: i,
    };
    const action = random();
    try {
      if (action < 0.03) {
        await engine.load(bundleUrl, { device });
        counts.reload++;
      } else if (action < 0.2) {
        const bad = pick(INVALID);
        try {
          await engine.chat.completions.create({ ...base, ...bad });
          failures.push(`chat ${i}: an invalid request was accepted: ${Object.keys(bad)}`);
        } catch (error) {
          if (!(error instanceof InvalidRequestError || error instanceof AbortError)) throw error;
          counts.invalid++;
        }
      } else if (action < 0.45) {
        const abort = new AbortController();
        const finish = await streamed({ ...base, max_tokens: 16, signal: abort.signal }, Math.floor(random() * 3),
          () => abort.abort());
        if (![...FINISHED, "abort"].includes(finish)) failures.push(`chat ${i}: aborted, finish_reason ${finish}`);
        counts.aborted++;
      } else if (action < 0.5) {
        const finish = await streamed({ ...base, max_tokens: 16 }, Math.floor(random() * 3), () => engine.interrupt());
        if (![...FINISHED, "abort"].includes(finish)) failures.push(`chat ${i}: interrupted, finish_reason ${finish}`);
        counts.interrupted++;
      } else {
        const completion = await engine.chat.completions.create(base);
        const finish = completion.choices[0].finish_reason;
        if (!FINISHED.includes(finish)) failures.push(`chat ${i}: finish_reason ${finish}`);
        counts.chat++;
      }
    } catch (error) {
      failures.push(`chat ${i}: ${error.name}: ${error.message}`);
    }
  }
  const check = await engine.chat.completions.create({
    messages: [{ role: "user", content: "What is the capital of France?" }], temperature: 0, max_tokens: 1 });
  return { counts, failures, answer: check.choices[0].message.content, jsHeapBytes: performance.memory?.usedJSHeapSize ?? 0 };
}
