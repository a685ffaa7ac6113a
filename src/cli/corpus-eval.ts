/**
 * The corpus side of `sae eval` and `transcoders eval`: the first `--max-texts` texts of the corpus, a
 * progress bar in texts, and Ctrl-C stopping the work with nothing written (null).
 */
import type { DocumentSource } from "../corpus/sources.ts";
import { createProgress } from "../util/progress.ts";
import { untilCtrlC } from "./common.ts";

export async function runCorpusEval<T>(
  label: string,
  source: DocumentSource,
  opts: { maxTexts?: number; json?: boolean },
  work: (texts: Iterable<string>, signal: AbortSignal, onBatch: (textsDone: number) => void) => Promise<T>,
): Promise<T | null> {
  const texts = function* () {
    let n = 0;
    for (const doc of source.documents()) {
      if (opts.maxTexts !== undefined && n >= opts.maxTexts) return;
      n++;
      yield doc;
    }
  };
  const bar = createProgress({ label, total: opts.maxTexts ?? 0, unit: "texts", quiet: opts.json });
  let shown = 0;
  try {
    return await untilCtrlC(label, (signal) =>
      work(texts(), signal, (done) => {
        bar.tick(done - shown);
        shown = done;
      }),
    );
  } finally {
    bar.stop();
  }
}
