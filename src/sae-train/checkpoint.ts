/**
 * Training checkpoints: the whole trainer state (weights, Adam moments, dead-latent counters, the step,
 * the log) in one safetensors file beside the output, written atomically. The file says in its metadata
 * that circuitscope wrote it and for which run (`fingerprint`), so `--resume` continues only the same
 * run and a finished run deletes only its own checkpoint.
 */
import { existsSync, rmSync } from "node:fs";
import { SafetensorsReader, writeSafetensors } from "../weights/safetensors.ts";
import { restoreTensors, stateTensors, type TrainState } from "./trainer.ts";

export const CHECKPOINT_FORMAT = "circuitscope-sae-train-checkpoint/1";

/** Where the checkpoint of a run writing `out` lives. */
export function checkpointPath(out: string): string {
  return `${out.replace(/[/\\]+$/, "")}.checkpoint.safetensors`;
}

export function saveCheckpoint(path: string, state: TrainState, fingerprint: string): void {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, data] of Object.entries(stateTensors(state)))
    tensors[name] = { shape: [data.length], data };
  writeSafetensors(path, tensors, "F32", {
    format: CHECKPOINT_FORMAT,
    fingerprint,
    // JSON keeps every float64 of the log and the threshold estimate exactly.
    state: JSON.stringify({ step: state.step, thresholdEma: state.thresholdEma, log: state.log }),
  });
}

/** True when `path` is a checkpoint circuitscope wrote. */
export function isOurCheckpoint(path: string): boolean {
  if (!existsSync(path)) return false;
  try {
    const r = SafetensorsReader.open(path);
    try {
      return r.metadata.format === CHECKPOINT_FORMAT;
    } finally {
      r.close();
    }
  } catch {
    return false;
  }
}

/** Loads a checkpoint of the run `fingerprint`; a checkpoint of another run is refused, naming the fix. */
export function loadCheckpoint(path: string, fingerprint: string): TrainState {
  if (!isOurCheckpoint(path))
    throw new Error(`${path} is not a circuitscope training checkpoint: nothing to resume. Drop --resume.`);
  const r = SafetensorsReader.open(path);
  try {
    if (r.metadata.fingerprint !== fingerprint)
      throw new Error(
        `The checkpoint ${path} belongs to a different run (other model, hook, corpus or settings): resume with the same command, or delete the checkpoint to start afresh.`,
      );
    const rest = JSON.parse(r.metadata.state) as Pick<TrainState, "step" | "thresholdEma" | "log">;
    // JSON has no NaN: a threshold never estimated comes back as null.
    rest.thresholdEma ??= Number.NaN;
    return restoreTensors((name) => (r.tensors.has(name) ? r.readFloat32(name) : undefined), rest);
  } finally {
    r.close();
  }
}

/** Deletes the checkpoint, only if circuitscope wrote it. */
export function removeCheckpoint(path: string): void {
  if (isOurCheckpoint(path)) rmSync(path);
}
