// The README's layout is a newcomer's map: every top-level folder has its line, and the "one step, end to
// end" table names functions that are defined in the files it names, so a renamed or moved function fails
// here instead of leaving the map pointing at nothing.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");

/** The rows of the first table after `heading`, each a list of its cells' text. */
function tableAfter(text: string, heading: string): string[][] {
  const start = text.indexOf(`${heading}\n`);
  assert.ok(start >= 0, `README.md has a section '${heading}'`);
  const lines = text.slice(start).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The `code` spans of a cell. */
const codeSpans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** Top-level folders of the checkout, less build outputs, installed packages and hidden folders. */
function topFolders(root: string): string[] {
  const outputs = new Set(["node_modules", "dist", "build", "runs"]);
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && !outputs.has(e.name))
    .map((e) => e.name)
    .sort();
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Whether `text` (a TypeScript or C++ file) defines `name`: a function, method, constant or class of that name,
 * not a call of it. `owner` (a class, interface or struct, or the C++ qualifier) must be defined there too.
 */
export function defines(file: string, text: string, name: string, owner?: string): boolean {
  const n = escape(name);
  const ts = file.endsWith(".ts");
  const definition = ts
    ? new RegExp(
        `(function\\*?\\s+${n}\\b|(const|let)\\s+${n}\\s*=|^\\s*((public|private|protected|static|async|readonly|override)\\s+)*${n}\\s*(<[^>]*>)?\\()`,
        "m",
      )
    : // C++: a return type (or a qualifier) before the name, and no `return`, `=` or call chain before it.
      new RegExp(`^(?![ \\t]*return\\b)[ \\t]*[\\w:<>,*& \\t]*[\\w>*&][ \\t]+([\\w<>]+::)?${n}[ \\t]*\\(`, "m");
  if (!definition.test(text)) return false;
  if (owner === undefined) return true;
  const o = escape(owner);
  return new RegExp(`\\b(class|interface|struct)\\s+${o}\\b|\\b${o}(<\\w+>)?::${n}\\s*\\(`).test(text);
}

/** A name as the map writes it (`f`, `Class.method`, `Class<T>::method`): its owner and its own name. */
function parts(written: string): { owner?: string; name: string } {
  const m = /^(?:(\w+)(?:<\w+>)?(?:\.|::))?(\w+)$/.exec(written);
  assert.ok(m, `'${written}' is a function name the map can check`);
  return { owner: m[1], name: m[2]! };
}

test("the layout table has one line for every top-level folder, and names no folder that is gone", () => {
  const listed = tableAfter(readme, "## Layout").map((row) => codeSpans(row[0]!)[0]!.replace(/\/$/, ""));
  assert.deepEqual([...listed].sort(), topFolders(repoRoot));
});

test("each function the 'one step, end to end' map names is defined in one of the files its row names", () => {
  const rows = tableAfter(readme, "### One step, end to end");
  assert.ok(rows.length >= 10, `the map has its rows (${rows.length})`);
  for (const [part, functions, files] of rows) {
    const paths = codeSpans(files!);
    for (const p of paths) assert.ok(existsSync(path.join(repoRoot, p)), `${part}: ${p} exists`);
    const texts = paths.map((p) => ({ p, text: readFileSync(path.join(repoRoot, p), "utf8") }));
    for (const written of codeSpans(functions!).flatMap((s) => s.split(/\s*->\s*/))) {
      const { owner, name } = parts(written);
      assert.ok(
        texts.some(({ p, text }) => defines(p, text, name, owner)),
        `${part}: ${written} is defined in one of ${paths.join(", ")}`,
      );
    }
  }
});

test("the definition check tells a definition from a call, and a method from another class's", () => {
  const ts =
    "export class A {\n  private async run(x: number) {\n    return helper(x);\n  }\n}\nfunction helper() {}\n";
  assert.ok(defines("a.ts", ts, "run", "A"));
  assert.ok(defines("a.ts", ts, "helper"));
  assert.ok(!defines("a.ts", ts, "run", "B"));
  assert.ok(!defines("a.ts", "const y = run(1);\nawait this.run(2);\n", "run"));
  const cpp = "template <typename T>\nvoid Model<T>::step(int l) {\n  layer(l, 2);\n  return other(l);\n}\n";
  assert.ok(defines("m.cpp", cpp, "step", "Model"));
  assert.ok(!defines("m.cpp", cpp, "layer"));
  assert.ok(!defines("m.cpp", cpp, "other"));
  assert.ok(defines("b.h", "class Backend {\n  virtual void update(T* p) const = 0;\n};\n", "update", "Backend"));
});
