// The `./ringtune ...` commands a README shows, as argument lists: from its ```sh blocks (whole
// lines, comments cut) and from its inline `code`. README shorthand is expanded: `a | b | c` on one
// line lists alternatives of the same command; `[--x | --y]` and `[--x]` are optional flags.

export interface ReadmeCommand {
  /** the line as the README has it (comment cut) */
  source: string;
  /** arguments after `./ringtune` */
  args: string[];
  /** from a ```sh block (runnable as written) or from inline code in prose */
  inBlock: boolean;
}

const PREFIX = "./ringtune ";

/** `x [a | b] y` -> x y, x a y, x b y; `x [a] y` -> x y, x a y (the first bracket; recursive for more). */
function expandOptional(line: string): string[] {
  const m = /\[([^\]]+)\]/.exec(line);
  if (!m) return [line];
  const before = line.slice(0, m.index);
  const after = line.slice(m.index + m[0].length);
  const choices = ["", ...m[1]!.split("|").map((c) => c.trim())];
  return choices.flatMap((c) => expandOptional(`${before}${c}${after}`.replace(/\s+/g, " ").trim()));
}

/** `./ringtune jobs | watch ID | cancel ID` -> three commands. */
function expandAlternatives(line: string): string[] {
  const [first, ...rest] = line.split(" | ");
  return [first!, ...rest.map((r) => PREFIX + r.trim())];
}

function toCommands(line: string, inBlock: boolean): ReadmeCommand[] {
  // Brackets first: the `|` inside `[--x | --y]` separates flags, not commands.
  return expandOptional(line)
    .flatMap(expandAlternatives)
    .map((source) => ({ source, args: source.slice(PREFIX.length).trim().split(/\s+/), inBlock }));
}

export function readmeCommands(readme: string): ReadmeCommand[] {
  const out: ReadmeCommand[] = [];
  const blocks = readme.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```/gm);
  for (const b of blocks)
    for (const raw of b[1]!.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (line.startsWith(PREFIX)) out.push(...toCommands(line, true));
    }
  const prose = readme.replace(/^```[\s\S]*?^```/gm, "");
  for (const m of prose.matchAll(/`(\.\/ringtune [^`]+)`/g))
    out.push(...toCommands(m[1]!.replace(/\s*\.\.\.$/, ""), false));
  return out;
}
