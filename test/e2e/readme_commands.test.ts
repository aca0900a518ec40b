// Every `./ringtune` command the README and the pages under docs/ show runs as written: those that need no
// cluster are run from the repository root (their /tmp paths moved into a temp folder), the others must at
// least exist with every flag the page gives them. Every page is linked from the README, and every link
// of the README and docs/ leads to a file.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT, runLauncher, runProcess } from "../helpers/processes.js";
import { readmeCommands, type ReadmeCommand } from "../helpers/readme_commands.js";

const RUNNABLE = ["model init", "dump", "generate", "data check", "data preview"];
const work = mkdtempSync(path.join(tmpdir(), "ringtune-readme-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** The README, then the pages under docs/ by name; each page's commands in its own order. */
const PAGES = [
  "README.md",
  ...readdirSync(path.join(REPO_ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
];
const commands = PAGES.flatMap((page) =>
  readmeCommands(readFileSync(path.join(REPO_ROOT, page), "utf8")).map((c) => ({
    ...c,
    source: `${page}: ${c.source}`,
  })),
);

/** The command names `ringtune --help` lists ("model init", "jobs", ...). */
async function commandNames(): Promise<string[]> {
  const r = await runLauncher(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  return [...r.stdout.matchAll(/^ {2}(\S+(?: \S+)?) {2,}\S/gm)].map((m) => m[1]!);
}

function nameOf(c: ReadmeCommand, names: string[]): string {
  const two = c.args.slice(0, 2).join(" ");
  const name = names.includes(two) ? two : c.args[0]!;
  assert.ok(names.includes(name), `'${c.source}' is no ringtune command (ringtune --help lists ${names.join(", ")})`);
  return name;
}

test("./ringtune runs the built command (package.json's bin) from any folder", async () => {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
  assert.equal(pkg.bin.ringtune, "dist/cli/ringtune.js");
  const r = await runProcess(path.join(REPO_ROOT, "ringtune"), ["--help"], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: ringtune <command>/);
});

test("the README and docs/ show the cluster commands and the local ones", async () => {
  const names = await commandNames();
  const shown = new Set(commands.filter((c) => c.inBlock).map((c) => nameOf(c, names)));
  for (const n of [...RUNNABLE, "submit", "jobs", "watch", "cancel", "cluster status"])
    assert.ok(shown.has(n), `no code block of the README or docs/ shows './ringtune ${n}'`);
});

test("every README and docs/ command that needs no cluster runs as written, from the repository root", async () => {
  const names = await commandNames();
  // Order matters: the `model init` of docs/commands.md writes the model that its `dump` and `generate` read.
  const local = commands.filter((c) => c.inBlock && RUNNABLE.includes(nameOf(c, names)));
  assert.ok(local.length >= RUNNABLE.length);
  for (const c of local) {
    const args = c.args.map((a) => a.replace(/^\/tmp\//, `${work}/`));
    // The data commands cache tokenized data; the cache goes to the temp folder, not into the checkout.
    const r = await runLauncher(args, { env: { RINGTUNE_CACHE_DIR: path.join(work, "cache") }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `'${c.source}' failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    // Each shows its result: the file it was asked to write, or something on stdout.
    const out = args.indexOf("--out");
    if (out >= 0) assert.ok(existsSync(args[out + 1]!), `'${c.source}' did not write ${args[out + 1]}`);
    else assert.notEqual(r.stdout.trim(), "", `'${c.source}' printed nothing`);
  }
});

test("every other README and docs/ command exists and its --help names each flag the page gives it", async () => {
  const names = await commandNames();
  const others = commands.filter((c) => !c.inBlock || !RUNNABLE.includes(nameOf(c, names)));
  assert.ok(others.length >= 5, `only ${others.length} commands to check`);
  // Each command's usage is read once: the pages show many commands several times.
  const usages = new Map<string, ReturnType<typeof runLauncher>>();
  for (const c of others) {
    const name = nameOf(c, names);
    if (!usages.has(name)) usages.set(name, runLauncher([...name.split(" "), "--help"]));
    const r = await usages.get(name)!;
    assert.equal(r.code, 0, `ringtune ${name} --help: exit ${r.code}\n${r.stderr}`);
    assert.ok(r.stdout.startsWith(`usage: ringtune ${name}`), r.stdout);
    for (const flag of c.args.filter((a) => a.startsWith("--")))
      assert.match(r.stdout, new RegExp(`(^|[\\s\\[])${flag}(?![\\w-])`), `'${c.source}': ${flag} is not in its usage`);
  }
});

test("every page under docs/ is linked from the README, and every link of the README and docs/ leads to a file", () => {
  const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  for (const page of PAGES.slice(1)) assert.ok(readme.includes(`](${page})`), `the README links no ${page}`);
  for (const page of PAGES) {
    const text = readFileSync(path.join(REPO_ROOT, page), "utf8");
    for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(m[1]!)) continue; // a web address
      const target = path.join(REPO_ROOT, path.dirname(page), m[1]!);
      assert.ok(existsSync(target), `${page}: the link to ${m[1]} leads to no file`);
    }
  }
});
