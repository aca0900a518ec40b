// Every `./ringtune` command the README shows runs as written: those that need no cluster are run
// from the repository root (their /tmp paths moved into a temp folder), the others must at least
// exist with every flag the README gives them.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT, runLauncher, runProcess } from "../helpers/processes.js";
import { readmeCommands, type ReadmeCommand } from "../helpers/readme_commands.js";

const RUNNABLE = ["model init", "dump", "generate", "data check", "data preview"];
const work = mkdtempSync(path.join(tmpdir(), "ringtune-readme-"));
after(() => rmSync(work, { recursive: true, force: true }));

const commands = readmeCommands(readFileSync(path.join(REPO_ROOT, "README.md"), "utf8"));

/** The command names `ringtune --help` lists ("model init", "jobs", ...). */
async function commandNames(): Promise<string[]> {
  const r = await runLauncher(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  return [...r.stdout.matchAll(/^ {2}(\S+(?: \S+)?) {2,}\S/gm)].map((m) => m[1]!);
}

function nameOf(c: ReadmeCommand, names: string[]): string {
  const two = c.args.slice(0, 2).join(" ");
  const name = names.includes(two) ? two : c.args[0]!;
  assert.ok(
    names.includes(name),
    `README: '${c.source}' is no ringtune command (ringtune --help lists ${names.join(", ")})`,
  );
  return name;
}

test("./ringtune runs the built command (package.json's bin) from any folder", async () => {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
  assert.equal(pkg.bin.ringtune, "dist/cli/ringtune.js");
  const r = await runProcess(path.join(REPO_ROOT, "ringtune"), ["--help"], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: ringtune <command>/);
});

test("the README shows the cluster commands and the local ones", async () => {
  const names = await commandNames();
  const shown = new Set(commands.filter((c) => c.inBlock).map((c) => nameOf(c, names)));
  for (const n of [...RUNNABLE, "submit", "jobs", "watch", "cancel", "cluster status"])
    assert.ok(shown.has(n), `the README's code blocks show no './ringtune ${n}'`);
});

test("every README command that needs no cluster runs as written, from the repository root", async () => {
  const names = await commandNames();
  // README order matters: `model init` writes the model that `dump` and `generate` read.
  const local = commands.filter((c) => c.inBlock && RUNNABLE.includes(nameOf(c, names)));
  assert.ok(local.length >= RUNNABLE.length);
  for (const c of local) {
    const args = c.args.map((a) => a.replace(/^\/tmp\//, `${work}/`));
    // The data commands cache tokenized data; the cache goes to the temp folder, not into the checkout.
    const r = await runLauncher(args, { env: { RINGTUNE_CACHE_DIR: path.join(work, "cache") }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `README: '${c.source}' failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    // Each shows its result: the file it was asked to write, or something on stdout.
    const out = args.indexOf("--out");
    if (out >= 0) assert.ok(existsSync(args[out + 1]!), `README: '${c.source}' did not write ${args[out + 1]}`);
    else assert.notEqual(r.stdout.trim(), "", `README: '${c.source}' printed nothing`);
  }
});

test("every other README command exists and its --help names each flag the README gives it", async () => {
  const names = await commandNames();
  const others = commands.filter((c) => !c.inBlock || !RUNNABLE.includes(nameOf(c, names)));
  assert.ok(others.length >= 5, `only ${others.length} commands to check`);
  for (const c of others) {
    const name = nameOf(c, names);
    const r = await runLauncher([...name.split(" "), "--help"]);
    assert.equal(r.code, 0, `ringtune ${name} --help: exit ${r.code}\n${r.stderr}`);
    assert.ok(r.stdout.startsWith(`usage: ringtune ${name}`), r.stdout);
    for (const flag of c.args.filter((a) => a.startsWith("--")))
      assert.match(
        r.stdout,
        new RegExp(`(^|[\\s\\[])${flag}(?![\\w-])`),
        `README: '${c.source}': ${flag} is not in its usage`,
      );
  }
});
