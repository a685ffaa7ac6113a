/**
 * The token embedding W_E [d_vocab, d_model]. A forward pass needs only the rows of its tokens, so a model
 * loaded from a safetensors file reads those rows from the file when it needs them (the page cache, not
 * the process, holds the rest) instead of keeping the whole matrix — for GPT-2 small that is 31% of the
 * weights. Rows are processed as loading processed W_E (centred when writing weights are centred).
 */
import { Tensor } from "../tensor/tensor.ts";
import { SafetensorsReader } from "../weights/safetensors.ts";
import { centerRows } from "./processing.ts";

export interface EmbeddingTable {
  readonly dVocab: number;
  readonly dModel: number;
  /** The rows of `tokens` into `out` [tokens.length, d_model]; token ids must be in [0, d_vocab). */
  gather(tokens: Int32Array, out: Float32Array): void;
  /** The whole matrix (read from the file and kept only while in use, when file-backed). */
  full(): Tensor;
  close(): void;
}

export function embeddingInMemory(W_E: Tensor): EmbeddingTable {
  const [dVocab, dModel] = W_E.shape;
  return {
    dVocab,
    dModel,
    gather(tokens, out) {
      for (let r = 0; r < tokens.length; r++) {
        const t = tokens[r];
        out.set(W_E.data.subarray(t * dModel, (t + 1) * dModel), r * dModel);
      }
    },
    full: () => W_E,
    close() {},
  };
}

export interface EmbeddingFile {
  path: string;
  /** The tensor's name inside the file. */
  storedName: string;
  dVocab: number;
  dModel: number;
  /** Centre each row over d_model (the processing W_E had at load). */
  centre: boolean;
}

const closeWhenCollected = new FinalizationRegistry<SafetensorsReader>((reader) => reader.close());

export function embeddingFromFile(f: EmbeddingFile): EmbeddingTable {
  const reader = SafetensorsReader.open(f.path);
  const atLoad = reader.stat();
  let whole: WeakRef<Tensor> | null = null;
  const { dVocab, dModel } = f;
  const checkUnchanged = () => {
    const now = reader.stat();
    if (now.size !== atLoad.size || now.mtimeMs !== atLoad.mtimeMs) {
      throw new Error(
        `${f.path} changed on disk after the model was loaded, and the model reads its token embeddings ` +
          "from it: load the model again",
      );
    }
  };
  const readRows = (first: number, out: Float32Array) => {
    reader.readFloat32Into(f.storedName, out, first * dModel);
    if (f.centre) centerRows(out, dModel);
  };
  const table: EmbeddingTable = {
    dVocab,
    dModel,
    gather(tokens, out) {
      checkUnchanged();
      for (let r = 0; r < tokens.length; r++) {
        readRows(tokens[r], out.subarray(r * dModel, (r + 1) * dModel));
      }
    },
    full() {
      let W_E = whole?.deref();
      if (!W_E) {
        checkUnchanged();
        W_E = new Tensor(new Float32Array(dVocab * dModel), [dVocab, dModel]);
        readRows(0, W_E.data);
        whole = new WeakRef(W_E);
      }
      return W_E;
    },
    close() {
      closeWhenCollected.unregister(table);
      reader.close();
    },
  };
  closeWhenCollected.register(table, reader, table);
  return table;
}
