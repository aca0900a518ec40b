// Every file a job reads is opened here. A path checked at intake can change before it is read (a file
// replaced by a symbolic link, a folder swapped for one); so a process with input roots opens each input by
// walking from its root, never letting the kernel follow a link (files/walk_beneath.ts): what is read is what
// the walk reached, under the roots. It must be a regular file: a FIFO, a device or a socket is refused by
// type, and the open itself never waits on one (O_NONBLOCK), so a FIFO named as a data file cannot hang
// preparation. Code that needs a path rather than a descriptor (the native weight reader) is given the
// descriptor's own /proc/self/fd/N, which reopens exactly the file the walk reached.
import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { bothForms } from "./folder_beneath.js";
import path from "node:path";
import { inside, InputFileError, notRegular, openBeneath, typeError } from "./walk_beneath.js";

export { InputFileError, notRegular };

/**
 * The roots every input must lie under, ':'-separated: set by the coordinator (its data and output roots) and
 * by a worker (its own), inherited by every thread they start. Unset: inputs are opened as named.
 */
export const INPUT_ROOTS_VARIABLE = "RINGTUNE_INPUT_ROOTS";

/** This process's input roots (both forms: as named and resolved), or undefined when it has none. */
export function inputRoots(): string[] | undefined {
  const value = process.env[INPUT_ROOTS_VARIABLE];
  if (!value) return undefined;
  return bothForms(value.split(":").filter((r) => r !== ""));
}

/** Whether `p` (as written, `..` resolved) lies under this process's input roots; true when it has none. */
export function underInputRoots(p: string): boolean {
  const roots = inputRoots();
  return !roots || roots.some((r) => inside(r, path.resolve(p)));
}

/**
 * Adds `roots` to this process's input roots (and its threads'). Added, never narrowed: a coordinator and a
 * worker in one process (tests, a single-machine setup) each read under their own roots.
 */
export function addInputRoots(roots: string[]): void {
  const had = (process.env[INPUT_ROOTS_VARIABLE] ?? "").split(":").filter((r) => r !== "");
  process.env[INPUT_ROOTS_VARIABLE] = [...new Set([...had, ...roots])].join(":");
}

function openUnconfined(file: string, want: "file" | "folder"): number {
  let fd: number;
  try {
    fd = openSync(
      file,
      constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | (want === "folder" ? constants.O_DIRECTORY : 0),
    );
  } catch (err) {
    // a socket cannot be opened at all (ENXIO): refused by its type like the others
    if ((err as NodeJS.ErrnoException).code === "ENXIO") throw typeError(file, "", statSync(file), err);
    throw err;
  }
  if (want === "folder") return fd;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw typeError(file, "", st);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function openInput(file: string, want: "file" | "folder"): number {
  const roots = inputRoots();
  if (!roots) return openUnconfined(file, want);
  return openBeneath(file, roots, { want, links: "follow-inside", label: "input" });
}

/** A descriptor for reading the regular file `file`, reached as above; the caller closes it. */
export function openInputSync(file: string): number {
  return openInput(file, "file");
}

/** Whether `file` is there to be read: false only when a component is missing (a link leading out counts as there). */
export function inputPresent(file: string): boolean {
  let fd: number;
  try {
    fd = openInputSync(file);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
  closeSync(fd);
  return true;
}

/** The whole of an input file, through openInputSync. */
export function readInputBytes(file: string): Buffer {
  const fd = openInputSync(file);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The whole of an input file as UTF-8 text. */
export function readRegularFile(file: string): string {
  return readInputBytes(file).toString("utf8");
}

/** The entries of the input folder `dir`, reached as a file is; sorted by name (code units). */
export function listInputFolder(dir: string): { name: string; isFile: boolean; isFolder: boolean }[] {
  const fd = openInput(dir, "folder");
  try {
    return readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true })
      .map((e) => ({ name: e.name, isFile: e.isFile(), isFolder: e.isDirectory() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs `use` with a path that opens exactly the file the walk reached (its descriptor's /proc/self/fd/N), for
 * readers that take a path; their errors name `file`, never that path.
 */
export async function withInputPath<T>(file: string, use: (opened: string) => Promise<T>): Promise<T> {
  const fd = openInputSync(file);
  const opened = `/proc/self/fd/${fd}`;
  try {
    return await use(opened);
  } catch (err) {
    if (err instanceof Error && err.message.includes(opened)) err.message = err.message.split(opened).join(file);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * `err` with the key of the path its message begins with put first ("data[0].path: /x/train.jsonl: is a
 * FIFO"), when one does: a refusal then names the spec or command field as well as the file. `keys` pairs
 * each key with its path (a folder's key covers the files in it).
 */
export function namingKey(err: unknown, keys: [string, string | undefined][]): unknown {
  if (!(err instanceof Error)) return err;
  const message = err.message;
  const hit = keys
    .filter(([, p]) => p !== undefined && (message.startsWith(`${p}:`) || message.startsWith(`${p}/`)))
    .sort((a, b) => b[1]!.length - a[1]!.length)[0];
  if (hit) err.message = `${hit[0]}: ${message}`;
  return err;
}
