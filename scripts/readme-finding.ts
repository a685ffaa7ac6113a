/**
 * Prints the README's finding paragraph from a pronoun study's results.json:
 *   ./bin/circuitscope.js study pronouns --out /tmp/p --overwrite
 *   node --import tsx scripts/readme-finding.ts /tmp/p/results.json
 */
import { readFileSync } from "node:fs";
import { findingParagraph } from "../src/studies/pronouns/finding-paragraph.ts";

const file = process.argv[2];
if (!file) {
  console.error("usage: node --import tsx scripts/readme-finding.ts RESULTS_JSON");
  process.exit(2);
}
const res = JSON.parse(readFileSync(file, "utf8"));
console.log(
  findingParagraph(res)
    .map((s) => s.text)
    .join(" "),
);
