// `make test-js` runs each JS test file in the lane test/lanes.txt gives it (deploy/scripts/test-js.sh):
// every file runs exactly once, a line of test/lanes.txt that matches no file is a stale line, a file no
// line names runs alone, and a lane that is not wait, cpu or solo stops the run before anything starts.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { REPO_ROOT, runProcess } from "../helpers/processes.js";

const SCRIPT = path.join(REPO_ROOT, "deploy/scripts/test-js.sh");
const LANES = ["wait", "cpu", "solo"];

/** The JS test files `make test-js` runs, as the script names them (dist/test/..., sorted). */
function testFiles(): string[] {
  const root = path.join(REPO_ROOT, "dist/test");
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".test.js") && !f.startsWith(`containers${path.sep}`))
    .map((f) => `dist/test/${f.split(path.sep).join("/")}`)
    .sort();
}

/** The script's `--list`: each file with its lane. */
async function listed(
  env: Record<string, string> = {},
): Promise<{ code: number | null; lanes: Map<string, string>; stderr: string }> {
  const r = await runProcess("bash", [SCRIPT, "--list"], { env, timeoutMs: 60_000 });
  const lanes = new Map<string, string>();
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [lane, file] = line.split(" ");
    assert.ok(!lanes.has(file!), `${file} is listed twice`);
    lanes.set(file!, lane!);
  }
  return { code: r.code, lanes, stderr: r.stderr };
}

/** The (lane, pattern) lines of a lanes file. */
function lanesLines(text: string): [string, string][] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(/\s+/) as [string, string]);
}

/** A bash glob of test/lanes.txt as a RegExp: `*` matches any run of characters, `/` included. */
const globRegExp = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\?]/g, "\\$&").replaceAll("*", ".*")}$`);

/** Lines that match no test file: the file was renamed or removed and its line was left behind. */
function staleLines(text: string, files: string[]): string[] {
  const names = files.map((f) => f.slice("dist/test/".length, -".test.js".length));
  return lanesLines(text)
    .filter(([, pattern]) => !names.some((n) => globRegExp(pattern).test(n)))
    .map(([lane, pattern]) => `${lane} ${pattern}`);
}

test("every JS test file is in exactly one lane, and every line of test/lanes.txt places some file", async () => {
  const files = testFiles();
  const { code, lanes, stderr } = await listed();
  assert.equal(code, 0, stderr);
  assert.deepEqual([...lanes.keys()], files, "the script runs each test file once");
  for (const [file, lane] of lanes) assert.ok(LANES.includes(lane), `${file}: lane ${lane}`);
  const text = readFileSync(path.join(REPO_ROOT, "test/lanes.txt"), "utf8");
  for (const [lane] of lanesLines(text)) assert.ok(LANES.includes(lane), `test/lanes.txt: lane ${lane}`);
  assert.deepEqual(staleLines(text, files), [], "test/lanes.txt lines that place no file");
  // The files that bound wall-clock time run alone: the fault tests' release and cancel bounds, for one.
  assert.equal(lanes.get("dist/test/faults/ring_worker_kills.test.js"), "solo");
  assert.equal(lanes.get("dist/test/faults/cancel_phases.test.js"), "solo");
});

test("a file no line names runs alone; a stale line is found; a lane that is not wait, cpu or solo stops the run", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-lanes-"));
  const files = testFiles();
  const planted = path.join(dir, "lanes.txt");
  writeFileSync(planted, "# only the faults have a lane\nwait faults/*\ncpu faults/no_such_file\n");
  const { code, lanes } = await listed({ TEST_LANES: planted });
  assert.equal(code, 0);
  assert.equal(lanes.get("dist/test/faults/process_faults.test.js"), "wait");
  assert.equal(lanes.get("dist/test/data/packing.test.js"), "solo", "a file no line names runs alone");
  assert.deepEqual(staleLines(readFileSync(planted, "utf8"), files), ["cpu faults/no_such_file"]);

  writeFileSync(planted, "wait faults/*\nfast data/*\n");
  const bad = await listed({ TEST_LANES: planted });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /lanes\.txt: the lane of data\/\S+ is 'fast', not wait, cpu or solo/);
});
