// A `fetch` that answers OpenAI's POST /v1/chat/completions from the engine, so the official openai client (or
// any code written against OpenAI's HTTP API) runs on the model in the tab:
//
//   const client = new OpenAI({ fetch: engineFetch(engine), apiKey: "local", baseURL: "http://tab.local/v1",
//                               dangerouslyAllowBrowser: true });
//
// Nothing goes over the network. A completion is JSON; with stream: true, server-sent events ("data: <chunk>",
// then "data: [DONE]") as OpenAI sends them. Errors are OpenAI's JSON ({error: {message, type, param, code}}) with
// its HTTP status; an error after streaming began is an event {error}, which the SDK raises as APIError.

const CHAT_COMPLETIONS = /\/chat\/completions\/?$/;

/** @param {import("./index.js").Engine} engine @returns {typeof fetch} */
export function engineFetch(engine) {
  return async (input, init) => {
    const request = new Request(input, init);
    const { pathname } = new URL(request.url);
    if (!CHAT_COMPLETIONS.test(pathname)) {
      return errorResponse(404, { message: `Unknown route ${request.method} ${pathname}: this engine serves POST `
        + "/v1/chat/completions", type: "invalid_request_error", param: null, code: "unknown_url" });
    }
    if (request.method !== "POST") {
      return errorResponse(405, { message: `${request.method} ${pathname}: use POST`, type: "invalid_request_error",
        param: null, code: "method_not_allowed" });
    }
    let body;
    try {
      body = await request.json();
    } catch {
      return errorResponse(400, { message: "The request body is not valid JSON", type: "invalid_request_error",
        param: null, code: "invalid_json" });
    }
    let result;
    try {
      result = await engine.chat.completions.create({ ...body, signal: request.signal });
    } catch (error) {
      if (error?.code === "request_aborted") throw new DOMException(error.message, "AbortError"); // as fetch does
      if (!error?.body) throw error;
      return errorResponse(httpStatus(error.body), error.body);
    }
    if (!body?.stream) return jsonResponse(200, result);
    return new Response(eventStream(result), { status: 200, headers: { "content-type": "text/event-stream" } });
  };
}

/** OpenAI's status for an error body: 400 for a bad request, 404 when no model is loaded (as OpenAI's unknown
 * model), 500 for the engine's own failures. */
function httpStatus(body) {
  if (body.code === "model_not_loaded") return 404;
  return body.type === "invalid_request_error" ? 400 : 500;
}

function jsonResponse(status, value) {
  return new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
}

function errorResponse(status, body) {
  return jsonResponse(status, { error: body });
}

/** The chunks as server-sent events; cancelling the body (the SDK's abort or break) ends the generation. */
function eventStream(chunks) {
  const iterator = chunks[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  const event = (data) => encoder.encode(`data: ${data}\n\n`);
  return new ReadableStream({
    async pull(controller) {
      try {
        const { value, done } = await iterator.next();
        if (!done) {
          controller.enqueue(event(JSON.stringify(value)));
          return;
        }
        controller.enqueue(event("[DONE]"));
      } catch (error) {
        controller.enqueue(event(JSON.stringify({ error: error?.body ?? { message: String(error), type: "server_error",
          param: null, code: "internal_error" } })));
      }
      controller.close();
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
