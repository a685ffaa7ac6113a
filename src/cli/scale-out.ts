/**
 * Sharded work on the engines clusters run — Slurm array jobs and Kubernetes Indexed Jobs — described, not
 * scheduled: circuitscope writes the job files (an array of shards, then a merge that depends on it) and the
 * engine does the scheduling, retries and pre-emption. Each shard is the same circuitscope command with
 * `--shard auto/N` (the task's number is the shard) and its own output directory, run with `--resume` so that a re-run after a failure or a
 * requeue continues its own checkpoint and touches nothing else; the merge refuses missing or mismatched shards.
 *
 * Layout of the work directory (`--out`, on storage every node shares; every path absolute in the job files):
 *   shards/<i>/   shard i's output      merged/   the merged result     logs/   Slurm's logs
 * and of the job directory (Slurm: the work directory; Kubernetes: `--manifests`, on this machine):
 *   scale-out.json   what was written, for what (the marker that lets a later call replace the job files)
 *   shards.sbatch, merge.sbatch (Slurm)   or   job.yaml, merge-job.yaml (Kubernetes)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { UsageError } from "./common.ts";

/** A command that can be split into shards and merged. */
interface ShardedCommand {
  /** Flags circuitscope sets on each shard itself; the user must not pass them. */
  reserved: readonly string[];
  /** Options the command cannot run without (checked before anything is written). */
  required: readonly string[];
  /** The merge command's arguments; `mergeOptions` holds the options given for it (`--merge-options`), split into words. */
  merge(shardDirs: readonly string[], mergedDir: string, mergeOptions: readonly string[]): string[];
  /** The command that merges (its options are checked like the shard command's), and whether it needs `--merge-options`. */
  mergeCommand?: { words: readonly string[]; needsOptions: string; reserved: readonly string[] };
}

const SHARDED = new Map<string, ShardedCommand>([
  [
    // Neuron indexes, and with --sae feature indexes: one store format, one merge.
    "index",
    {
      reserved: ["--shard", "--out", "-o", "--resume", "--json"],
      required: ["--corpus"],
      merge: (shardDirs, mergedDir) => ["index-merge", ...shardDirs, "--out", mergedDir],
    },
  ],
  [
    // Patching over a pairs file: each shard's per-pair values, then their exact merge.
    "patch",
    {
      reserved: ["--shard", "--out", "-o", "--resume", "--json", "--html"],
      required: ["--pairs"],
      merge: (shardDirs, mergedDir) => ["patch-merge", ...shardDirs, "--out", mergedDir],
    },
  ],
  [
    // Circuit edge scores over a pairs file: each shard's per-pair scores, then their mean.
    "circuit",
    {
      reserved: ["--shard", "--out", "-o", "--resume", "--json", "--html", "--svg"],
      required: ["--pairs"],
      merge: (shardDirs, mergedDir) => ["circuit-merge", ...shardDirs, "--out", mergedDir],
    },
  ],
  [
    // Attribution graphs over a prompt file: each shard's graphs, then the set and its index.
    "graph",
    {
      reserved: ["--shard", "--out", "-o", "--resume", "--json", "--html", "--raw", "--prompt", "-p"],
      required: ["--prompts", "--transcoders"],
      merge: (shardDirs, mergedDir) => ["graph-merge", ...shardDirs, "--out", mergedDir],
    },
  ],
  [
    // Activation shards, then one training run streaming them (its options: --merge-options "--d-sae 512 …").
    "sae harvest",
    {
      reserved: ["--shard", "--out", "-o", "--resume", "--json"],
      required: ["--corpus", "--hook"],
      merge: (shardDirs, mergedDir, mergeOptions) => [
        "sae",
        "train",
        "--activations",
        ...shardDirs,
        "--out",
        mergedDir,
        ...mergeOptions,
      ],
      mergeCommand: {
        words: ["sae", "train"],
        needsOptions:
          'the training job after the shards needs its sae train options: add --merge-options "--d-sae N --k K --tokens T …"',
        reserved: ["--activations", "--out", "-o", "--model", "-m", "--hook", "--corpus", "-c", "--context"],
      },
    },
  ],
]);

export const SHARDABLE_COMMANDS = [...SHARDED.keys()];

export interface ScaleOutPlan {
  /** The circuitscope command (one or two words: "index", "sae harvest") and its arguments, as the user wrote them (without shard or output flags). */
  command: string;
  args: string[];
  /** The merge command's own options (`--merge-options`), split into words. */
  mergeOptions: string[];
  shards: number;
  /** Absolute work directory, as the nodes see it. */
  workDir: string;
  /** Absolute directory the job files are written to, on this machine (the work directory for Slurm). */
  jobDir: string;
  /** Absolute directory the shards' relative paths are read from. */
  cwd: string;
  /** How to start circuitscope on the cluster's nodes, one argv. */
  launcher: string[];
}

export const MARKER = "scale-out.json";
const MARKER_FORMAT = "circuitscope-scale-out";

/** Checks the command, its flags and the work directory; throws a UsageError naming the fix. */
export function planScaleOut(opts: {
  commandLine: readonly string[];
  /** Options for the merge command (`--merge-options`), as one string of words. */
  mergeOptions?: string;
  shards: number;
  out: string;
  cwd?: string;
  launcher: string[];
  /** Where job files go (default: the work directory). */
  jobDir?: string;
}): ScaleOutPlan {
  // A two-word command ("sae harvest") when the first two words name one, else the first word.
  const twoWords = opts.commandLine.slice(0, 2).join(" ");
  const words = SHARDED.has(twoWords) ? 2 : 1;
  const command = opts.commandLine.slice(0, words).join(" ");
  const args = opts.commandLine.slice(words);
  if (!command) {
    throw new UsageError(
      `No command to shard: write the circuitscope command after the scale-out options, e.g. circuitscope slurm --shards 4 --out work index --model stories260k --corpus stories.jsonl (shardable: ${SHARDABLE_COMMANDS.join(", ")}).`,
    );
  }
  const spec = SHARDED.get(command);
  if (!spec) {
    throw new UsageError(
      `"${command}" cannot be sharded yet; shardable commands: ${SHARDABLE_COMMANDS.join(", ")}.`,
    );
  }
  const flags = args.map((a) => a.split("=")[0]);
  const reserved = flags.filter((f) => spec.reserved.includes(f));
  if (reserved.length > 0) {
    throw new UsageError(
      `${[...new Set(reserved)].join(", ")} is set by circuitscope for each shard (--shard auto/N, --out WORK/shards/i, --resume): leave it out of the ${command} command; the work directory is the scale-out command's --out.`,
    );
  }
  const missing = spec.required.filter((f) => !flags.includes(f));
  if (missing.length > 0) throw new UsageError(`${command} needs ${missing.join(", ")} to be sharded.`);
  const mergeOptions = opts.mergeOptions?.trim() ? opts.mergeOptions.trim().split(/\s+/) : [];
  if (spec.mergeCommand) {
    if (mergeOptions.length === 0) throw new UsageError(`${command}: ${spec.mergeCommand.needsOptions}.`);
    const taken = mergeOptions
      .map((a) => a.split("=")[0])
      .filter((f) => spec.mergeCommand!.reserved.includes(f));
    if (taken.length > 0)
      throw new UsageError(
        `--merge-options: ${[...new Set(taken)].join(", ")} is set by circuitscope for the ${spec.mergeCommand.words.join(" ")} job (the shards, their harvest's model, hook and corpus, and WORK/merged): leave it out.`,
      );
  } else if (mergeOptions.length > 0) {
    throw new UsageError(
      `--merge-options has no effect with ${command}: its merge takes no options. Drop it.`,
    );
  }
  if (!Number.isInteger(opts.shards) || opts.shards < 1) {
    throw new UsageError(`--shards must be a whole number of at least 1, got ${opts.shards}.`);
  }
  const cwd = resolve(opts.cwd ?? process.cwd());
  const workDir = resolve(cwd, opts.out);
  const jobDir = opts.jobDir === undefined ? workDir : resolve(opts.jobDir);
  checkWorkDir(jobDir);
  return {
    command,
    args: [...args],
    mergeOptions,
    shards: opts.shards,
    workDir,
    jobDir,
    cwd,
    launcher: opts.launcher,
  };
}

/** A job directory must be new, empty, or one that circuitscope made for scale-out (its job files are replaced). */
function checkWorkDir(workDir: string): void {
  if (!existsSync(workDir)) return;
  const entries = readdirSync(workDir);
  if (entries.length === 0) return;
  const marker = join(workDir, MARKER);
  let ours = false;
  try {
    ours = JSON.parse(readFileSync(marker, "utf8")).format === MARKER_FORMAT;
  } catch {
    ours = false;
  }
  if (!ours) {
    throw new UsageError(
      `${workDir} already exists and was not written by circuitscope's scale-out (no ${MARKER}): choose a new --out directory; nothing in it was touched.`,
    );
  }
}

export function shardDir(plan: ScaleOutPlan, i: number): string {
  return join(plan.workDir, "shards", String(i));
}

export function mergedDir(plan: ScaleOutPlan): string {
  return join(plan.workDir, "merged");
}

/** A word of a job's command line: literal text, or shell text written as it is (a variable's expansion). */
type Word = string | { shell: string };

function shardArgs(plan: ScaleOutPlan, shard: string, out: Word): Word[] {
  return [...plan.command.split(" "), ...plan.args, "--shard", shard, "--out", out, "--resume"];
}

/** The merge job's circuitscope arguments. */
export function mergeArgs(plan: ScaleOutPlan): string[] {
  const dirs = Array.from({ length: plan.shards }, (_, i) => shardDir(plan, i));
  return SHARDED.get(plan.command)!.merge(dirs, mergedDir(plan), plan.mergeOptions);
}

/** POSIX shell single-quoting: every byte stays literal. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface SlurmOptions {
  partition?: string;
  time?: string;
  mem?: string;
  cpusPerTask?: number;
  account?: string;
}

const SLURM_VALUE = /^[A-Za-z0-9_.:+-]+$/;

function sbatchHeader(lines: Record<string, string | number | undefined>): string[] {
  return Object.entries(lines)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `#SBATCH --${k}=${v}`);
}

/** The array job's and the merge job's scripts. */
export function slurmScripts(plan: ScaleOutPlan, slurm: SlurmOptions): { shards: string; merge: string } {
  for (const [flag, value] of Object.entries({
    partition: slurm.partition,
    time: slurm.time,
    mem: slurm.mem,
    account: slurm.account,
  })) {
    if (value !== undefined && !SLURM_VALUE.test(value)) {
      throw new UsageError(`Bad --${flag} "${value}": Slurm takes letters, digits and _ . : + - here.`);
    }
  }
  const logs = join(plan.workDir, "logs");
  const common = {
    partition: slurm.partition,
    time: slurm.time,
    mem: slurm.mem,
    account: slurm.account,
    "cpus-per-task": slurm.cpusPerTask,
    chdir: shellQuote(plan.cwd),
  };
  const run = (argv: Word[]) =>
    `exec ${[...plan.launcher, ...argv].map((w) => (typeof w === "string" ? shellQuote(w) : w.shell)).join(" ")}`;
  const prologue = [
    "set -euo pipefail",
    "# Plain progress lines in the job's log (no terminal here).",
    "export CIRCUITSCOPE_PROGRESS=lines",
  ];
  const shards = [
    "#!/bin/bash",
    `# circuitscope ${plan.command}, ${plan.shards} shards: one array task each. A task that fails or is requeued`,
    "# re-runs with --resume and continues its own checkpoint; nothing else is touched.",
    ...sbatchHeader({
      "job-name": `circuitscope-${plan.command.replace(/ /g, "-")}`,
      array: `0-${plan.shards - 1}`,
      output: shellQuote(join(logs, "shard-%a.log")),
      ...common,
    }),
    "#SBATCH --requeue",
    ...prologue,
    // The shard is the task's own number (auto/N), so a task re-run alone keeps it; its directory is named by it.
    run(
      shardArgs(plan, `auto/${plan.shards}`, {
        shell: `${shellQuote(join(plan.workDir, "shards"))}/"$SLURM_ARRAY_TASK_ID"`,
      }),
    ),
    "",
  ].join("\n");
  const merge = [
    "#!/bin/bash",
    `# Merges the ${plan.shards} shards of circuitscope ${plan.command} once every array task has succeeded (afterok).`,
    ...sbatchHeader({
      "job-name": `circuitscope-${plan.command.replace(/ /g, "-")}-merge`,
      output: shellQuote(join(logs, "merge.log")),
      ...common,
    }),
    ...prologue,
    run(mergeArgs(plan)),
    "",
  ].join("\n");
  return { shards, merge };
}

export interface KubernetesOptions {
  image: string;
  /** PersistentVolumeClaim holding the work directory (shared by every pod). */
  claim: string;
  /** Where the claim is mounted; the work directory and the command's paths must lie under it. */
  mountPath: string;
  memory?: string;
  cpu?: string;
  parallelism?: number;
  /** Retries per shard (backoffLimitPerIndex). */
  retries: number;
}

const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** An Indexed Job for the shards and a Job for the merge, as plain objects (written as YAML). */
export function kubernetesJobs(
  plan: ScaleOutPlan,
  k8s: KubernetesOptions,
): { shards: Record<string, unknown>; merge: Record<string, unknown> } {
  const name = `circuitscope-${plan.command.replace(/ /g, "-")}`;
  if (!K8S_NAME.test(name)) throw new UsageError(`Cannot name a Kubernetes Job after "${plan.command}".`);
  const mount = resolve(k8s.mountPath);
  if (!(plan.workDir === mount || plan.workDir.startsWith(`${mount}/`))) {
    throw new UsageError(
      `The work directory ${plan.workDir} is not under the volume's mount path ${mount}: every pod must see it, so write --out under --mount-path.`,
    );
  }
  const container = (argv: Word[]) => ({
    name: "circuitscope",
    image: k8s.image,
    workingDir: plan.cwd,
    command: [...plan.launcher, ...argv].map((w) => (typeof w === "string" ? w : w.shell)),
    env: [{ name: "CIRCUITSCOPE_PROGRESS", value: "lines" }],
    ...(k8s.memory || k8s.cpu
      ? {
          resources: {
            requests: { ...(k8s.memory ? { memory: k8s.memory } : {}), ...(k8s.cpu ? { cpu: k8s.cpu } : {}) },
            ...(k8s.memory ? { limits: { memory: k8s.memory } } : {}),
          },
        }
      : {}),
    volumeMounts: [{ name: "work", mountPath: mount }],
  });
  const podSpec = (argv: Word[]) => ({
    restartPolicy: "Never",
    containers: [container(argv)],
    volumes: [{ name: "work", persistentVolumeClaim: { claimName: k8s.claim } }],
  });
  // Kubernetes expands $(JOB_COMPLETION_INDEX) in a container's command from the variable the Job controller sets.
  const shardOut = { shell: `${join(plan.workDir, "shards")}/$(JOB_COMPLETION_INDEX)` };
  const shards = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: `${name}-shards`, labels: { app: "circuitscope" } },
    spec: {
      completionMode: "Indexed",
      completions: plan.shards,
      parallelism: k8s.parallelism ?? plan.shards,
      backoffLimitPerIndex: k8s.retries,
      template: {
        metadata: { labels: { app: "circuitscope" } },
        spec: podSpec(shardArgs(plan, `auto/${plan.shards}`, shardOut)),
      },
    },
  };
  const merge = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: `${name}-merge`, labels: { app: "circuitscope" } },
    spec: {
      backoffLimit: k8s.retries,
      template: { metadata: { labels: { app: "circuitscope" } }, spec: podSpec(mergeArgs(plan)) },
    },
  };
  return { shards, merge };
}

/** Writes the job files and the marker (atomically, each); returns their paths. */
export function writeJobFiles(
  plan: ScaleOutPlan,
  engine: "slurm" | "kubernetes",
  files: Record<string, string>,
): string[] {
  mkdirSync(plan.jobDir, { recursive: true });
  if (engine === "slurm") mkdirSync(join(plan.workDir, "logs"), { recursive: true });
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const path = join(plan.jobDir, name);
    writeFileAtomic(path, text);
    written.push(path);
  }
  const marker = {
    format: MARKER_FORMAT,
    engine,
    command: plan.command,
    args: plan.args,
    mergeOptions: plan.mergeOptions,
    shards: plan.shards,
    cwd: plan.cwd,
    files: Object.keys(files),
  };
  writeFileAtomic(join(plan.jobDir, MARKER), `${JSON.stringify(marker, null, 2)}\n`);
  return written;
}

export function toYaml(doc: Record<string, unknown>): string {
  return stringify(doc, { lineWidth: 0 });
}
