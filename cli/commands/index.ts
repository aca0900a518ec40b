// Every subcommand, in the order `ringtune --help` lists them. Add a command by adding its module here.
import type { Command } from "../args.js";
import { modelInit } from "./model.js";
import { dump } from "./dump.js";
import { generate } from "./generate.js";
import { dataCommands } from "./data.js";
import { estimate } from "./estimate.js";

export const commands: Command[] = [modelInit, dump, generate];
commands.push(...dataCommands, estimate);
import { submit } from "./submit.js";
import { watch } from "./watch.js";
import { jobs } from "./jobs.js";
import { cancel } from "./cancel.js";
import { clusterStatusCommand } from "./cluster.js";
commands.push(submit, watch, jobs, cancel, clusterStatusCommand);
import { coordinatorCommand, workerCommand } from "./processes.js";
commands.push(coordinatorCommand, workerCommand);
import { exportCommand } from "./export.js";
commands.push(exportCommand);
import { plot } from "./plot.js";
commands.push(plot);
import { serve } from "./serve.js";
commands.push(serve);
