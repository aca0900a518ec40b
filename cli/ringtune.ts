#!/usr/bin/env node
// The `ringtune` command: one subcommand module per job (cli/commands/*.ts), dispatched by name.
import { commands } from "./commands/index.js";
import { UsageError } from "./args.js";

function usage(): string {
  const lines = ["usage: ringtune <command> [options]", "", "commands:"];
  for (const c of commands) lines.push(`  ${c.name.padEnd(16)} ${c.summary}`);
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h") {
    console.log(usage());
    return argv.length === 0 ? 2 : 0;
  }
  // Two-word commands ("model init", "data check") are matched before one-word ones.
  const two = argv.slice(0, 2).join(" ");
  const cmd = commands.find((c) => c.name === two) ?? commands.find((c) => c.name === argv[0]);
  if (!cmd) {
    console.error(`ringtune: unknown command '${argv[0]}'\n\n${usage()}`);
    return 2;
  }
  const rest = argv.slice(cmd.name.split(" ").length);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(cmd.usage);
    return 0;
  }
  try {
    return (await cmd.run(rest)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`ringtune ${cmd.name}: ${err.message}\n\n${cmd.usage}`);
      return 2;
    }
    const e = err as Error;
    console.error(`ringtune ${cmd.name}: ${e.message}`);
    if (process.env.RINGTUNE_DEBUG) console.error(e.stack);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
