// Every subcommand, in the order `ringtune --help` lists them. Add a command by adding its module here.
import type { Command } from "../args.js";

export const commands: Command[] = [];
