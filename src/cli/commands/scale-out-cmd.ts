import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { parseIntOption, positiveIntOption, printJson, UsageError } from "../common.ts";
import {
  kubernetesJobs,
  mergeArgs,
  mergedDir,
  planScaleOut,
  type ScaleOutPlan,
  SHARDABLE_COMMANDS,
  shellQuote,
  slurmScripts,
  toYaml,
  writeJobFiles,
} from "../scale-out.ts";

interface ScaleOutCliOptions {
  shards: number;
  out: string;
  circuitscope?: string;
  mergeOptions?: string;
  json?: boolean;
}

interface SlurmCliOptions extends ScaleOutCliOptions {
  partition?: string;
  time?: string;
  mem?: string;
  cpusPerTask?: number;
  account?: string;
  submit?: boolean;
}

interface KubernetesCliOptions extends ScaleOutCliOptions {
  manifests: string;
  image: string;
  claim: string;
  mountPath: string;
  memory?: string;
  cpu?: string;
  parallelism?: number;
  retries: number;
}

/** This process's own way of starting circuitscope (node, its flags, the script), for nodes that share its files. */
function thisLauncher(): string[] {
  return [process.execPath, ...process.execArgv, resolve(process.argv[1])];
}

/**
 * The command must parse as circuitscope would parse it on every shard (and the merge's options as the merge
 * command would): a typo fails here, not N times later. `words` names the command ("sae", "harvest").
 */
function checkInnerCommand(cmd: Command, words: readonly string[], args: readonly string[]): void {
  let inner: Command | undefined = cmd.parent ?? undefined;
  for (const word of words) inner = inner?.commands.find((c) => c.name() === word);
  if (!inner) return; // planScaleOut names the shardable commands
  const { unknown } = inner.parseOptions([...args]);
  const unknownFlags = unknown.filter((a) => a.startsWith("-"));
  if (unknownFlags.length > 0) {
    const name = words.join(" ");
    throw new UsageError(
      `${name} does not take ${unknownFlags.join(", ")}: see circuitscope ${name} --help.`,
    );
  }
}

function plan(
  cmd: Command,
  commandLine: string[],
  opts: ScaleOutCliOptions,
  where: { launcher: string[]; cwd?: string; jobDir?: string },
): ScaleOutPlan {
  const p = planScaleOut({
    commandLine,
    mergeOptions: opts.mergeOptions,
    shards: opts.shards,
    out: opts.out,
    ...where,
  });
  checkInnerCommand(cmd, p.command.split(" "), p.args);
  const merge = mergeArgs(p);
  // A merge with options of the user's (--merge-options) is checked too: its command's words, then its arguments.
  if (p.mergeOptions.length > 0) checkInnerCommand(cmd, merge.slice(0, 2), p.mergeOptions);
  return p;
}

function addCommonOptions(cmd: Command): Command {
  return cmd
    .argument(
      "<command...>",
      `the circuitscope command to shard, with its options (${SHARDABLE_COMMANDS.join(", ")})`,
    )
    .requiredOption("--shards <n>", "number of shards", positiveIntOption("shards"))
    .requiredOption(
      "-o, --out <dir>",
      "work directory on storage every node shares: shards/, merged/ (and Slurm's job files and logs/)",
    )
    .option(
      "--merge-options <options>",
      'sae harvest: the sae train options of the job that trains on the shards, e.g. --merge-options "--d-sae 512 --k 8 --seed 0"',
    )
    .option("--json", "print what was written (and submitted) as JSON")
    .allowUnknownOption()
    .allowExcessArguments();
}

export function register(program: Command): void {
  addCommonOptions(
    program
      .command("slurm")
      .description(
        "write Slurm batch scripts for a command split into shards: an array job, then a merge job that runs after it succeeds (afterok)",
      ),
  )
    .option("--partition <name>", "Slurm partition")
    .option("--time <limit>", "time limit per task, e.g. 2:00:00")
    .option("--mem <size>", "memory per task, e.g. 8G")
    .option("--cpus-per-task <n>", "cores per task", positiveIntOption("cpus-per-task"))
    .option("--account <name>", "Slurm account to charge")
    .option(
      "--circuitscope <command>",
      "how the nodes start circuitscope (default: this node, script and flags)",
    )
    .option("--submit", "submit both jobs with sbatch (the merge depending on the array)")
    .action((commandLine: string[], opts: SlurmCliOptions, cmd: Command) => {
      const launcher = opts.circuitscope ? opts.circuitscope.trim().split(/\s+/) : thisLauncher();
      const p = plan(cmd, commandLine, opts, { launcher });
      const scripts = slurmScripts(p, opts);
      const files = writeJobFiles(p, "slurm", {
        "shards.sbatch": scripts.shards,
        "merge.sbatch": scripts.merge,
      });
      const [shardsPath, mergePath] = files;
      const submitLine = `jobid=$(sbatch --parsable ${shellQuote(shardsPath)}) && sbatch --dependency=afterok:\${jobid%%;*} ${shellQuote(mergePath)}`;
      if (!opts.submit) {
        if (opts.json) printJson({ engine: "slurm", files, merged: mergedDir(p), submit: submitLine });
        else
          process.stdout.write(
            `Wrote ${files.join(" and ")}.\nSubmit both (the merge runs once every shard has succeeded):\n  ${submitLine}\nThe merged result will be in ${mergedDir(p)}; shard logs in ${join(p.workDir, "logs")}.\n`,
          );
        return;
      }
      const sbatch = (args: string[]) => {
        try {
          return execFileSync("sbatch", ["--parsable", ...args], { encoding: "utf8" })
            .trim()
            .split(";")[0];
        } catch (err) {
          const e = err as NodeJS.ErrnoException & { stderr?: string };
          if (e.code === "ENOENT") {
            throw new UsageError(
              `sbatch is not on this machine's PATH: run this on a Slurm login node, or submit the scripts there yourself:\n  ${submitLine}`,
            );
          }
          throw new Error(`sbatch failed: ${(e.stderr ?? e.message).trim()}`);
        }
      };
      const shardsJob = sbatch([shardsPath]);
      const mergeJob = sbatch([`--dependency=afterok:${shardsJob}`, mergePath]);
      if (opts.json) printJson({ engine: "slurm", files, merged: mergedDir(p), shardsJob, mergeJob });
      else
        process.stdout.write(
          `Submitted array job ${shardsJob} (${p.shards} shards) and merge job ${mergeJob} (after ${shardsJob} succeeds).\n` +
            `Watch: squeue -j ${shardsJob},${mergeJob}; logs in ${join(p.workDir, "logs")}; result in ${mergedDir(p)}.\n` +
            `A shard that failed: fix the cause, then sbatch --array=I ${shellQuote(shardsPath)} and submit the merge again.\n`,
        );
    });

  addCommonOptions(
    program
      .command("kubernetes")
      .description(
        "write Kubernetes Job manifests for a command split into shards: an Indexed Job, then a merge Job to apply when it completes",
      ),
  )
    .requiredOption("--image <image>", "container image with circuitscope installed")
    .requiredOption("--claim <name>", "PersistentVolumeClaim every pod mounts (holds --out and the inputs)")
    .requiredOption("--mount-path <dir>", "where the claim is mounted in the pods (--out must lie under it)")
    .option("--memory <size>", "memory per pod, e.g. 8Gi")
    .option("--cpu <n>", "cores per pod, e.g. 2")
    .option("--parallelism <n>", "pods at once (default: every shard)", positiveIntOption("parallelism"))
    .option("--retries <n>", "retries per shard (backoffLimitPerIndex)", parseIntOption("retries"), 2)
    .option("--manifests <dir>", "local directory for job.yaml and merge-job.yaml", "circuitscope-jobs")
    .option("--circuitscope <command>", "how the pods start circuitscope", "circuitscope")
    .action((commandLine: string[], opts: KubernetesCliOptions, cmd: Command) => {
      // Paths are the pods' paths: relative ones are read from the volume's mount path.
      const p = plan(cmd, commandLine, opts, {
        launcher: opts.circuitscope!.trim().split(/\s+/),
        cwd: opts.mountPath,
        jobDir: opts.manifests,
      });
      const jobs = kubernetesJobs(p, { ...opts, mountPath: opts.mountPath });
      const files = writeJobFiles(p, "kubernetes", {
        "job.yaml": toYaml(jobs.shards),
        "merge-job.yaml": toYaml(jobs.merge),
      });
      const name = (jobs.shards.metadata as { name: string }).name;
      const apply = `kubectl apply -f ${shellQuote(files[0])} && kubectl wait --for=condition=complete --timeout=-1s job/${name} && kubectl apply -f ${shellQuote(files[1])}`;
      if (opts.json) printJson({ engine: "kubernetes", files, merged: mergedDir(p), apply });
      else
        process.stdout.write(
          `Wrote ${files.join(" and ")}.\nRun the shards, then the merge once every index has completed:\n  ${apply}\nThe merged result will be in ${mergedDir(p)}.\n`,
        );
    });
}
