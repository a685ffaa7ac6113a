/**
 * Checks that need the model's shape or the tokenizer (JSON schemas cover types and sizes): prompts
 * must fit the context, answers must be single tokens, layers and heads must exist. Each error says
 * which field is wrong and how to fix it.
 */
import { sameAnswerProblem } from "../analysis/answer-metrics.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ModelShape } from "../weights/config.ts";
import { ApiError } from "./api-error.ts";

/** Most attention weights one all-heads /api/attention answer holds (2^20: a few MB of JSON). */
export const MAX_ALL_HEADS_VALUES = 1 << 20;

/**
 * Most tokens of a graph prompt: a graph runs one backward pass per active feature, and the features grow
 * with the prompt, so the explorer keeps graphs to prompts a queue slot can finish.
 */
export const MAX_GRAPH_TOKENS = 64;

export class RequestChecks {
  constructor(
    private readonly cfg: ModelShape,
    readonly tokenizer: Tokenizer,
  ) {}

  /** Tokens of a prompt (BOS prepended, as every model run here does), which must fit the context. */
  promptTokens(prompt: string, field = "prompt"): number[] {
    const tokens = this.tokenizer.toTokens(prompt);
    if (tokens.length > this.cfg.nCtx) {
      throw new ApiError(
        400,
        `The ${field} is ${tokens.length} tokens (with the BOS token prepended) but the model's context is ${this.cfg.nCtx} tokens.`,
        `Shorten the ${field} to at most ${this.cfg.nCtx - 1} tokens of text.`,
      );
    }
    return tokens;
  }

  /** A graph prompt's tokens: within the context and at most MAX_GRAPH_TOKENS. */
  graphPromptTokens(prompt: string): number[] {
    const tokens = this.promptTokens(prompt);
    if (tokens.length > MAX_GRAPH_TOKENS) {
      throw new ApiError(
        400,
        `The prompt is ${tokens.length} tokens (with the BOS token prepended); the explorer computes graphs of at most ${MAX_GRAPH_TOKENS}.`,
        `Shorten the prompt, or compute its graph offline: circuitscope graph --model M --transcoders DIR --prompt T --html graph.html`,
      );
    }
    return tokens;
  }

  singleToken(text: string, field: string): number {
    try {
      return this.tokenizer.toSingleToken(text);
    } catch (err) {
      // The tokenizer says "<what it is>. <how to fix it>": keep both, split into message and fix.
      const [problem, fix] = (err as Error).message.split(/(?<=not a single token\.)\s*/);
      throw new ApiError(400, `The ${field} ${problem}`, fix);
    }
  }

  /** Both tokens, refused with a 400 when they are the same one (nothing to measure). */
  answerAndWrong(answer: string, wrong: string): { answer: number; wrong: number } {
    const tokens = {
      answer: this.singleToken(answer, "answer"),
      wrong: this.singleToken(wrong, "wrong token"),
    };
    const same = sameAnswerProblem(tokens.answer, tokens.wrong);
    if (same) throw new ApiError(400, same.message, same.fix);
    return tokens;
  }

  // Negative and fractional numbers are refused here too, not only by the request schemas (minimum 0): an
  // index that reached the model unchecked would address the wrong slice.
  layer(layer: number, field = "layer"): void {
    if (!isIndex(layer) || layer >= this.cfg.nLayers) {
      throw new ApiError(
        400,
        `${field} ${layer} does not exist: the model has ${this.cfg.nLayers} layers.`,
        `Use a layer from 0 to ${this.cfg.nLayers - 1}.`,
      );
    }
  }

  head(head: number): void {
    if (!isIndex(head) || head >= this.cfg.nHeads) {
      throw new ApiError(
        400,
        `head ${head} does not exist: the model has ${this.cfg.nHeads} heads per layer.`,
        `Use a head from 0 to ${this.cfg.nHeads - 1}.`,
      );
    }
  }

  /**
   * Every head's pattern is nLayers · nHeads · n² numbers; past MAX_ALL_HEADS_VALUES (a 12 × 12-head GPT-2
   * at 85 tokens) the answer would be tens of megabytes of JSON, so it is refused before the model runs.
   */
  allHeadsFit(nTokens: number): void {
    const heads = this.cfg.nLayers * this.cfg.nHeads;
    if (heads * nTokens * nTokens <= MAX_ALL_HEADS_VALUES) return;
    const most = Math.floor(Math.sqrt(MAX_ALL_HEADS_VALUES / heads));
    throw new ApiError(
      400,
      `Every head's pattern for a ${nTokens}-token prompt is ${heads} × ${nTokens} × ${nTokens} = ${heads * nTokens * nTokens} weights, more than the ${MAX_ALL_HEADS_VALUES} one answer may hold.`,
      `Shorten the prompt to at most ${most - 1} tokens of text for the all-heads grid, or ask for one head (layer and head).`,
    );
  }

  neuron(neuron: number): void {
    if (!isIndex(neuron) || neuron >= this.cfg.dMlp) {
      throw new ApiError(
        400,
        `neuron ${neuron} does not exist: each MLP layer has ${this.cfg.dMlp} neurons.`,
        `Use a neuron from 0 to ${this.cfg.dMlp - 1}.`,
      );
    }
  }

  /** A layer or neuron number from the URL path (digits only), checked against the model's size. */
  pathIndex(text: string, field: "layer" | "neuron"): number {
    if (!/^\d+$/.test(text)) {
      const count = field === "layer" ? this.cfg.nLayers : this.cfg.dMlp;
      throw new ApiError(
        400,
        `The ${field} in the URL, ${JSON.stringify(text)}, is not a whole number.`,
        `Use a ${field} from 0 to ${count - 1}, e.g. /api/neurons/0/12.`,
      );
    }
    const n = Number(text);
    if (field === "layer") this.layer(n);
    else this.neuron(n);
    return n;
  }

  /** Clean and corrupted prompts are compared position by position, so they must tokenize to the same length. */
  samePositions(clean: number[], corrupted: number[]): void {
    if (clean.length !== corrupted.length) {
      throw new ApiError(
        400,
        `The clean prompt is ${clean.length} tokens but the corrupted prompt is ${corrupted.length}.`,
        "Patching compares the prompts position by position: change words for words of the same token count.",
      );
    }
    if (clean.every((t, i) => t === corrupted[i])) {
      throw new ApiError(
        400,
        "The clean and corrupted prompts are identical.",
        "Patching restores the difference between them: make the corrupted prompt differ.",
      );
    }
  }
}

/** A whole number from 0: the only indices the API takes (no counting from the end). */
function isIndex(v: number): boolean {
  return Number.isInteger(v) && v >= 0;
}
