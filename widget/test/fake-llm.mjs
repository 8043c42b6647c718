// A fake OpenAI-compatible LLM on loopback: answers POST /chat/completions with SSE chunks.
// Tests set `reply`, `chunkDelayMs` and read `requests` (every request body, parsed).
import http from 'node:http';

/** Splits text into small pieces so the widget sees a real stream of deltas. */
function pieces(text, size = 6) {
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

const chunk = (delta, finish = null) => 'data: ' + JSON.stringify({
  id: 'x', object: 'chat.completion.chunk', created: 0, model: 'fake',
  choices: [{ index: 0, delta, finish_reason: finish }],
}) + '\n\n';

export async function startFakeLlm({ reply = 'Hello from the fake model.', chunkDelayMs = 5 } = {}) {
  const llm = {
    reply, chunkDelayMs, requests: [],
    /** Optional hook: (body) => reply text, for replies that depend on the request. */
    replyFor: null,
    /** How many of the next requests fail with HTTP 500 (upstream trouble). */
    failNext: 0,
    /** When set, the next reply's connection is cut after this many chunks (then it resets). */
    cutAfter: null,
    /** When set, holds the stream open after this many chunks until release() is called. */
    holdAfter: null,
    held: null,
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"error":{"message":"not found"}}');
      }
      let parsed;
      try { parsed = JSON.parse(body); } catch { parsed = { unparsable: body }; }
      llm.requests.push(parsed);
      if (llm.failNext > 0) {
        llm.failNext -= 1;
        res.writeHead(500, { 'content-type': 'application/json' });
        return res.end('{"error":{"message":"fake upstream failure","type":"server_error"}}');
      }
      const text = llm.replyFor ? llm.replyFor(parsed) : llm.reply;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const parts = pieces(text);
      for (let i = 0; i < parts.length; i++) {
        if (llm.cutAfter === i) {
          llm.cutAfter = null;
          return res.destroy();
        }
        if (llm.holdAfter === i) {
          await new Promise((resolve) => { llm.held = resolve; });
          llm.held = null;
        }
        if (res.destroyed) return;
        res.write(chunk(i === 0 ? { role: 'assistant', content: parts[i] } : { content: parts[i] }));
        await new Promise((r) => setTimeout(r, llm.chunkDelayMs));
      }
      res.write(chunk({}, 'stop'));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  llm.url = `http://127.0.0.1:${server.address().port}`;
  llm.release = () => llm.held?.();
  llm.close = () => new Promise((resolve) => {
    llm.held?.();
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return llm;
}
