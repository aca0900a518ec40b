// Which source files reach which, following relative imports all the way down. The tree has two kinds of
// top-level folder: processes (the coordinator, the workers, a standalone server, the CLI) and the shared
// libraries every process may import. A library reaches no process, not even through another library; a
// process reaches no other process, except that the CLI imports the entry points of the processes it starts.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export interface SourceFile {
  /** path relative to the repository root, with forward slashes (e.g. "coordinator/train/run_job.ts") */
  path: string;
  text: string;
}

export interface ImportViolation {
  /** the file whose imports lead across the line */
  file: string;
  /** the files from `file` to the first file across the line, both included */
  chain: string[];
  rule: string;
}

/** Top-level folders that are processes: each runs on its own and meets the others only through libraries. */
export const PROCESSES = ["coordinator", "worker", "serve", "cli"] as const;

/** Top-level folders that are shared libraries: any process may import them, and they import no process. */
export const LIBRARIES = [
  "proto", // the wire protocol and the job-record reader
  "spec", // the job spec, its plans and its memory estimate
  "text", // records, formats, readers, tokenizers, chat templates, stop ids
  "data", // the streamed data pipeline
  "hf", // Hugging Face and PEFT files
  "files", // path roots, confined output files, durable renames
  "plot", // the loss plot
  "serving", // the batched generation engine, its adapters and its OpenAI front doors, hosted by a worker or serve/
  "observe", // logging and the metrics/health HTTP listener
  "errors", // the base of the error classes
  "native", // the native addon's typed face
] as const;

/** Folders outside the rule: they exercise everything. */
export const UNCHECKED = ["test", "bench"] as const;

/** The files the CLI may import from another process: the entry points it starts that process through. */
export const ENTRY_POINTS: Record<string, string> = {
  "coordinator/main.ts": "coordinator",
  "worker/main.ts": "worker",
  "serve/main.ts": "serve",
};

// Static imports and re-exports (`import ... from "x"`, `export ... from "x"`, `import "x"`) and dynamic
// `import("x")`; comments are stripped first so a commented-out import does not count.
const SPECIFIER = /(?:\bimport|\bexport)\s[^"';]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']/g;

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'])\/\/.*$/gm, "$1");
}

export function importSpecifiers(text: string): string[] {
  return [...stripComments(text).matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2])!);
}

/** The source file a relative specifier of `file` names (`./x.js` is compiled from `./x.ts`), or undefined. */
function resolveImport(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return resolved.endsWith(".js") ? resolved.slice(0, -3) + ".ts" : resolved;
}

const topFolder = (file: string) => file.split("/")[0]!;
const isProcess = (folder: string) => (PROCESSES as readonly string[]).includes(folder);
const isLibrary = (folder: string) => (LIBRARIES as readonly string[]).includes(folder);

/**
 * Why a file of the top-level folder `start`, reaching `from`, must not go on to `target`; undefined when it may.
 */
function crossing(start: string, from: string, target: string): string | undefined {
  const to = topFolder(target);
  if (isLibrary(start) && isProcess(to)) return `a library (${start}/) must not reach a process (${to}/)`;
  if (isProcess(start) && isProcess(to) && to !== start) {
    if (start === "cli" && topFolder(from) === "cli" && ENTRY_POINTS[target] === to) return undefined;
    return `a process (${start}/) must not reach another process (${to}/)`;
  }
  return undefined;
}

/**
 * Every file of a process or a library whose imports, followed transitively, reach a file it must not: one
 * violation per file and forbidden file reached, with the shortest chain of imports that gets there. A CLI
 * file importing another process's entry point is allowed, and the walk stops there (that process's own
 * files are checked on their own). Top-level folders that are neither processes, libraries nor unchecked are reported
 * too, so a new folder has to be placed on one side of the line.
 */
export function importViolations(files: readonly SourceFile[]): ImportViolation[] {
  const imports = new Map<string, string[]>();
  for (const f of files) {
    const targets = importSpecifiers(f.text)
      .map((s) => resolveImport(f.path, s))
      .filter((t): t is string => t !== undefined);
    imports.set(f.path, targets);
  }
  const out: ImportViolation[] = [];
  for (const f of files) {
    const start = topFolder(f.path);
    if ((UNCHECKED as readonly string[]).includes(start)) continue;
    if (!isProcess(start) && !isLibrary(start)) {
      out.push({ file: f.path, chain: [f.path], rule: `${start}/ is neither a process nor a library` });
      continue;
    }
    // Breadth first, so the chain reported is a shortest one.
    const parent = new Map<string, string | null>([[f.path, null]]);
    const queue = [f.path];
    while (queue.length > 0) {
      const at = queue.shift()!;
      for (const target of imports.get(at) ?? []) {
        if (parent.has(target)) continue;
        parent.set(target, at);
        const rule = crossing(start, at, target);
        if (rule !== undefined) {
          const chain = [target];
          for (let p = parent.get(target); p != null; p = parent.get(p)) chain.unshift(p);
          out.push({ file: f.path, chain, rule });
          continue;
        }
        // An entry point the CLI may start is not walked into: its process is checked from its own files.
        if (!(isProcess(topFolder(target)) && topFolder(target) !== start)) queue.push(target);
      }
    }
  }
  return out;
}

/** Every .ts file under the given top-level folders of `root`, or under every top-level folder but the ignored. */
export function readSourceFiles(root: string, folders?: readonly string[]): SourceFile[] {
  const ignored = new Set(["node_modules", "dist", "build", ".git", ".cache", ".run", "runs", "examples", "deploy"]);
  const files: SourceFile[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith(".ts"))
        files.push({ path: child, text: readFileSync(path.join(root, child), "utf8") });
    }
  };
  const tops =
    folders ??
    readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !ignored.has(e.name) && !e.name.startsWith("."))
      .map((e) => e.name);
  for (const folder of tops) walk(folder);
  return files;
}
