// The generation eval asks exactly the held-out chats a server of the model answers: a chat whose prompt
// and max_new_tokens pass the model's context (max_position_embeddings) is refused by `ringtune serve`
// and skipped by the eval, named by file:line in its report; one that just fits is asked by both.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { loadEvalPrompts, promptsWithinContext } from "../../coordinator/eval/generation_eval.js";
import { readHfConfig } from "../../hf/hf_config.js";
import { trainedTextOf } from "../../hf/trained_text.js";
import { baseTextChoice, textSetupFor } from "../../serving/text_setup.js";
import { startServer, type RunningServer } from "../../serving/server.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { renderChatPrompt } from "../../text/chat_prompt.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { writeServedFolder } from "../helpers/served_folders.js";
import { baseUrl, postJson } from "../helpers/serve_fixtures.js";

const MAX_NEW = 16;
let server: RunningServer | undefined;
after(() => server?.close());

test("a held-out chat too long for the model's context is skipped by the eval and refused by serving alike", async () => {
  const work = tempDir("eval-context-");
  const dir = await writeServedFolder(path.join(work, "model"), "byte", trainedTextOf({ template: "chatml" }, "byte"));
  const context = (await readHfConfig(path.join(dir, "config.json"))).maxPositionEmbeddings;
  const setup = textSetupFor(dir, baseTextChoice(dir));
  // Each byte of the user's text is one token: pick lengths that land the prompt on the context's edge.
  const overhead = renderChatPrompt(setup, [{ role: "user", content: "" }]).ids.length;
  const userOf = (promptTokens: number) => "x".repeat(promptTokens - overhead);
  const chats = [userOf(overhead + 5), userOf(context - MAX_NEW), userOf(context - MAX_NEW + 1)].map((content) => [
    { role: "user" as const, content },
  ]);
  const file = path.join(work, "heldout.jsonl");
  writeFileSync(
    file,
    chats
      .map((messages) => JSON.stringify({ messages: [...messages, { role: "assistant", content: "{}" }] }))
      .join("\n"),
  );
  const spec = { generation_eval: { path: file, format: "messages", max_new_tokens: MAX_NEW } } as Pick<
    JobSpec,
    "generation_eval"
  >;
  const prompts = loadEvalPrompts(spec, setup, { displayRoot: work });
  assert.deepEqual(
    prompts.map((p) => p.ids.length),
    [overhead + 5, context - MAX_NEW, context - MAX_NEW + 1],
  );

  const { asked, skipped } = promptsWithinContext(prompts, MAX_NEW, context);
  assert.deepEqual(
    asked.map((p) => p.source.line),
    [1, 2],
  );
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0].example, "heldout.jsonl:3");
  assert.equal(skipped[0].prompt_tokens, context - MAX_NEW + 1);
  assert.match(skipped[0].reason, new RegExp(`max_new_tokens is ${MAX_NEW}.*context of ${context} tokens`));

  server = await startServer({ modelDir: dir, name: "m", adapters: [], http: { host: "127.0.0.1", port: 0 } });
  const served = [];
  for (const messages of chats) {
    const r = await postJson(`${baseUrl(server)}/chat/completions`, {
      model: "m",
      messages,
      max_tokens: MAX_NEW,
      temperature: 0,
    });
    served.push(r.status === 200 ? "answered" : (r.json.error?.code as string));
  }
  assert.deepEqual(served, ["answered", "answered", "context_length_exceeded"]);
});
