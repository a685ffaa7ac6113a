/**
 * Child process for the atomic-write tests: runs one of circuitscope's file writers on a payload larger
 * than the file-size limit the parent sets (`ulimit -f`), so the write fails part-way through, the way a
 * full disk fails it. Prints the error code as JSON.
 *
 *   limited-writer.ts safetensors <target file>
 *   limited-writer.ts index <index directory>
 *   limited-writer.ts report <report.html path>     (the page alone is ~0.9 MB: the viz bundle is inlined)
 */
import { writeIndexState } from "../../src/neurons/index-store.ts";
import { NeuronStats } from "../../src/neurons/neuron-stats.ts";
import { writeHtmlReport } from "../../src/viz/html/report.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";

/** Bytes of the payload: well above the 64 KiB limit the parent sets. */
const BIG = 1 << 20;

const [writer, target] = process.argv.slice(2);
try {
  if (writer === "safetensors") {
    writeSafetensors(target, { w: { shape: [BIG / 4], data: new Float32Array(BIG / 4).fill(1) } }, "F32");
  } else if (writer === "index") {
    // Small statistics files, then one context of BIG / 4 tokens that an example refers to: the
    // context-tokens file is the one that fills the disk.
    const stats = new NeuronStats(2, 1);
    stats.offer(0, 1.5, 7, 3);
    stats.addTokens(BIG / 4);
    const settings = {
      model: "limited-writer",
      dMlp: 2,
      layers: [0],
      corpus: "none",
      textField: "text",
      contextLen: BIG / 4,
      maxTokens: null,
      topK: 1,
      histogram: stats.hist,
      batchSize: 1,
    };
    const progress = { nextContext: 8, contexts: 1, tokens: BIG / 4, complete: false };
    writeIndexState(target, {
      settings,
      shard: { index: 0, count: 1 },
      progress,
      stats,
      contexts: new Map([[7, new Uint32Array(BIG / 4)]]),
    });
  } else if (writer === "report") {
    writeHtmlReport(target, { title: "limited-writer", sections: [] });
  } else {
    throw new Error(`unknown writer ${writer}`);
  }
  console.log(JSON.stringify({ error: null }));
} catch (err) {
  console.log(JSON.stringify({ error: (err as NodeJS.ErrnoException).code ?? String(err) }));
}
