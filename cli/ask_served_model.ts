// `node dist/cli/ask_served_model.js RESULT.json`: the end of `make demo`. Serves the finished job's
// final/ with `ringtune serve` (HTTP on a free loopback port), asks it the first held-out chat of the
// job's generation_eval.jsonl through OpenAI's /v1/chat/completions, prints the answer beside the
// generation eval's, and stops the server. Exits 1 when the two answers differ.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { evalAnswersFile, finalLayout } from "../proto/mod.js";

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "ringtune.js");
const START_TIMEOUT_MS = 120_000;

interface AnswerLine {
  messages: { role: string; content: string }[];
  tools?: unknown[];
  max_tokens: number;
  expected: string;
  answer: string;
}

/** An answer on one line: as it is, or quoted as JSON when it holds a line break or a tab. */
function shown(s: string): string {
  return /[\n\r\t]/.test(s) ? JSON.stringify(s) : s;
}

function fail(msg: string): never {
  console.error(`ask_served_model: ${msg}`);
  process.exit(1);
}

const resultFile = process.argv[2];
if (!resultFile) {
  console.error("usage: node dist/cli/ask_served_model.js RESULT.json (the stdout of 'ringtune submit --wait --json')");
  process.exit(2);
}
const record = JSON.parse(readFileSync(resultFile, "utf8").trimEnd().split("\n").pop() ?? "{}") as { output?: string };
if (typeof record.output !== "string") fail(`${resultFile}: the job record names no output folder`);
const answers = evalAnswersFile(record.output);
if (!existsSync(answers)) fail(`${answers} is missing: the job ran no generation eval after training`);
const line = JSON.parse(readFileSync(answers, "utf8").split("\n")[0]!) as AnswerLine;
const model = finalLayout(record.output).model;

// the job's output folder is what the server may read (its --data-root)
const args = ["serve", "--model", model, "--name", "demo", "--data-root", record.output, "--http", "127.0.0.1:0"];
const server = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
let log = "";
server.stdout.on("data", (b) => (log += b));
server.stderr.on("data", (b) => (log += b));
try {
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no address within ${START_TIMEOUT_MS / 1000} s`)),
      START_TIMEOUT_MS,
    );
    server.stdout.on("data", () => {
      const m = /serving .* on (http:\/\/\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    server.once("exit", (code) => reject(new Error(`ringtune serve exited (${code})`)));
  }).catch((err: Error) => fail(`${err.message}:\n${log}`));
  const body = {
    model: "demo",
    messages: line.messages,
    tools: line.tools,
    max_tokens: line.max_tokens,
    temperature: 0,
  };
  const res = await fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const reply = (await res.json()) as {
    choices?: { message: { content: string | null } }[];
    usage?: { prompt_tokens: number };
    error?: { message: string };
  };
  if (!res.ok || !reply.choices) fail(`the server answered ${res.status}: ${reply.error?.message ?? ""}`);
  const served = reply.choices[0]!.message.content ?? "";
  const question = line.messages.filter((m) => m.role === "user").pop()?.content ?? "";
  console.log(`== the trained model behind OpenAI's chat API (ringtune serve --model ${model})`);
  console.log(`   POST ${url}/chat/completions, the held-out chat (${reply.usage?.prompt_tokens} prompt tokens)`);
  console.log(`   question:      ${question}`);
  console.log(`   served answer: ${shown(served)}`);
  console.log(`   eval's answer: ${shown(line.answer)}`);
  console.log(`   expected:      ${shown(line.expected)}`);
  console.log(
    `   ${served === line.answer ? "the same answer" : "DIFFERENT answers: serving does not render chats as training did"}`,
  );
  process.exitCode = served === line.answer ? 0 : 1;
} finally {
  server.kill("SIGTERM");
}
