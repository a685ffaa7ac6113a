/**
 * A small neuron index for server tests: a few paragraphs of plain English written to a `.txt` corpus
 * in a temp dir, indexed with the fixture model (layers 0 and 2 only, so layer 1 is a model layer the
 * index lacks). Takes well under a second on the reference backend.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { textSource } from "../../src/corpus/sources.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";

export const INDEXED_LAYERS = [0, 2];
export const INDEX_TOP_K = 5;
export const INDEX_CONTEXT_LEN = 32;

const CORPUS = `The river ran past the old mill, where the miller kept his grain in tall wooden bins.
Every morning he opened the doors, swept the floor and counted the sacks twice.

When winter came the water froze, and the wheel stood still for weeks. Children skated on the pond
behind the mill while their parents carried bread and coal up the hill to the village.

In spring the ice broke with a sound like thunder. The miller said it was the best day of the year,
because the wheel would turn again and the town would have flour for the summer fairs.

Numbers in the ledger: 12 sacks on Monday, 17 on Tuesday, 9 on Wednesday, and 21 on Friday.
"Don't forget the tax," his wife said, "or the mayor will come knocking again."
`;

export interface IndexFixture {
  dir: string;
  indexDir: string;
  index: NeuronIndex;
  remove(): void;
}

export async function buildFixtureIndex(model: HookedTransformer): Promise<IndexFixture> {
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-serve-index-"));
  const corpus = join(dir, "corpus.txt");
  writeFileSync(corpus, CORPUS);
  const indexDir = join(dir, "index");
  await buildIndex(model, textSource(corpus), {
    outDir: indexDir,
    modelName: "tiny-gpt2",
    layers: INDEXED_LAYERS,
    contextLen: INDEX_CONTEXT_LEN,
    topK: INDEX_TOP_K,
    batchSize: 4,
  });
  return {
    dir,
    indexDir,
    index: NeuronIndex.open(indexDir),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
