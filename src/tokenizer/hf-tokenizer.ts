/**
 * Tokenizers from a checkpoint's `tokenizer.json` + `tokenizer_config.json`, through Hugging Face's
 * pure-JS `@huggingface/tokenizers` (SentencePiece-style BPE with byte fallback as in Llama 1-2 and
 * stories260k; byte-level BPE as in Llama 3, SmolLM, Qwen2).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from "../weights/checkpoint-files.ts";
import { BYTE_OF_CHAR, bytesToText, tokenText } from "./format-token.ts";
import { BaseTokenizer } from "./tokenizer.ts";

/** Text no tokenizer merges with what follows it, to tokenize `text` as it would be after other text. */
const ANCHOR = "\n";

export class HfTokenizer extends BaseTokenizer {
  readonly bosToken: number;
  readonly eosToken: number;
  readonly vocabSize: number;
  protected override readonly prependsBosByDefault: boolean;
  private readonly lib: HfLibTokenizer;
  private readonly byteLevel: boolean;
  private readonly specialIds: Set<number>;

  /**
   * `modelVocab`: the rows of the model's embedding, when it pads its vocabulary past the tokenizer's (Pythia:
   * 50304 rows for 50277 tokens; Qwen2.5 likewise). Those ids are valid model outputs with no token: they
   * are labelled `<padding ID>` and left out of decoded text (as Hugging Face's decode skips them).
   */
  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    source: string,
    modelVocab = 0,
  ) {
    super();
    // An empty vocabulary would still load (the added special tokens make a vocabulary of a few), and then
    // fail on the first prompt with an out-of-range token id: refuse it here, naming the file.
    const vocab = (tokenizerJson.model as { vocab?: unknown } | undefined)?.vocab;
    const nVocab = Array.isArray(vocab)
      ? vocab.length
      : vocab && typeof vocab === "object"
        ? Object.keys(vocab).length
        : 0;
    if (nVocab === 0)
      throw new Error(
        `Invalid tokenizer in ${source}: its vocabulary (model.vocab) is empty — copy tokenizer.json from the model's Hugging Face repo again, or re-download the model (circuitscope download MODEL)`,
      );
    this.lib = new HfLibTokenizer(tokenizerJson, tokenizerConfig);
    this.vocabSize = Math.max(this.lib.get_vocab(true).size, modelVocab);
    const idOf = (field: string): number | undefined => {
      const v = tokenizerConfig[field];
      const text = typeof v === "string" ? v : (v as { content?: unknown } | null)?.content;
      if (typeof text !== "string") return undefined;
      const id = this.lib.token_to_id(text);
      if (id === undefined) {
        throw new Error(
          `Invalid tokenizer in ${source}: ${field} ${JSON.stringify(text)} is not in the vocabulary — re-download the tokenizer files`,
        );
      }
      return id;
    };
    const bos = idOf("bos_token");
    const eos = idOf("eos_token");
    // With no BOS token (e.g. Qwen2) the end-of-text token stands in, as GPT-2's <|endoftext|> does.
    const stand = bos ?? eos;
    if (stand === undefined) {
      throw new Error(
        `Invalid tokenizer in ${source}: tokenizer_config.json names neither bos_token nor eos_token — re-download it`,
      );
    }
    this.bosToken = stand;
    this.eosToken = eos ?? stand;
    // BOS as the tokenizer config says (add_bos_token), else as its post-processor does.
    const addBos = tokenizerConfig.add_bos_token;
    this.prependsBosByDefault =
      bos !== undefined && (typeof addBos === "boolean" ? addBos : this.lib.encode("a").ids[0] === bos);
    this.specialIds = new Set(this.lib.get_added_tokens_decoder().keys());
    const decoder = (tokenizerJson.decoder ?? {}) as { type?: string; decoders?: { type?: string }[] };
    this.byteLevel =
      decoder.type === "ByteLevel" || (decoder.decoders ?? []).some((d) => d.type === "ByteLevel");
  }

  encode(text: string): number[] {
    return this.lib.encode(text, { add_special_tokens: false }).ids;
  }

  /** Special tokens are left out of the text (the BOS every prompt starts with, an emitted EOS). */
  decode(tokens: readonly number[]): string {
    this.checkIds(tokens);
    return this.lib.decode(tokens as number[], { skip_special_tokens: true });
  }

  protected encodeContinuation(text: string): number[] {
    const anchor = this.encode(ANCHOR);
    const ids = this.encode(ANCHOR + text);
    if (anchor.length > ids.length || anchor.some((t, i) => ids[i] !== t)) return this.encode(text);
    return ids.slice(anchor.length);
  }

  /** The piece's text: `▁`/`Ġ` as a space, byte pieces decoded, bytes that are no character alone as `<0xE2>`. */
  protected tokenStr(id: number): string {
    const piece = this.lib.id_to_token(id);
    if (piece === undefined) return `<padding ${id}>`;
    if (this.specialIds.has(id)) return piece;
    if (!this.byteLevel) return tokenText(piece); // SentencePiece: ▁ and <0xNN> byte fallback
    const bytes = [...piece].map((ch) => BYTE_OF_CHAR.get(ch));
    return bytes.every((b) => b !== undefined) ? bytesToText(bytes as number[]) : piece;
  }
}

/** The tokenizer of a checkpoint directory (tokenizer.json, and tokenizer_config.json when present). */
export function loadHfTokenizer(dir: string, modelVocab = 0): HfTokenizer {
  const read = (file: string): Record<string, unknown> => {
    const path = join(dir, file);
    try {
      return JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new Error(`Cannot read ${path}: ${(err as Error).message} — re-download the tokenizer files`);
    }
  };
  const tokenizerJson = read(TOKENIZER_FILE);
  const config = existsSync(join(dir, TOKENIZER_CONFIG_FILE)) ? read(TOKENIZER_CONFIG_FILE) : {};
  return new HfTokenizer(tokenizerJson, config, join(dir, TOKENIZER_FILE), modelVocab);
}
