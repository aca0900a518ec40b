// Every subcommand, in the order `ringtune --help` lists them. Add a command by adding its module here.
import type { Command } from "../args.js";
import { modelInit } from "./model.js";
import { dump } from "./dump.js";
import { generate } from "./generate.js";
import { dataCommands } from "./data.js";

export const commands: Command[] = [modelInit, dump, generate];
commands.push(...dataCommands);
