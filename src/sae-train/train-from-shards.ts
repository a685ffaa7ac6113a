/**
 * `sae train --activations DIR…`: training on activation shards written by `sae harvest`, streamed from
 * disk (src/sae-train/shard-reader.ts) instead of harvested in memory. The model, hook, corpus and context
 * are the harvest's (its manifest); the trained SAE is the same whatever number of shards the harvest was
 * split into.
 */
import type { Kernels } from "../tensor/kernels.ts";
import { openActivationShards, readHeldOut, shardStreamSource } from "./shard-reader.ts";
import { type TrainJobOptions, type TrainSaeResult, trainAndWrite } from "./train-sae.ts";

export interface TrainFromShardsOptions
  extends Omit<TrainJobOptions, "kernels" | "corpusName" | "modelName" | "hook" | "context"> {
  /** Shard directories, or directories holding them. */
  activations: readonly string[];
  kernels: Kernels;
  /** Chunks loaded and shuffled together (the shuffle buffer; memory holds two such windows at most). */
  bufferChunks: number;
}

export async function trainSaeFromShards(
  opts: TrainFromShardsOptions,
): Promise<TrainSaeResult & { shards: ReturnType<typeof openActivationShards>["shards"] }> {
  const shards = openActivationShards(opts.activations);
  const h = shards.settings;
  const input = shardStreamSource(shards, { seed: opts.settings.seed, bufferChunks: opts.bufferChunks });
  const result = await trainAndWrite(
    { ...opts, modelName: h.model, hook: h.hook, context: h.context, corpusName: h.corpus },
    {
      input,
      heldOutX: readHeldOut(shards),
      // The harvest's settings and size, and the shuffle buffer: a checkpoint resumes only this run.
      fingerprint: JSON.stringify({
        harvest: h,
        rows: shards.trainRows,
        bufferChunks: opts.bufferChunks,
        settings: opts.settings,
      }),
    },
  );
  return { ...result, shards: shards.shards };
}
