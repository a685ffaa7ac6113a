import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Every file of a neuron index; the manifest without its run time (not content: equal indexes differ there). */
export function storeFiles(dir: string): Map<string, Buffer> {
  return new Map(
    readdirSync(dir).map((f) => {
      const bytes = readFileSync(join(dir, f));
      if (f !== "manifest.json") return [f, bytes];
      const manifest = JSON.parse(bytes.toString("utf8"));
      delete manifest.progress.seconds;
      return [f, Buffer.from(JSON.stringify(manifest))];
    }),
  );
}
