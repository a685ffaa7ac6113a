/**
 * Which part of a split this process does: `--shard i/n` written by hand, or read from the engine that
 * started the process:
 * - `--shard auto` in a Slurm array job: shard `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of the array's
 *   task count (`SLURM_ARRAY_TASK_COUNT`, or `MAX − MIN + 1`).
 * - `--shard auto/N`: shard = the task's own number (`SLURM_ARRAY_TASK_ID`, or a Kubernetes Indexed Job's
 *   `JOB_COMPLETION_INDEX`), of N. The array's size is not used, so re-running some tasks of an array
 *   (`sbatch --array=2 …`, where Slurm says the array has one task) keeps their shard numbers; the job files
 *   circuitscope writes use this form. A Kubernetes pod is not told its Job's completions, so it needs it too.
 * Anything inconsistent is refused: a wrong index would silently duplicate one shard's work and drop another's.
 */

export interface Shard {
  /** 0-based. */
  index: number;
  count: number;
}

/** Environment variables read by `--shard auto` (a subset of process.env). */
export type EngineEnvironment = Readonly<Record<string, string | undefined>>;

const FORMS =
  "write i/n with 0 <= i < n (e.g. --shard 0/4), auto inside a Slurm array job, or auto/N inside a Kubernetes Indexed Job of N completions";

function wholeNumber(name: string, value: string): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new Error(`${name}=${JSON.stringify(value)} is not a whole number: --shard auto cannot use it.`);
  }
  return Number(value);
}

/** Parse `i/n` (0-based shard i of n). */
export function parseShard(spec: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count) throw new Error(`Bad shard "${spec}": ${FORMS}.`);
  return { index, count };
}

/** The shard of a Slurm array task, or undefined outside one. Only contiguous arrays (no `:step`). */
function slurmShard(env: EngineEnvironment): Shard | undefined {
  const id = env.SLURM_ARRAY_TASK_ID;
  if (id === undefined || id === "") return undefined;
  const task = wholeNumber("SLURM_ARRAY_TASK_ID", id);
  const min = env.SLURM_ARRAY_TASK_MIN ? wholeNumber("SLURM_ARRAY_TASK_MIN", env.SLURM_ARRAY_TASK_MIN) : 0;
  const max = env.SLURM_ARRAY_TASK_MAX
    ? wholeNumber("SLURM_ARRAY_TASK_MAX", env.SLURM_ARRAY_TASK_MAX)
    : undefined;
  const count = env.SLURM_ARRAY_TASK_COUNT
    ? wholeNumber("SLURM_ARRAY_TASK_COUNT", env.SLURM_ARRAY_TASK_COUNT)
    : undefined;
  if (count === undefined && max === undefined) {
    throw new Error(
      "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is: --shard auto cannot tell how many shards there are; write --shard auto/N.",
    );
  }
  if (count !== undefined && max !== undefined && count !== max - min + 1) {
    throw new Error(
      `The Slurm array is not contiguous (SLURM_ARRAY_TASK_MIN=${min}, MAX=${max}, COUNT=${count}): --shard auto needs --array=${min}-${min + count - 1} with no step or gaps, so that each task is one shard.`,
    );
  }
  const n = count ?? (max as number) - min + 1;
  if (task < min || task - min >= n) {
    throw new Error(`SLURM_ARRAY_TASK_ID=${task} is outside the array ${min}-${min + n - 1}.`);
  }
  return { index: task - min, count: n };
}

/**
 * `i/n`, `auto` or `auto/N`. With `auto/N` the index comes from Slurm or Kubernetes and the count from the
 * command line; where both engines' variables are set they must agree.
 */
export function resolveShard(spec: string, env: EngineEnvironment = process.env): Shard {
  const m = /^auto(?:\/(\d+))?$/.exec(spec.trim());
  if (!m) return parseShard(spec);
  const given = m[1] === undefined ? undefined : Number(m[1]);
  if (given !== undefined && given < 1)
    throw new Error(`Bad shard "${spec}": N in auto/N must be at least 1.`);
  const taskText = env.SLURM_ARRAY_TASK_ID;
  const taskNumber = taskText ? wholeNumber("SLURM_ARRAY_TASK_ID", taskText) : undefined;
  const k8sText = env.JOB_COMPLETION_INDEX;
  const k8s = k8sText ? wholeNumber("JOB_COMPLETION_INDEX", k8sText) : undefined;
  if (taskNumber !== undefined && k8s !== undefined && taskNumber !== k8s) {
    throw new Error(
      `Both SLURM_ARRAY_TASK_ID (${taskNumber}) and JOB_COMPLETION_INDEX (${k8s}) are set and disagree: unset the one that does not belong to this job.`,
    );
  }
  if (given !== undefined) {
    const index = taskNumber ?? k8s;
    if (index === undefined) throw noEngine(spec);
    const variable = taskNumber !== undefined ? "SLURM_ARRAY_TASK_ID" : "JOB_COMPLETION_INDEX";
    if (index >= given) {
      throw new Error(
        `${variable}=${index} is not below the ${given} shards of --shard ${spec}: with auto/N the task numbers are the shards 0..${given - 1} (--array=0-${given - 1}, or a Job of ${given} completions).`,
      );
    }
    return { index, count: given };
  }
  const slurm = slurmShard(env);
  if (slurm) return slurm;
  if (k8s !== undefined) {
    throw new Error(
      `JOB_COMPLETION_INDEX=${k8s} is set, but a Kubernetes Indexed Job does not tell its pods how many completions it has: write --shard auto/N with N the Job's spec.completions.`,
    );
  }
  throw noEngine(spec);
}

function noEngine(spec: string): Error {
  return new Error(
    `--shard ${spec} reads the engine's task index, but neither SLURM_ARRAY_TASK_ID (a Slurm array job) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set. Outside an engine, write --shard i/n.`,
  );
}

/**
 * The contiguous part [start, end) of `count` items that a shard takes: shard i of n gets ⌊i·count/n⌋ …
 * ⌊(i+1)·count/n⌋ − 1, so the shards in order are the items in order, each once, sizes within one.
 */
export function shardRange(count: number, shard: Shard): { start: number; end: number } {
  return {
    start: Math.floor((shard.index * count) / shard.count),
    end: Math.floor(((shard.index + 1) * count) / shard.count),
  };
}
