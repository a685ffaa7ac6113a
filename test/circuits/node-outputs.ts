import type { ActivationCache } from "../../src/model/activation-cache.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";

/** The hooks a node's output is read from: the residual entering block 0, per-head results, MLP outputs. */
export function nodeOutputHooks(name: string): boolean {
  return (
    name === "blocks.0.hook_resid_pre" || name.endsWith("attn.hook_result") || name.endsWith("hook_mlp_out")
  );
}

/**
 * A graph node's output [B, P, D] read from a run's cache, independently of src/circuits:
 * `input` = the residual entering block 0, `a{L}.h{H}` = hook_result[:, :, H], `m{L}` = hook_mlp_out.
 */
export function nodeOutput(model: HookedTransformer, cache: ActivationCache, node: string): Float32Array {
  if (node === "input") return cache.get("blocks.0.hook_resid_pre").data;
  const head = /^a(\d+)\.h(\d+)$/.exec(node);
  if (!head) return cache.get(`blocks.${node.slice(1)}.hook_mlp_out`).data;
  const { nHeads: H, dModel: D } = model.cfg;
  const r = cache.get(`blocks.${head[1]}.attn.hook_result`);
  const rows = r.shape[0] * r.shape[1];
  const h = Number(head[2]);
  const out = new Float32Array(rows * D);
  for (let row = 0; row < rows; row++)
    out.set(r.data.subarray((row * H + h) * D, (row * H + h + 1) * D), row * D);
  return out;
}
