import type { ResolveOptions } from "../hub/resolve.ts";
import type { KernelName, Kernels } from "../tensor/kernels.ts";
import { getKernels } from "../tensor/select-kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import { tokenizerFor } from "../tokenizer/load-tokenizer.ts";
import { gpt2Tokenizer, type TokenizeOptions, type Tokenizer } from "../tokenizer/tokenizer.ts";
import { mulberry32 } from "../util/random.ts";
import type { ModelWeights } from "../weights/canonical-weights.ts";
import type { Checkpoint } from "../weights/checkpoint.ts";
import type { ModelConfig } from "../weights/config.ts";
import { mapSource, type TensorSource } from "../weights/families/index.ts";
import { ActivationCache } from "./activation-cache.ts";
import { ForwardEngine, type ForwardResult, type PastKV, type WeightParts } from "./forward.ts";
import { HookDispatcher, type HookSpec, type HookSplice, namesFilterFn } from "./hooks.ts";
import { type ModelInput, type PaddedBatch, padBatch, toTokenLists } from "./input.ts";
import { type ProcessingOptions, resolveProcessing } from "./processing.ts";
import { argmax, logSoftmax, type SamplingOptions, sampleToken } from "./sampling.ts";
import { weightPartsFrom, weightPartsOf } from "./weight-parts.ts";

export interface LoadOptions {
  backend?: KernelName | Kernels;
  /** `false` = no processing; otherwise TransformerLens defaults overridden per step. */
  processing?: false | Partial<ProcessingOptions>;
  hub?: ResolveOptions;
  /** Bytes the process may use; loading refuses early, with the figures, a model that would not fit. */
  memoryLimit?: number;
}

/**
 * Peak memory of loading a model, as a multiple of its float32 weights, measured on GPT-2-small's shape
 * (`bench --json`: load_peak_ratio 1.27; docs/benchmarks.md), rounded up where glibc's malloc_trim is not
 * there to return what onnxruntime frees (1.47): the kernels take the model block by block, so only one
 * block is ever held twice, plus the unembedding while onnxruntime prepacks it.
 */
const LOAD_PEAK_RATIO: Record<KernelName, number> = { onnx: 1.5, reference: 1.1 };

export interface RunOptions extends TokenizeOptions {
  fwdHooks?: readonly HookSpec[];
  /** Modules spliced into hook points for this run (SAEs: see src/sae/attach.ts). */
  splices?: readonly HookSplice[];
  /** Run from this block, given `residual` [batch, pos, d_model] (the block's resid_pre). */
  startAtLayer?: number;
  residual?: Tensor;
  /** With `startAtLayer` and a padded batch: each prompt's real length. */
  lengths?: readonly number[];
  /** Stop before this block; the result's `residual` is its resid_pre. */
  stopAtLayer?: number;
  /** "all" positions (default), each prompt's "last" real position, or "none". */
  logits?: "all" | "last" | "none";
}

export interface CacheOptions extends RunOptions {
  namesFilter?: readonly string[] | ((name: string) => boolean);
}

export interface RunOutput {
  logits: Tensor | null;
  residual: Tensor;
  lengths: number[];
  batch: PaddedBatch | null;
}

export interface GenerateOptions extends SamplingOptions, TokenizeOptions {
  /** Hooks and spliced modules (SAEs) run at every step, on the positions that step computes. */
  fwdHooks?: readonly HookSpec[];
  splices?: readonly HookSplice[];
  maxNewTokens?: number;
  seed?: number;
  /** Stop when the model emits its end-of-text token (default true). */
  stopAtEos?: boolean;
}

/**
 * TransformerLens' HookedTransformer for every supported family (GPT-2, Llama, Mistral, Qwen2): hooked
 * forward, caching, patching hooks, partial runs and generation over one set of processed weights.
 */
export class HookedTransformer {
  private readonly engine: ForwardEngine;
  readonly cfg: ModelConfig;
  /** Bytes the process may use (LoadOptions.memoryLimit); gradient work sizes itself from it. */
  memoryLimit?: number;

  /**
   * `weights`: converted and processed weights, or engine parts (WeightParts, as loading makes them).
   */
  constructor(
    cfg: ModelConfig,
    weights: ModelWeights | WeightParts,
    readonly kernels: Kernels,
    readonly processing: ProcessingOptions,
    readonly source: string,
    readonly tokenizer: Tokenizer = gpt2Tokenizer(),
  ) {
    this.cfg = cfg;
    const parts = "embedding" in weights ? weights : weightPartsOf(weights);
    this.engine = new ForwardEngine(this.cfg, parts, kernels);
  }

  /** The model's weights (matrices the kernels hold are read-only views onto them). */
  get weights(): ModelWeights {
    return this.engine.weights;
  }

  /** A loaded checkpoint (its directory also holds the tokenizer files of families that need them). */
  static fromCheckpoint(ckpt: Checkpoint, opts: LoadOptions = {}): HookedTransformer {
    return HookedTransformer.fromSource(ckpt.config, mapSource(ckpt.tensors, ckpt.dir), {
      ...opts,
      dir: ckpt.dir,
    });
  }

  /** A local checkpoint directory, or a hub id (`gpt2`, `openai-community/gpt2`, ...) via the Hugging Face cache. */
  static async fromPretrained(nameOrPath: string, opts: LoadOptions = {}): Promise<HookedTransformer> {
    // Loaded on demand: most library users hand in a checkpoint or a directory, not a hub id.
    const { resolveModel } = await import("../hub/resolve.ts");
    const { openCheckpoint } = await import("../weights/checkpoint.ts");
    const dir = await resolveModel(nameOrPath, opts.hub);
    const backend = typeof opts.backend === "object" ? opts.backend.name : (opts.backend ?? "onnx");
    const peakRatio = LOAD_PEAK_RATIO[backend as KernelName] ?? LOAD_PEAK_RATIO.onnx;
    const ckpt = openCheckpoint(dir, { memory: { peakRatio, limitBytes: opts.memoryLimit } });
    try {
      return HookedTransformer.fromSource(ckpt.config, ckpt.source, { ...opts, dir });
    } finally {
      ckpt.close();
    }
  }

  /** Converts, processes and hands to the kernels one part at a time, as `src` reads the tensors. */
  private static fromSource(
    cfg: ModelConfig,
    src: TensorSource,
    opts: LoadOptions & { dir: string },
  ): HookedTransformer {
    const processing = resolveProcessing(opts.processing);
    const tokenizer = tokenizerFor(opts.dir, cfg);
    const kernels = typeof opts.backend === "object" ? opts.backend : getKernels(opts.backend ?? "onnx");
    const model = new HookedTransformer(
      cfg,
      weightPartsFrom(src, cfg, processing),
      kernels,
      processing,
      opts.dir,
      tokenizer,
    );
    model.memoryLimit = opts.memoryLimit;
    return model;
  }

  dispose(): void {
    this.engine.dispose();
  }

  /** The forward engine (kernel ops per block), for the backward pass and fast patching. */
  get forwardEngine(): ForwardEngine {
    return this.engine;
  }

  // ---- tokenization -------------------------------------------------------------------------------
  toTokens(text: string, opts?: TokenizeOptions): number[] {
    return this.tokenizer.toTokens(text, opts);
  }
  toStrTokens(input: string | readonly number[], opts?: TokenizeOptions): string[] {
    return this.tokenizer.toStrTokens(input, opts);
  }
  toSingleToken(text: string): number {
    return this.tokenizer.toSingleToken(text);
  }
  toString(tokens: readonly number[]): string {
    return this.tokenizer.decode(tokens);
  }
  /** Token lists → a right-padded batch, validated against the context length and vocabulary. */
  prepare(input: ModelInput, opts: TokenizeOptions = {}): PaddedBatch {
    return padBatch(toTokenLists(input, this.tokenizer, opts), this.cfg.nCtx, this.cfg.dVocab);
  }

  // ---- running ------------------------------------------------------------------------------------
  /** Logits [batch, pos, d_vocab] (or [batch, 1, d_vocab] with `logits: "last"`). */
  run(input: ModelInput | Tensor, opts: RunOptions = {}): Tensor {
    const out = this.forward(
      input,
      opts,
      new HookDispatcher(this.cfg, opts.fwdHooks ?? [], null, opts.splices),
    );
    if (!out.logits)
      throw new Error("This run computed no logits (stopAtLayer or logits: 'none'); use forward()");
    return out.logits;
  }

  runWithHooks(input: ModelInput | Tensor, opts: RunOptions): Tensor {
    return this.run(input, opts);
  }

  runWithCache(input: ModelInput | Tensor, opts: CacheOptions = {}): RunOutput & { cache: ActivationCache } {
    const filter = namesFilterFn(opts.namesFilter, this.cfg, opts.splices);
    const hooks = new HookDispatcher(this.cfg, opts.fwdHooks ?? [], filter, opts.splices);
    const out = this.forward(input, opts, hooks);
    return { ...out, cache: new ActivationCache(hooks.cache, out.lengths, this.cfg) };
  }

  /** Full control: a fresh hook dispatcher per call means no hook outlives it, even when one throws. */
  forward(input: ModelInput | Tensor, opts: RunOptions, hooks: HookDispatcher): RunOutput {
    const logits = opts.logits ?? "all";
    let res: ForwardResult;
    let batch: PaddedBatch | null = null;
    let lengths: number[];
    if (input instanceof Tensor) {
      if (input.ndim !== 3 || input.shape[2] !== this.cfg.dModel) {
        throw new Error(
          `A residual input must be [batch, pos, ${this.cfg.dModel}], got [${input.shape.join(", ")}]`,
        );
      }
      const [B, P] = input.shape;
      lengths = opts.lengths ? [...opts.lengths] : new Array(B).fill(P);
      res = this.engine.forward({
        batch: B,
        pos: P,
        residual: input.data,
        startAtLayer: opts.startAtLayer ?? 0,
        stopAtLayer: opts.stopAtLayer,
        hooks,
        logits,
        lengths,
      });
    } else {
      if (opts.startAtLayer)
        throw new Error("startAtLayer needs a residual Tensor input, not text or tokens");
      batch = this.prepare(input, opts);
      lengths = batch.lengths;
      res = this.engine.forward({
        batch: batch.batch,
        pos: batch.pos,
        tokens: batch.tokens,
        stopAtLayer: opts.stopAtLayer,
        hooks,
        logits,
        lengths,
      });
    }
    return { logits: res.logits, residual: res.residual, lengths, batch };
  }

  /**
   * Mean next-token cross-entropy over each prompt's real positions (TransformerLens `return_type="loss"`),
   * and the per-token losses [batch][pos - 1].
   */
  loss(input: ModelInput, opts: RunOptions = {}): { loss: number; perToken: number[][] } {
    const batch = this.prepare(input, opts);
    const logits = this.run(batch.tokenLists, { ...opts, logits: "all" });
    const V = this.cfg.dVocab;
    let total = 0;
    let count = 0;
    const perToken = batch.tokenLists.map((toks, b) => {
      const row: number[] = [];
      for (let p = 0; p + 1 < toks.length; p++) {
        const off = (b * batch.pos + p) * V;
        const lp = logSoftmax(logits.data.subarray(off, off + V));
        row.push(-lp[toks[p + 1]]);
      }
      total += row.reduce((a, x) => a + x, 0);
      count += row.length;
      return row;
    });
    if (count === 0) throw new Error("Loss needs prompts of at least 2 tokens");
    return { loss: total / count, perToken };
  }

  /**
   * Sampling with a key/value cache: the prompt runs once, then each step runs one position against the
   * cached keys and values of all earlier positions.
   */
  generate(
    prompt: string | readonly number[],
    opts: GenerateOptions = {},
  ): { tokens: number[]; text: string; newTokens: number[] } {
    const maxNew = opts.maxNewTokens ?? 20;
    const rng = mulberry32(opts.seed ?? 0);
    const tokens = typeof prompt === "string" ? this.toTokens(prompt, opts) : [...prompt];
    if (tokens.length + maxNew > this.cfg.nCtx) {
      throw new Error(
        `Prompt (${tokens.length} tokens) plus ${maxNew} new tokens exceeds the context of ${this.cfg.nCtx}: lower maxNewTokens or shorten the prompt.`,
      );
    }
    const stepHooks = () => new HookDispatcher(this.cfg, opts.fwdHooks ?? [], null, opts.splices);
    const pick = (row: Float32Array) => (opts.temperature === 0 ? argmax(row) : sampleToken(row, opts, rng));
    let step = this.engine.forward({
      batch: 1,
      pos: tokens.length,
      tokens: Int32Array.from(tokens),
      hooks: stepHooks(),
      logits: "last",
      keepKV: true,
    });
    const newTokens: number[] = [];
    for (let i = 0; i < maxNew; i++) {
      const next = pick(step.logits!.data);
      newTokens.push(next);
      tokens.push(next);
      if ((opts.stopAtEos ?? true) && next === this.tokenizer.eosToken) break;
      if (i === maxNew - 1) break;
      const past: PastKV[] = step.presentKV!;
      step = this.engine.forward({
        batch: 1,
        pos: 1,
        pastLen: tokens.length - 1,
        past,
        tokens: Int32Array.of(next),
        hooks: stepHooks(),
        logits: "last",
        keepKV: true,
      });
    }
    return { tokens, newTokens, text: this.tokenizer.decode(tokens) };
  }
}
